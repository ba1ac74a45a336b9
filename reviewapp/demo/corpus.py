"""A deterministic synthetic demo corpus: policies, queues and upstream decisions.

Everything here is plain data built from a seeded `random.Random`, so two runs produce the same
rows and `seed_demo` stays idempotent. The texts are deliberately mild — everyday insults, spam
with fake links written as plain text, veiled threats, non-graphic distress — and hateful
examples target invented groups, so the demo can be shown to anyone. Media items point at the
small files of `media.py`, served from the app's own static host (`media_base`), which the media
allowlist accepts, so blurring and reveal work on media that really loads.
"""

from __future__ import annotations

import copy
import random
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from labeling.datasets import AnnotatorLabel, DatasetRecord, majority_label

from .media import MEDIA_FILES, STATIC_SUBDIR

AUDIT_QUEUE = "automation-audit"
ESCALATION_QUEUE = "escalations"
APPEALS_QUEUE = "appeals"
CROWD_QUEUE = "harassment-crowd"


@dataclass(frozen=True)
class DemoQueue:
    slug: str
    name: str
    description: str
    kind: str = "review"
    sla_minutes: int = 24 * 60
    lease_seconds: int = 600
    required_annotations: int = 1
    blind_review: bool = False
    member_groups: tuple[str, ...] = ("reviewer", "policy_lead")


@dataclass(frozen=True)
class DemoPolicy:
    key: str
    name: str
    guideline: str
    severity_weight: float
    label_schema: dict[str, Any]
    queue: str
    violating_label: str
    benign_label: str
    auto_clear: float | None
    auto_action: float | None
    audit_rate_clear: float
    audit_rate_action: float
    audit_queue: str = AUDIT_QUEUE


def _schema(labels: list[tuple[str, str, str]], severity_levels: list[str]) -> dict[str, Any]:
    return {
        "labels": [{"value": value, "title": title, "description": text} for value, title, text in labels],
        "allow_multiple": False,
        "severity_levels": severity_levels,
    }


HARASSMENT_GUIDELINE = """\
# Harassment and bullying

Remove content that **targets an identifiable person** with insults, mockery or intimidation
meant to degrade or drive them away. The target may be named, tagged, or clear from context
(a reply to them). Repetition and pile-ons make a case more severe, not less.

**Violating**
- "you're such a clown, nobody wants you here" (insult aimed at the person addressed)
- "everyone at school laughs at you" (degrading a named or addressed person)

**Not violating**
- "that argument about the bus schedule makes no sense" (criticism of an idea)
- "lol I'm such an idiot, forgot my keys again" (self-directed)
- Banter between people who are plainly joking with each other.

Choose **needs context** when the target or the tone cannot be judged from what is shown;
say in the note what you would need. Severity: *low* for a single mild insult, *medium* for
sustained or demeaning attacks, *high* when it is combined with private information or a mob.
"""

HATE_GUIDELINE = """\
# Hateful conduct

Remove content that attacks people **because of a protected characteristic** (ethnicity,
national origin, religion, disability, sex, gender identity, sexual orientation, age):
dehumanising comparisons, claims of inherent inferiority or criminality, calls for exclusion.
Our demo data uses invented groups (Northvalers, Kestrians, …) in place of real ones.

**Violating**
- "Kestrians are all liars and thieves, don't trust any of them"
- "Northvalers don't belong here and never will"

**Not violating**
- Counter-speech that quotes a hateful claim in order to reject it: "saying all Orlanese are
  criminals is just prejudice" → label **counter speech**.
- Criticism of a government, company or ideology that does not attack its people.

Severity: *low* for stereotypes, *medium* for calls for exclusion, *high* for dehumanisation.
"""

THREAT_GUIDELINE = """\
# Violent threats

Remove statements of intent to cause physical harm to a person or group, **including veiled
threats** whose meaning is clear in context ("I know where you live", "watch your back when you
leave work"). Mentioning a person's home, workplace or routine raises the severity.

**Violating**
- "you'll regret this, Sam" as a reply in a heated argument
- "keep talking and see what happens to you"

**Not violating** (label **hyperbole**)
- "I'm going to kill it at the interview tomorrow"
- "this traffic is absolute murder"

Severity levels: *veiled*, *explicit*, *imminent* (time, place or means given). Escalate
anything *imminent* immediately using the escalation shortcut.
"""

