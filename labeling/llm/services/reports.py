"""The LLM reviewer beside the humans, and what prompt injection does to its answers.

Read-only. `llm_beside_humans` measures each LLM reviewer of a policy the way people are measured
on the quality page, on the items it answered: agreement with the current gold label, Cohen's
kappa with each person, Krippendorff's alpha of the people with and without it on the same items,
its Dawid–Skene confusion matrix, honeypot accuracy, abstentions, latency and cost. Its answers
are `Annotation(source="llm")` rows of its machine account; the human figures never include them
(`labeling.services.reliability.policy_annotations`). `injection_report` reads an injection
check run: how often each injection suffix changed the plain answer on the same item.

A figure resting on fewer than MIN_LLM_ITEMS items is "too few to judge": the pages show no value
and no interval for it, only its n. Every figure carries its n.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import partial

from django.contrib.auth.models import User
from django.db.models import Avg, Count, F, QuerySet, StdDev

from reviewapp.models import ContentItem

from ...models import Annotation, AnnotationSource, GoldLabel, HoneypotCheck, Policy, PolicyVersion
from ...quality import MIN_AGREEMENT_ITEMS, MIN_PAIR_OVERLAP
from ...services.reliability import policy_annotations, policy_triples
from ...stats.agreement import ConfidenceInterval, bootstrap_ci, cohen_kappa, krippendorff_alpha, units_from_triples
from ...stats.dawid_skene import fit_dawid_skene
from ...stats.proportions import Z_95, wilson_interval
from ..models import LLMJudgement, LLMReviewer, LLMRun, RunKind
from ..prompting import item_text

# Below this many items an LLM figure is "too few to judge": no value, no interval.
MIN_LLM_ITEMS = 20
RESAMPLES = 500  # bootstrap resamples of items, as on the quality page
KAPPA_PEOPLE_SHOWN = 30  # the people with the most items in common with the LLM
EXAMPLES_PER_KEY = 5
EXAMPLE_CHARS = 200

Triple = tuple[str, str, str]


@dataclass(frozen=True)
class Share:
    """`successes` of `n`, with its 95 % Wilson interval once n reaches MIN_LLM_ITEMS."""

    successes: int
    n: int

    @property
    def value(self) -> float | None:
        return self.successes / self.n if self.n else None

    @property
    def too_few(self) -> bool:
        return self.n < MIN_LLM_ITEMS

    @property
    def interval(self) -> tuple[float, float] | None:
        return None if self.too_few else wilson_interval(self.successes, self.n)


@dataclass(frozen=True)
class Mean:
    """A mean over `n` values with a normal-approximation 95 % interval (mean ± 1.96 s/√n, not below 0)."""

    value: float | None
    n: int
    half_width: float = math.nan

    @property
    def too_few(self) -> bool:
        return self.n < MIN_LLM_ITEMS

    @property
    def interval(self) -> tuple[float, float] | None:
        if self.too_few or self.value is None or not math.isfinite(self.half_width):
            return None
        return max(0.0, self.value - self.half_width), self.value + self.half_width

    def scaled(self, factor: float) -> Mean:
        return Mean(None if self.value is None else self.value * factor, self.n, self.half_width * factor)


@dataclass(frozen=True)
class KappaWithPerson:
    """Cohen's kappa between the LLM and one person on the items both answered."""

    reviewer: str  # the person's username
    overlap: int
    ci: ConfidenceInterval | None  # None below MIN_PAIR_OVERLAP items in common
    min_overlap: int = MIN_PAIR_OVERLAP

    @property
    def too_few(self) -> bool:
        return self.ci is None

    @property
    def undefined(self) -> bool:
        """Both gave one and the same label throughout: chance agreement is 1 and kappa is 0/0."""
        return self.ci is not None and not math.isfinite(self.ci.point)