SPAM_GUIDELINE = """\
# Spam and scams

Remove unsolicited commercial content posted at volume, engagement bait, and anything that tries
to obtain money or credentials by deception. Links in the demo are written as plain text and
never resolve.

**Spam**: "Buy 10k followers for $9 at www.fastfollows.example", repeated "follow for follow".
**Scam**: fake giveaways, "verify your account or it will be suspended" with a look-alike link,
guaranteed investment returns. Scams are more severe than spam.

**Not spam**: a person selling their own bike once in a local marketplace, a creator mentioning
their own shop in their profile, questions asking for recommendations.
"""

SELF_HARM_GUIDELINE = """\
# Suicide and self-harm

The goal is **support, not punishment**. Flag content in which someone expresses intent, plans or
a wish to harm themselves so that support resources can be offered; it is never auto-enforced.

**Risk** (label *self harm risk*): "I don't see the point in anything anymore", "nobody would
notice if I disappeared", statements of wanting to hurt oneself.
**Recovery and support** (not violating, label *recovery support*): sharing recovery milestones,
encouraging others to seek help.
**Not violating**: figures of speech such as "this week is killing me".

Severity: *concern*, *elevated* (repeated or specific), *imminent* (means or time mentioned —
escalate at once). Never copy the text into notes.
"""

SEXUAL_GUIDELINE = """\
# Sexual content

Adult nudity and sexual activity are not allowed on public surfaces, and sexual solicitation is
not allowed anywhere. This queue uses **blind review**: model scores are hidden so that the
image, not the model, decides.

**Explicit**: sexual activity or genital nudity; solicitation such as "DM me for my private
content", "uncensored version on my page 🔞".
**Suggestive**: sexualised poses or captions without explicit content — allowed for adults,
but age-gated and excluded from recommendations.
**Not violating**: swimwear at the beach, fitness content, art and health education.
"""


def demo_policies() -> list[DemoPolicy]:
    """The demo policies with their label schemas and routing thresholds."""
    return [
        DemoPolicy(
            key="harassment",
            name="Harassment and bullying",
            guideline=HARASSMENT_GUIDELINE,
            severity_weight=2.0,
            label_schema=_schema(
                [
                    ("violating", "Violating", "Targets a person with insults, mockery or intimidation."),
                    ("needs_context", "Needs context", "Target or tone cannot be judged from what is shown."),
                    ("not_violating", "Not violating", "Criticism of ideas, self-directed, or banter."),
                ],
                ["low", "medium", "high"],
            ),
            queue="harassment-hate",
            violating_label="violating",
            benign_label="not_violating",
            auto_clear=0.15,
            auto_action=0.95,
            audit_rate_clear=0.03,
            audit_rate_action=0.10,
        ),
        DemoPolicy(
            key="hate",
            name="Hateful conduct",
            guideline=HATE_GUIDELINE,
            severity_weight=3.0,
            label_schema=_schema(
                [
                    ("violating", "Hateful", "Attacks people for a protected characteristic."),
                    ("counter_speech", "Counter speech", "Quotes or names hate in order to reject it."),
                    ("not_violating", "Not violating", "No attack on a protected group."),
                ],
                ["low", "medium", "high"],
            ),
            queue="harassment-hate",
            violating_label="violating",
            benign_label="not_violating",
            auto_clear=0.10,
            auto_action=0.97,
            audit_rate_clear=0.05,
            audit_rate_action=0.15,
        ),
        DemoPolicy(
            key="violent_threat",
            name="Violent threats",
            guideline=THREAT_GUIDELINE,
            severity_weight=4.0,
            label_schema=_schema(
                [
                    ("violating", "Threat", "Intent to cause physical harm, including veiled threats."),
                    ("hyperbole", "Hyperbole", "Violent words used figuratively."),
                    ("not_violating", "Not violating", "No threat."),
                ],
                ["veiled", "explicit", "imminent"],
            ),
            queue="threats",
            violating_label="violating",
            benign_label="not_violating",
            auto_clear=0.10,
            auto_action=0.98,
            audit_rate_clear=0.05,
            audit_rate_action=0.20,
        ),
        DemoPolicy(
            key="spam",
            name="Spam and scams",
            guideline=SPAM_GUIDELINE,
            severity_weight=1.0,
            label_schema=_schema(
                [
                    ("spam", "Spam", "Unsolicited commercial content or engagement bait."),
                    ("scam", "Scam", "Tries to obtain money or credentials by deception."),
                    ("not_spam", "Not spam", "Ordinary posts, including one-off personal sales."),
                ],
                ["low", "high"],
            ),
            queue="spam",
            violating_label="spam",
            benign_label="not_spam",
            auto_clear=0.20,
            auto_action=0.85,
            audit_rate_clear=0.02,
            audit_rate_action=0.05,
        ),
        DemoPolicy(
            key="self_harm",
            name="Suicide and self-harm",
            guideline=SELF_HARM_GUIDELINE,
            severity_weight=5.0,
            label_schema=_schema(
                [
                    ("self_harm_risk", "Self-harm risk", "Expresses intent or wish to self-harm: offer support."),
                    ("recovery_support", "Recovery / support", "Recovery stories and encouragement to seek help."),
                    ("not_violating", "Not violating", "No self-harm content."),
                ],
                ["concern", "elevated", "imminent"],
            ),
            # No auto_action: a person, not a model, decides how to reach out.
            queue="self-harm",
            violating_label="self_harm_risk",
            benign_label="not_violating",
            auto_clear=0.05,
            auto_action=None,
            audit_rate_clear=0.10,
            audit_rate_action=0.0,
        ),
        DemoPolicy(
            key="sexual_content",
            name="Sexual content",
            guideline=SEXUAL_GUIDELINE,
            severity_weight=2.0,
            label_schema=_schema(
                [
                    ("explicit", "Explicit", "Sexual activity, genital nudity or sexual solicitation."),
                    ("suggestive", "Suggestive", "Sexualised but not explicit: age-gate."),
                    ("not_violating", "Not violating", "Swimwear, fitness, art, health education."),
                ],
                ["low", "medium", "high"],
            ),
            queue="sexual-content",
            violating_label="explicit",
            benign_label="not_violating",
            auto_clear=0.15,
            auto_action=0.93,
            audit_rate_clear=0.03,
            audit_rate_action=0.08,
        ),
    ]


def demo_queues() -> list[DemoQueue]:
    """Review queues (grouped by policy area), the automation audit queue, the escalations queue and the
    appeals queue (`POST /api/v1/appeals` is refused until one exists)."""
    return [
        DemoQueue(
            "harassment-hate",
            "Harassment & hate",
            "Person- and group-directed abuse; two reviewers per item.",
            sla_minutes=240,
            lease_seconds=300,
            required_annotations=2,
        ),
        DemoQueue(
            "threats",
            "Violent threats",
            "Threats of violence; fast SLA.",
            sla_minutes=60,
            lease_seconds=300,
            required_annotations=1,
        ),
        DemoQueue(
            "self-harm",
            "Self-harm (support)",
            "Self-harm risk; reviewed within 30 minutes.",
            sla_minutes=30,
            lease_seconds=300,
            required_annotations=1,
        ),
        DemoQueue(
            "spam",
            "Spam & scams",
            "High volume, quick decisions.",
            sla_minutes=24 * 60,
            lease_seconds=120,
            required_annotations=1,
        ),
        DemoQueue(
            "sexual-content",
            "Sexual content (blind)",
            "Scores hidden; three reviewers per item.",
            sla_minutes=8 * 60,
            lease_seconds=300,
            required_annotations=3,
            blind_review=True,
        ),
        DemoQueue(
            AUDIT_QUEUE,
            "Automation audit",
            "Random samples of auto-enforced and auto-cleared decisions.",
            kind="audit",
            sla_minutes=48 * 60,
            lease_seconds=600,
            required_annotations=1,
            blind_review=True,
        ),
        DemoQueue(
            ESCALATION_QUEUE,
            "Escalations",
            "Disagreements and hard cases for policy leads.",
            kind="adjudication",
            sla_minutes=8 * 60,
            lease_seconds=900,
            required_annotations=1,
            member_groups=("policy_lead",),
        ),
        DemoQueue(
            APPEALS_QUEUE,
            "Appeals",
            "Users contest an automatic action or a label; one reviewer looks again and decides.",
            kind="appeals",
            sla_minutes=24 * 60,
            lease_seconds=600,
            required_annotations=1,
        ),
    ]