@dataclass(frozen=True)
class AlphaComparison:
    """Krippendorff's alpha (nominal) of the people alone and of the people with the LLM, on the
    same items: those the LLM answered that two or more people answered too."""

    items: int
    human_answers: int
    humans: ConfidenceInterval
    with_llm: ConfidenceInterval
    resamples: int

    @property
    def too_few(self) -> bool:
        return self.items < max(MIN_AGREEMENT_ITEMS, MIN_LLM_ITEMS)

    @property
    def undefined(self) -> bool:
        """One label only on these items: alpha is 0/0."""
        return not (math.isfinite(self.humans.point) and math.isfinite(self.with_llm.point))


@dataclass(frozen=True)
class ConfusionMatrix:
    """The LLM's Dawid–Skene confusion: row = true class, column = its answer, P(answer | true class)."""

    classes: tuple[str, ...]
    rows: list[tuple[str, list[float]]]
    llm_labels: int  # its answers in the fit
    items: int  # items in the fit (those it answered)
    people: int  # people whose answers on those items are in the fit
    passed: bool
    check: str  # the fit's check: "checks passed" or what failed

    @property
    def too_few(self) -> bool:
        return self.llm_labels < MIN_LLM_ITEMS


@dataclass(frozen=True)
class LLMReviewerFigures:
    reviewer: LLMReviewer
    version: PolicyVersion | None  # names labels
    answers: int  # its live answers under the policy
    gold: Share  # its answers equal to the current gold label, on the gold items it labelled
    kappas: list[KappaWithPerson]
    kappas_not_shown: int  # people beyond KAPPA_PEOPLE_SHOWN
    alpha: AlphaComparison | None
    confusion: ConfusionMatrix | None
    confusion_note: str  # why there is no matrix
    honeypots: Share  # its answers on honeypot items, against the honeypot's gold label
    abstention: Share  # abstentions among its plain-prompt answers, latest per item
    latency_ms: Mean  # per item, answers the model computed (not cached)
    tokens: Mean  # prompt + completion tokens per item, same answers
    cost: Mean  # tokens × cost_per_million_tokens / 10⁶
    min_items: int = MIN_LLM_ITEMS
    min_pair_overlap: int = MIN_PAIR_OVERLAP

    @property
    def summary_rows(self) -> list[FigureRow]:
        """The one-number figures, in the order the page lists them, each with what it was measured on."""
        price = self.reviewer.cost_per_million_tokens
        return [
            FigureRow("Agreement with gold", self.gold, "share", GOLD_SCOPE),
            FigureRow(
                "Honeypot accuracy",
                self.honeypots,
                "share",
                "its answers on items served as honeypots, against the honeypot's gold label",
                empty="no honeypot items answered",
            ),
            FigureRow(
                "Abstention rate",
                self.abstention,
                "share",
                "its plain-prompt answers in all its runs, the newest per item",
                empty="no plain-prompt answer recorded",
            ),
            FigureRow("Mean latency per item", self.latency_ms, "ms", COMPUTED_SCOPE, empty=NO_MODEL_ANSWERS),
            FigureRow("Tokens per item", self.tokens, "tokens", COMPUTED_SCOPE, empty=NO_MODEL_ANSWERS),
            FigureRow(
                "Cost per item", self.cost, "cost", f"{COMPUTED_SCOPE}, at {price} per million tokens", NO_MODEL_ANSWERS
            ),
        ]


GOLD_SCOPE = "measured on the gold items it labelled, against their current gold label"
COMPUTED_SCOPE = "its answers the model computed (cached answers cost nothing and are left out)"
NO_MODEL_ANSWERS = "no answer computed by the model recorded"


@dataclass(frozen=True)
class FigureRow:
    name: str
    figure: Share | Mean
    unit: str  # "share", "ms", "tokens" or "cost": how the page prints it
    measured_on: str
    empty: str = "no answers yet"