# --- vocabulary -----------------------------------------------------------------------------
# [[…]] marks the part of a template that a model would cite as evidence.

FILLS: dict[str, list[str]] = {
    "name": ["Alex", "Sam", "Jordan", "Priya", "Mateo", "Lena", "Chris", "Taylor", "Noor", "Kai"],
    "insult": ["clown", "loser", "moron", "joke", "fraud", "muppet", "airhead", "creep"],
    "topic": [
        "the new stadium",
        "pineapple on pizza",
        "the bus schedule",
        "remote work",
        "the city budget",
        "electric cars",
    ],
    "city": ["Springfield", "Riverton", "Lakeside", "Fairview", "Oakdale"],
    "thing": ["blue hoodie", "limited sneakers", "new console", "camping stove"],
    "group": ["Northvalers", "Kestrians", "Orlanese", "Velmari", "Eastmoor people"],
    "price": ["$20 a month", "$5 per pic", "only $15 this week"],
    "insult_es": ["payaso", "perdedor", "tonto"],
    "insult_de": ["Versager", "Clown", "Trottel"],
    "insult_fr": ["guignol", "bouffon", "nul"],
    "insult_pt": ["otário", "palhaço", "perdedor"],
}

VIOLATING, BORDERLINE, BENIGN = "violating", "borderline", "benign"

TEMPLATES: dict[str, dict[str, dict[str, list[str]]]] = {
    "en": {
        "harassment": {
            VIOLATING: [
                "you're [[such a {insult}]], nobody wants you here",
                "lol look at this [[{insult}]] trying to sound smart about {topic}",
                "{name} is [[a pathetic {insult}]] and everyone knows it",
                "[[shut up, {insult}]], no one asked you",
                "hey {name}, [[everyone at school laughs at you]]",
                "[[go cry somewhere else]], {insult}",
            ],
            BORDERLINE: [
                "ok {name}, that take on {topic} is kind of [[clownish]] ngl",
                "are you always this dense or is today special?",
                "this is the dumbest thing I've read all week about {topic}",
                "bless your heart, {name}",
            ],
            BENIGN: [
                "thanks {name}, this was really helpful",
                "I disagree about {topic}, but I see where you're coming from",
                "congrats on the new job {name}!",
                "lol I'm such an idiot, forgot my keys again",
            ],
        },
        "hate": {
            VIOLATING: [
                "[[{group} are all liars and thieves]], don't trust any of them",
                "[[{group} don't belong here]] and never will",
                "[[{group} should be banned from]] {city}",
                "every one of those {group} is [[lazy and dishonest]]",
            ],
            BORDERLINE: [
                "not saying all {group} are bad but you know how they are",
                "why do {group} always stick together like that?",
            ],
            BENIGN: [
                "saying all {group} are criminals is just prejudice",
                "my neighbours are {group} and they're the kindest people I know",
                "the {group} food festival in {city} was amazing this year",
            ],
        },
        "violent_threat": {
            VIOLATING: [
                "[[you'll regret this]], {name}",
                "[[watch your back]] when you leave work tomorrow",
                "[[I know where you live]], {name}",
                "keep talking and [[see what happens to you]]",
                "[[someone should teach you a lesson]] you won't forget",
            ],
            BORDERLINE: [
                "people like you get what's coming to them eventually",
                "careful, {name}, karma has a long memory",
            ],
            BENIGN: [
                "I'm going to kill it at the interview tomorrow",
                "this traffic in {city} is absolute murder",
                "my boss will kill me if I'm late again lol",
                "that comedian absolutely destroyed the crowd last night",
            ],
        },
        "spam": {
            VIOLATING: [
                "[[Earn $5,000 a week from home]]!!! DM me or visit [[quick-cash-now.example]]",
                "[[FREE gift cards]] for the first 100 people 👉 [[giftz-4u.example/claim]]",
                "Buy 10k followers for $9 at [[www.fastfollows.example]]",
                "crypto signals that [[never lose]] — join [[moonpump-signals.example]]",
                "Click here to [[verify your account]] or it will be suspended: [[secure-login-check.example]]",
            ],
            BORDERLINE: [
                "check out my new shop, link in bio!",
                "selling concert tickets, DM me quick before they're gone",
                "follow for follow?",
            ],
            BENIGN: [
                "selling my old bike, pickup only in {city}",
                "is the farmers market in {city} open this Sunday?",
                "anyone recommend a good plumber in {city}?",
                "does anyone know when the {thing} comes back in stock?",
            ],
        },
        "self_harm": {
            VIOLATING: [
                "[[I don't see the point in anything anymore]]",
                "honestly [[nobody would even notice if I disappeared]]",
                "[[I just want everything to stop]]",
                "[[I've been thinking about hurting myself again]]",
            ],
            BORDERLINE: [
                "ugh, this week is killing me",
                "I'm so done with everything today",
                "why do I even bother",
            ],
            BENIGN: [
                "6 months since I asked for help — it does get better",
                "if you're struggling, talking to someone helped me a lot",
                "posting my art again after a hard year, thanks for the support",
            ],
        },
        "sexual_content": {
            VIOLATING: [
                "[[spicy pics]] in my bio 😉 [[18+ only]]",
                "[[DM me for my private content]], {price}",
                "[[uncensored version]] on my page 🔞",
            ],
            BORDERLINE: [
                "new swimsuit, what do you think? 👙",
                "date night outfit 🔥",
                "link in bio for my fitness plans 💪",
            ],
            BENIGN: [
                "beach day with the family",
                "new haircut, who dis",
                "sunset from the balcony tonight",
            ],
        },
    },
    "es": {
        "harassment": {VIOLATING: ["eres [[un {insult_es}]], nadie te quiere aquí", "[[cállate, {insult_es}]]"]},
        "violent_threat": {VIOLATING: ["[[te vas a arrepentir]], {name}", "[[sé dónde vives]]"]},
        "spam": {VIOLATING: ["[[Gana dinero rápido desde casa]], escríbeme a [[dinero-facil.example]]"]},
        "*": {
            BENIGN: ["gracias por compartir, muy útil", "¡qué partidazo anoche!", "¿alguien sabe si abren el domingo?"]
        },
    },
    "de": {
        "harassment": {
            VIOLATING: ["du bist [[so ein {insult_de}]], echt jetzt", "[[halt die Klappe]], du {insult_de}"]
        },
        "violent_threat": {
            VIOLATING: ["[[das wirst du bereuen]], {name}", "[[pass bloß auf]], wenn du morgen rausgehst"]
        },
        "spam": {VIOLATING: ["[[Schnell Geld verdienen]] von zu Hause: [[geld-schnell.example]]"]},
        "*": {
            BENIGN: ["danke, sehr hilfreich!", "tolles Spiel gestern", "weiß jemand, ob der Markt Sonntag offen ist?"]
        },
    },
    "fr": {
        "harassment": {VIOLATING: ["t'es vraiment [[un {insult_fr}]]", "[[ferme-la, espèce de {insult_fr}]]"]},
        "violent_threat": {VIOLATING: ["[[tu vas le regretter]], {name}", "[[je sais où tu habites]]"]},
        "spam": {VIOLATING: ["[[Gagnez de l'argent facilement]], contactez-moi sur [[argent-facile.example]]"]},
        "*": {
            BENIGN: [
                "merci pour le partage",
                "super match hier soir",
                "quelqu'un sait si le marché est ouvert dimanche ?",
            ]
        },
    },
    "pt": {
        "harassment": {VIOLATING: ["você é [[um {insult_pt}]], ninguém te aguenta", "[[cala a boca, {insult_pt}]]"]},
        "violent_threat": {VIOLATING: ["[[você vai se arrepender]], {name}", "[[eu sei onde você mora]]"]},
        "spam": {VIOLATING: ["[[Ganhe dinheiro rápido em casa]], me chama em [[grana-facil.example]]"]},
        "*": {BENIGN: ["obrigado por compartilhar", "que jogo ontem!", "alguém sabe se a feira abre domingo?"]},
    },
}