def llm_beside_humans(
    *, policy: Policy, reviewer: LLMReviewer | None = None, resamples: int = RESAMPLES
) -> list[LLMReviewerFigures]:
    """Figures of each LLM reviewer of `policy` that has answers under it (or of `reviewer` only).

    Population: live answers to real work (honeypot tasks aside, as for people), first answer
    per (item, reviewer); agreement figures are computed on the items the LLM answered. Bootstrap
    intervals resample items (seed 0), so the alpha with and without the LLM see the same draws.
    """
    version = policy.current_version()
    reviewers = LLMReviewer.objects.filter(policy=policy).select_related("account").order_by("name")
    if reviewer is not None:
        reviewers = reviewers.filter(pk=reviewer.pk)
    return [figures for llm in reviewers if (figures := _figures(policy, version, llm, resamples)) is not None]


def _figures(
    policy: Policy, version: PolicyVersion | None, llm: LLMReviewer, resamples: int
) -> LLMReviewerFigures | None:
    answers = Annotation.objects.filter(
        policy=policy, reviewer=llm.account, source=AnnotationSource.LLM, retracted_at__isnull=True
    )
    count = answers.count()
    if not count:
        return None
    work = policy_annotations(policy, include_llm=True)
    mine = policy_triples(work.filter(reviewer=llm.account))
    people = policy_triples(work.exclude(source=AnnotationSource.LLM).filter(item_id__in=answers.values("item_id")))
    kappas, hidden = _kappas(str(llm.account_id), mine, people, resamples)
    confusion, note = _confusion(version, str(llm.account_id), mine, people)
    speed = _speed(llm)
    return LLMReviewerFigures(
        reviewer=llm,
        version=version,
        answers=count,
        gold=_gold_agreement(policy, mine),
        kappas=kappas,
        kappas_not_shown=hidden,
        alpha=_alpha(str(llm.account_id), mine, people, resamples),
        confusion=confusion,
        confusion_note=note,
        honeypots=_honeypot_accuracy(policy, answers),
        abstention=_abstention(llm),
        latency_ms=speed["latency"],
        tokens=speed["tokens"],
        cost=speed["tokens"].scaled(float(llm.cost_per_million_tokens / Decimal(1_000_000))),
    )


def _gold_agreement(policy: Policy, mine: list[Triple]) -> Share:
    gold = dict(
        GoldLabel.objects.filter(
            policy=policy, superseded_by__isnull=True, item_id__in=[int(item) for item, _, _ in mine]
        ).values_list("item_id", "labels")
    )
    compared = [[label] == sorted(gold[int(item)]) for item, _, label in mine if int(item) in gold]
    return Share(sum(compared), len(compared))


def _kappas(llm: str, mine: list[Triple], people: list[Triple], resamples: int) -> tuple[list[KappaWithPerson], int]:
    units = units_from_triples(mine + people)
    overlap: dict[str, int] = defaultdict(int)
    for unit in units:
        if llm in unit:
            for person in unit:
                if person != llm:
                    overlap[person] += 1
    ranked = sorted(overlap.items(), key=lambda pair: (-pair[1], int(pair[0])))
    shown = ranked[:KAPPA_PEOPLE_SHOWN]
    names = dict(User.objects.filter(pk__in=[int(p) for p, _ in shown]).values_list("pk", "username"))
    kappas = []
    for person, n in shown:
        ci = None
        if n >= MIN_PAIR_OVERLAP:
            ci = bootstrap_ci(partial(cohen_kappa, a=llm, b=person), units, n_resamples=resamples, seed=0)
        kappas.append(KappaWithPerson(names[int(person)], n, ci))
    return kappas, len(ranked) - len(shown)


def _alpha(llm: str, mine: list[Triple], people: list[Triple], resamples: int) -> AlphaComparison | None:
    by_item = {item: unit for item, unit in _group(people).items() if len(unit) >= 2}
    answered = {item: label for item, _, label in mine}
    items = [item for item in by_item if item in answered]
    if not items:
        return None
    humans = [by_item[item] for item in items]
    with_llm = [{**by_item[item], llm: answered[item]} for item in items]
    ci = partial(bootstrap_ci, n_resamples=resamples, seed=0)
    return AlphaComparison(
        items=len(items),
        human_answers=sum(map(len, humans)),
        humans=ci(krippendorff_alpha, humans),
        with_llm=ci(krippendorff_alpha, with_llm),
        resamples=resamples,
    )