CONTEXT_TURNS = [
    "did you see what {name} posted about {topic}?",
    "that's not what I said at all",
    "can we keep this civil please",
    "whatever, believe what you want",
    "source?",
    "you started it",
    "anyone else going to the meetup in {city}?",
]
TITLES = ["Morning routine vlog", "Unboxing my {thing}", "Trip to {city}", "Quick update", "Weekend haul"]

LANGUAGES = [("en", 0.8), ("es", 0.06), ("de", 0.05), ("fr", 0.05), ("pt", 0.04)]
REGIONS = {
    "en": ["US", "US", "GB", "IN", "CA", "AU", "NG", "PH"],
    "es": ["ES", "MX", "AR", "CO"],
    "de": ["DE", "AT", "CH"],
    "fr": ["FR", "BE", "CA"],
    "pt": ["BR", "BR", "PT"],
}
SURFACES = {  # surface → upstream source system
    "comment": "comments",
    "direct_message": "messages",
    "post": "posts",
    "profile_bio": "profiles",
    "listing": "marketplace",
    "live_chat": "live",
}
POLICY_WEIGHTS = [
    ("harassment", 0.27),
    ("hate", 0.12),
    ("violent_threat", 0.12),
    ("spam", 0.22),
    ("self_harm", 0.08),
    ("sexual_content", 0.19),
]
MODALITY_WEIGHTS = [("text", 0.72), ("image", 0.14), ("video", 0.07), ("audio", 0.04), ("mixed", 0.03)]
MEDIA_EXTENSIONS = {"image": ["jpg", "png", "webp"], "video": ["mp4", "webm"], "audio": ["mp3", "m4a"]}
DEMO_MEDIA_BASE = f"/static/{STATIC_SUBDIR}/"  # under the default STATIC_URL
TEXT_MODELS = [("tox-bert", "3.2.1"), ("llm-judge", "2025-05-01")]
MEDIA_MODEL = ("mm-guard", "1.4.0")
SECOND_OPINION_RATE = 0.12  # share of text items also scored by the other text model
DECIDED_FROM = datetime(2025, 6, 2, 8, 0, tzinfo=UTC)


@dataclass
class _Item:
    index: int
    language: str
    policy: str
    kind: str
    modality: str
    surface: str
    text: str
    spans: list[tuple[int, int]] = field(default_factory=list)


def demo_decision_rows(n: int = 600, seed: int = 7, media_base: str = DEMO_MEDIA_BASE) -> list[dict[str, Any]]:
    """`n` rows in the POST /api/v1/decisions format, the same for the same (n, seed).

    Media items reference the demo files under `media_base` (the static URL of `media.py`'s folder).

    Rows follow item by item; about one text item in eight also gets a second row from another
    model, so `len(rows)` is a little above `n`. Scores span [0, 1] with violating content mostly
    high, benign mostly low and borderline in the middle, so routing yields all three outcomes.
    """
    rng = random.Random(seed)  # noqa: S311 - reproducible demo data, not secrets
    # Authors come from a second stream, so adding them left every other field as it was.
    authors = random.Random(seed + 1)  # noqa: S311
    policies = {policy.key: policy for policy in demo_policies()}
    rows: list[dict[str, Any]] = []
    decided_at = DECIDED_FROM
    for index in range(n):
        item = _demo_item(rng, index)
        fields = _item_fields(rng, item, media_base)
        fields["author"] = _demo_author(authors, item)
        decided_at += timedelta(seconds=rng.randint(20, 600))
        models = [MEDIA_MODEL] if item.modality != "text" else [_pick(rng, [(m, 1.0) for m in TEXT_MODELS])]
        if item.modality == "text" and rng.random() < SECOND_OPINION_RATE:
            models.append(next(m for m in TEXT_MODELS if m != models[0]))
        score = _score(rng, item.kind)
        for number, (model_name, model_version) in enumerate(models):
            if number:  # a second model agrees roughly, not exactly
                score = min(1.0, max(0.0, round(score + rng.uniform(-0.12, 0.12), 4)))
            rows.append(
                _decision_row(rng, fields, item, policies[item.policy], model_name, model_version, score, decided_at)
            )
    return rows