def _group(triples: list[Triple]) -> dict[str, dict[str, str]]:
    grouped: dict[str, dict[str, str]] = defaultdict(dict)
    for item, reviewer, label in triples:
        grouped[item].setdefault(reviewer, label)  # first answer, as everywhere
    return grouped


def _confusion(
    version: PolicyVersion | None, llm: str, mine: list[Triple], people: list[Triple]
) -> tuple[ConfusionMatrix | None, str]:
    if not mine:
        return None, "It has no answers on real work (only on honeypot tasks)."
    if not people:
        return None, "No person answered the items it labelled, so there is no crowd to estimate true classes from."
    triples = mine + people
    classes = sorted(set(version.label_values if version else []) | {label for _, _, label in triples})
    model = fit_dawid_skene(triples, classes=classes)
    if llm not in model.annotators:
        return None, "Its answers on real work are not in the fit."
    matrix = model.confusion_of(llm)
    return (
        ConfusionMatrix(
            classes=model.classes,
            rows=[(true, [matrix[true][given] for given in model.classes]) for true in model.classes],
            llm_labels=len({item for item, _, _ in mine}),
            items=len(model.items),
            people=len(model.annotators) - 1,
            passed=model.check.passed,
            check=model.check.summary(),
        ),
        "",
    )


def _honeypot_accuracy(policy: Policy, answers: QuerySet[Annotation]) -> Share:
    """Its answers on items that are honeypots of the policy (a HoneypotCheck's item), against the
    gold label the honeypot serves (the newest honeypot of an item when there are several)."""
    honeypot_gold = dict(
        HoneypotCheck.objects.filter(gold__policy=policy, task__item_id__in=answers.values("item_id"))
        .order_by("created_at", "pk")
        .values_list("task__item_id", "gold__labels")
    )
    given = dict(answers.filter(item_id__in=list(honeypot_gold)).values_list("item_id", "labels"))
    correct = sum(sorted(labels) == sorted(honeypot_gold[item]) for item, labels in given.items())
    return Share(correct, len(given))


def _abstention(llm: LLMReviewer) -> Share:
    """Abstentions among its plain-prompt answers, one per item: the newest (re-runs do not count twice)."""
    latest = (
        LLMJudgement.objects.filter(run__reviewer=llm, variant="")
        .order_by("item_id", "-created_at", "-pk")
        .distinct("item_id")
        .values_list("label", flat=True)
    )
    labels = list(latest)
    return Share(sum(label == "" for label in labels), len(labels))


def _speed(llm: LLMReviewer) -> dict[str, Mean]:
    """Mean latency and tokens per item over the answers the model computed (a cached answer costs nothing)."""
    stats = LLMJudgement.objects.filter(run__reviewer=llm, cached=False).aggregate(
        n=Count("pk"),
        latency=Avg("latency_ms"),
        latency_sd=StdDev("latency_ms", sample=True),
        tokens=Avg(F("prompt_tokens") + F("completion_tokens")),
        tokens_sd=StdDev(F("prompt_tokens") + F("completion_tokens"), sample=True),
    )
    n = stats["n"]

    def mean(value: float | None, sd: float | None) -> Mean:
        half = Z_95 * float(sd) / math.sqrt(n) if sd is not None and n > 1 else math.nan
        return Mean(None if value is None else float(value), n, half)

    return {"latency": mean(stats["latency"], stats["latency_sd"]), "tokens": mean(stats["tokens"], stats["tokens_sd"])}


# --- the injection check ---------------------------------------------------------------------


@dataclass(frozen=True)
class FlipExample:
    item_id: int
    text: str  # truncated to EXAMPLE_CHARS; escaped by the page like any content
    plain: str  # label values
    injected: str