# A few accounts post much of the violating content (repeat offenders), as on real platforms, so
# the item page's case history and the workspace's "prior violations" line have something to show.
REPEAT_OFFENDERS, ACCOUNTS, REPEAT_SHARE = 12, 240, 0.6


def _demo_author(rng: random.Random, item: _Item) -> str:
    if item.kind != BENIGN and rng.random() < REPEAT_SHARE:
        return f"acct-{rng.randrange(REPEAT_OFFENDERS):04d}"
    return f"acct-{rng.randrange(REPEAT_OFFENDERS, ACCOUNTS):04d}"


def _pick(rng: random.Random, weighted: list[tuple[Any, float]]) -> Any:
    values, weights = zip(*weighted, strict=True)
    return rng.choices(values, weights=weights)[0]


def _demo_item(rng: random.Random, index: int) -> _Item:
    language = _pick(rng, LANGUAGES)
    if language == "en":
        policy = _pick(rng, POLICY_WEIGHTS)
        kind = _pick(rng, [(BENIGN, 0.45), (VIOLATING, 0.35), (BORDERLINE, 0.2)])
        templates = TEMPLATES["en"][policy][kind]
    else:
        # Other languages carry a few policies only; a borderline case there is a violating
        # template the model scores in the middle.
        policy = _pick(rng, [("harassment", 0.4), ("violent_threat", 0.3), ("spam", 0.3)])
        kind = _pick(rng, [(BENIGN, 0.45), (VIOLATING, 0.35), (BORDERLINE, 0.2)])
        section = TEMPLATES[language]["*"] if kind == BENIGN else TEMPLATES[language][policy]
        templates = section[BENIGN] if kind == BENIGN else section[VIOLATING]
    modality = "text" if policy == "spam" else _pick(rng, MODALITY_WEIGHTS)
    if policy == "sexual_content" and modality == "text":
        modality = _pick(rng, [("image", 0.7), ("text", 0.3)])
    surface = _pick(rng, [(s, 1.0) for s in SURFACES])
    text, spans = _render(rng.choice(templates), rng)
    return _Item(index, language, policy, kind, modality, surface, text, spans)


def _render(template: str, rng: random.Random) -> tuple[str, list[tuple[int, int]]]:
    """Fill a template and return the text with the character offsets of its [[…]] parts."""
    marked = template.format(**{key: rng.choice(values) for key, values in FILLS.items()})
    text, spans, position, start = [], [], 0, 0
    for part in re.split(r"(\[\[|\]\])", marked):
        if part == "[[":
            start = position
        elif part == "]]":
            spans.append((start, position))
        else:
            text.append(part)
            position += len(part)
    return "".join(text), spans


def _item_fields(rng: random.Random, item: _Item, media_base: str) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "source": SURFACES[item.surface],
        "external_id": f"demo-{item.index:05d}",
        "modality": item.modality,
        "text": item.text,
        "metadata": {
            "language": item.language,
            "region": rng.choice(REGIONS[item.language]),
            "surface": item.surface,
            "synthetic": True,
        },
        # Audience sizes are heavy-tailed: most posts reach a handful, a few reach millions.
        "reach": min(int(rng.paretovariate(0.65) * 8) - 8, 50_000_000),
    }
    if item.modality != "text":
        fields["media_urls"] = _media_urls(rng, item.modality, media_base)
        if item.modality == "audio":
            fields["metadata"]["text_is_transcript"] = True
    if item.modality == "video" or (item.surface == "post" and rng.random() < 0.3):
        fields["title"] = rng.choice(TITLES).format(**{k: rng.choice(v) for k, v in FILLS.items()})
    if item.language == "en" and item.surface in ("comment", "direct_message", "live_chat") and rng.random() < 0.4:
        turns = rng.randint(1, 3)
        fields["context"] = [
            {
                "author": f"user_{rng.getrandbits(16):04x}",
                "text": rng.choice(CONTEXT_TURNS).format(**{k: rng.choice(v) for k, v in FILLS.items()}),
            }
            for _ in range(turns)
        ]
    return fields


def _media_urls(rng: random.Random, modality: str, media_base: str) -> list[str]:
    kinds = ["image", "video"] if modality == "mixed" else [modality]
    urls = []
    for kind in kinds:
        # The same draws as when media names were random, so every other field of the corpus stays
        # as it was (a database seeded before keeps matching it); the draw now picks a demo file.
        bits, _ = rng.getrandbits(48), rng.choice(MEDIA_EXTENSIONS[kind])
        files = MEDIA_FILES[kind]
        urls.append(media_base + files[bits % len(files)])
    return urls


def _score(rng: random.Random, kind: str) -> float:
    alpha, beta = {VIOLATING: (4.0, 0.8), BORDERLINE: (3.0, 3.0), BENIGN: (0.9, 7.0)}[kind]
    return round(rng.betavariate(alpha, beta), 4)


def _decision_row(
    rng: random.Random,
    fields: dict[str, Any],
    item: _Item,
    policy: DemoPolicy,
    model_name: str,
    model_version: str,
    score: float,
    decided_at: datetime,
) -> dict[str, Any]:
    row = {
        **copy.deepcopy(fields),
        "policy": policy.key,
        "model_name": model_name,
        "model_version": model_version,
        "score": score,
        "predicted_label": policy.violating_label if score >= 0.5 else policy.benign_label,
        "decided_at": decided_at.isoformat(),
    }
    # Text models cite evidence for most confident hits; the media model never does.
    if item.spans and model_name != MEDIA_MODEL[0] and score >= 0.5 and rng.random() < 0.8:
        row["evidence_spans"] = [{"start": s, "end": e, "label": policy.violating_label} for s, e in item.spans]
    return row


# --- crowd answers --------------------------------------------------------------------------
# Answers of five demo annotators on extra harassment comments, so agreement, gold, adjudication
# and a trained model have recorded answers to work from. Each annotator gives the comment's
# intended label (its template's kind) with their own accuracy, lower on borderline comments, and
# otherwise another label; the figures the app shows are computed from these answers as from any.

CROWD_POLICY = "harassment"
CROWD_DATASET = "demo"  # crowd accounts are named demo-<annotator>
CROWD_ANNOTATORS = (
    ("annotator1", 0.93),
    ("annotator2", 0.88),
    ("annotator3", 0.84),
    ("annotator4", 0.78),
    ("annotator5", 0.70),
)
CROWD_BORDERLINE_PENALTY = 0.3
INTENDED_LABEL = {VIOLATING: "violating", BORDERLINE: "needs_context", BENIGN: "not_violating"}


def demo_crowd_records(n: int = 400, seed: int = 17) -> list[DatasetRecord]:
    """`n` English harassment comments with two or three annotators' answers each; the same per (n, seed)."""
    rng = random.Random(seed)  # noqa: S311 - reproducible demo data, not secrets
    labels = sorted(INTENDED_LABEL.values())
    templates = TEMPLATES["en"][CROWD_POLICY]
    records = []
    for index in range(n):
        kind = _pick(rng, [(BENIGN, 0.45), (VIOLATING, 0.35), (BORDERLINE, 0.2)])
        text, _ = _render(rng.choice(templates[kind]), rng)
        intended = INTENDED_LABEL[kind]
        answers = []
        for annotator, accuracy in rng.sample(CROWD_ANNOTATORS, 3 if rng.random() < 0.4 else 2):
            if kind == BORDERLINE:
                accuracy -= CROWD_BORDERLINE_PENALTY
            label = intended if rng.random() < accuracy else rng.choice([v for v in labels if v != intended])
            severity = rng.choice(["low", "low", "medium", "high"]) if label == "violating" else None
            answers.append(AnnotatorLabel(annotator=annotator, label=label, severity=severity))
        records.append(
            DatasetRecord(
                source="comments",
                external_id=f"demo-crowd-{index:05d}",
                text=text,
                context=[],
                metadata={"language": "en", "surface": "comment", "synthetic": True},
                annotations=answers,
                label=majority_label(answers),
            )
        )
    return records