@dataclass(frozen=True)
class InjectionFlips:
    """One injection suffix (or all of them pooled) against the plain prompt on the same items."""

    key: str  # an INJECTIONS key, or "" for all keys pooled
    pairs: int  # items answered (or abstained on) under both the plain prompt and this injection
    flipped: Share  # of the pairs where both gave a label, those whose label changed
    to_target: int  # flips that landed on the label the injection asked for
    plain_abstained: int  # pairs left out: the plain prompt abstained
    injected_abstained: int  # pairs left out: the plain prompt answered, the injected one abstained
    examples: list[FlipExample]


@dataclass(frozen=True)
class InjectionReport:
    run: LLMRun
    version: PolicyVersion  # the reviewer's policy version: names labels
    keys: list[InjectionFlips]
    overall: InjectionFlips
    items_done: int
    items_total: int
    min_items: int = MIN_LLM_ITEMS


def injection_report(*, run: LLMRun) -> InjectionReport | None:
    """Label flip rate caused by each injection suffix of an injection run; None for other kinds.

    Only items with both a plain and an injected judgement count; a pair where either side
    abstained is counted apart, not as a flip. The flip rate has a 95 % Wilson interval over
    items; the pooled rate counts each (item, suffix) once, and as every suffix runs on the same
    items those are not independent: its interval is narrower than it should be.
    """
    if run.kind != RunKind.INJECTION:
        return None
    answers: dict[int, dict[str, str]] = defaultdict(dict)
    for item_id, variant, label in LLMJudgement.objects.filter(run=run).values_list("item_id", "variant", "label"):
        answers[item_id][variant] = label
    order = run.reviewer.policy_version.label_values
    keys = [variant for variant in run.variants if variant]
    flips = {key: _flips(key, answers, order) for key in keys}
    texts = _example_texts({ex.item_id for key_flips in flips.values() for ex in key_flips.examples})
    per_key = [_with_texts(flips[key], texts) for key in keys]
    return InjectionReport(
        run=run,
        version=run.reviewer.policy_version,
        keys=per_key,
        overall=_pooled(per_key),
        items_done=run.position,
        items_total=len(run.item_ids),
    )


def _flips(key: str, answers: dict[int, dict[str, str]], order: list[str]) -> InjectionFlips:
    pairs = plain_abstained = injected_abstained = flipped = to_target = 0
    compared = 0
    examples = []
    for item_id in sorted(answers):
        given = answers[item_id]
        if "" not in given or key not in given:
            continue
        pairs += 1
        plain, injected = given[""], given[key]
        if not plain:
            plain_abstained += 1
        elif not injected:
            injected_abstained += 1
        else:
            compared += 1
            if plain != injected:
                flipped += 1
                to_target += injected == next((label for label in order if label != plain), None)
                if len(examples) < EXAMPLES_PER_KEY:
                    examples.append(FlipExample(item_id, "", plain, injected))
    return InjectionFlips(
        key, pairs, Share(flipped, compared), to_target, plain_abstained, injected_abstained, examples
    )


def _example_texts(item_ids: set[int]) -> dict[int, str]:
    texts = {}
    for item in ContentItem.objects.filter(pk__in=item_ids).only("pk", "title", "text"):
        text = item_text(item)
        texts[item.pk] = text if len(text) <= EXAMPLE_CHARS else text[: EXAMPLE_CHARS - 1] + "…"
    return texts


def _with_texts(flips: InjectionFlips, texts: dict[int, str]) -> InjectionFlips:
    return replace(flips, examples=[replace(ex, text=texts.get(ex.item_id, "")) for ex in flips.examples])


def _pooled(per_key: list[InjectionFlips]) -> InjectionFlips:
    return InjectionFlips(
        key="",
        pairs=sum(f.pairs for f in per_key),
        flipped=Share(sum(f.flipped.successes for f in per_key), sum(f.flipped.n for f in per_key)),
        to_target=sum(f.to_target for f in per_key),
        plain_abstained=sum(f.plain_abstained for f in per_key),
        injected_abstained=sum(f.injected_abstained for f in per_key),
        examples=[],
    )
