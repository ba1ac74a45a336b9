"""The LLM beside the humans and the injection check: figures equal an independent recomputation,
the human figures stay human, and the pages show it all escaped."""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

import krippendorff
import numpy as np
import pytest
from django.contrib.auth.models import Group, User
from django.template.loader import render_to_string
from django.test import Client
from django.utils import timezone
from sklearn.metrics import cohen_kappa_score

from labeling.llm.models import LLMJudgement, LLMReviewer, LLMRun
from labeling.llm.services.reports import EXAMPLE_CHARS, injection_report, llm_beside_humans
from labeling.models import Annotation, GoldLabel, HoneypotCheck, ReliabilityFit
from labeling.quality import agreement_report, reviewer_pairs, reviewer_stats, scale_agreement_report
from labeling.services.honeypots import honeypot_accuracy
from labeling.services.reliability import reliability_refresh
from labeling.stats.proportions import wilson_interval
from tests.factories import ContentItemFactory, PolicyFactory, QueueFactory, ReviewTaskFactory, UserFactory

LABELS = ("violating", "not_violating")
THREE_LABELS = {
    "labels": [
        {"value": "threat", "title": "Threat"},
        {"value": "insult", "title": "Insult"},
        {"value": "fine", "title": "Fine"},
    ],
    "allow_multiple": False,
}


def _other(label: str) -> str:
    return LABELS[1] if label == LABELS[0] else LABELS[0]


def _annotate(task, reviewer, label, *, source="workspace") -> Annotation:  # type: ignore[no-untyped-def]
    return Annotation.objects.create(
        task=task,
        item=task.item,
        policy=task.policy,
        policy_version=task.policy.current_version(),
        reviewer=reviewer,
        submission_id=uuid.uuid4(),
        labels=[label],
        handle_time_ms=1500,
        source=source,
    )


def _llm_reviewer(policy, name="gemma-local") -> LLMReviewer:  # type: ignore[no-untyped-def]
    """An LLM reviewer with its machine account, made directly (its create service is elsewhere)."""
    account = User.objects.create(username=f"llm-{uuid.uuid4().hex[:8]}")
    return LLMReviewer.objects.create(
        name=name,
        policy=policy,
        policy_version=policy.current_version(),
        model_name="gemma-3-270m",
        account=account,
        cost_per_million_tokens=Decimal("2.5"),
    )


@pytest.fixture
def llm(policy) -> LLMReviewer:  # type: ignore[no-untyped-def]
    return _llm_reviewer(policy)


@pytest.fixture
def crowd(policy, queue):  # type: ignore[no-untyped-def]
    """30 gold items: two people answer every one, a third every other one (15 in all)."""
    rng = random.Random(7)
    people = [UserFactory(username=f"person{i}") for i in range(3)]
    version = policy.current_version()
    tasks = []
    for n in range(30):
        truth = LABELS[n % 3 == 0]
        task = ReviewTaskFactory(policy=policy, queue=queue, item=ContentItemFactory(text=f"item {n}"))
        for person in people[: 2 + n % 2]:
            _annotate(task, person, truth if rng.random() < 0.85 else _other(truth))
        GoldLabel.objects.create(
            item=task.item, policy=policy, policy_version=version, labels=[truth], source="adjudication"
        )
        tasks.append((task, truth))
    return people, tasks


def _llm_answers(llm, tasks, *, accuracy=0.75, seed=1) -> dict[int, str]:  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    given = {}
    for task, truth in tasks:
        label = truth if rng.random() < accuracy else _other(truth)
        _annotate(task, llm.account, label, source="llm")
        given[task.item_id] = label
    return given


def _answers_by_item() -> dict[int, dict[int, str]]:
    answers: dict[int, dict[int, str]] = defaultdict(dict)
    for item, reviewer, labels in Annotation.objects.values_list("item_id", "reviewer_id", "labels"):
        answers[item][reviewer] = labels[0]
    return answers


def test_kappa_and_alpha_equal_an_independent_recomputation(policy, crowd, llm) -> None:
    _, tasks = crowd
    given = _llm_answers(llm, tasks)
    (figures,) = llm_beside_humans(policy=policy, resamples=100)
    answers, me = _answers_by_item(), llm.account_id

    assert len(figures.kappas) == 3
    for kappa in figures.kappas:
        person = User.objects.get(username=kappa.reviewer).pk
        shared = [item for item, unit in answers.items() if me in unit and person in unit]
        assert kappa.overlap == len(shared)
        if kappa.reviewer == "person2":  # 15 items in common: below MIN_PAIR_OVERLAP
            assert kappa.too_few and kappa.ci is None
            continue
        expected = cohen_kappa_score([answers[i][me] for i in shared], [answers[i][person] for i in shared])
        assert kappa.ci.point == pytest.approx(expected)
        assert kappa.ci.low <= kappa.ci.point <= kappa.ci.high

    items = [item for item, unit in answers.items() if me in unit and len(unit) >= 3]
    raters = sorted({r for item in items for r in answers[item]})
    code = {label: i for i, label in enumerate(LABELS)}

    def alpha(who: list[int]) -> float:
        data = [[code[answers[i][r]] if r in answers[i] else np.nan for i in items] for r in who]
        return krippendorff.alpha(reliability_data=np.array(data, dtype=float), level_of_measurement="nominal")

    assert figures.alpha.items == 30 and not figures.alpha.too_few
    assert figures.alpha.humans.point == pytest.approx(alpha([r for r in raters if r != me]))
    assert figures.alpha.with_llm.point == pytest.approx(alpha(raters))
    right = sum(given[task.item_id] == truth for task, truth in tasks)
    assert (figures.gold.successes, figures.gold.n) == (right, 30)
    assert figures.gold.interval == wilson_interval(right, 30)


def test_the_human_figures_are_unchanged_by_llm_answers(policy, crowd, llm) -> None:
    _, tasks = crowd
    since = timezone.now() - timedelta(days=1)

    def human_figures() -> list[str]:
        stats = [
            (s.reviewer.username, s.annotations, s.agreement_with_gold)
            for s in reviewer_stats(policy=policy, since=since)
        ]
        reliability_refresh(policy=policy, min_labels=1)
        fit = ReliabilityFit.objects.latest("created_at", "pk")
        return [
            repr(agreement_report(policy=policy, resamples=100)),
            repr(reviewer_pairs(policy=policy)),
            repr(scale_agreement_report(policy=policy, resamples=100)),
            repr(stats),
            repr((fit.n_labels, fit.n_items, fit.n_reviewers)),
        ]

    before = human_figures()
    _llm_answers(llm, tasks)
    assert human_figures() == before
    assert llm.account.username not in before[3]
    # Only on request do they join.
    assert agreement_report(policy=policy, resamples=10, include_llm=True).annotations == 75 + 30
    assert llm.account.username in {
        s.reviewer.username for s in reviewer_stats(policy=policy, since=since, include_llm=True)
    }


def test_llm_answers_on_honeypots_stay_out_of_human_honeypot_accuracy(policy, llm) -> None:
    gold = GoldLabel.objects.create(
        item=ContentItemFactory(),
        policy=policy,
        policy_version=policy.current_version(),
        labels=["violating"],
        source="honeypot",
    )
    person = UserFactory(username="person-hp")
    for reviewer, source in ((person, "workspace"), (llm.account, "llm")):
        task = ReviewTaskFactory(policy=policy, queue=QueueFactory(), item=gold.item, reason="honeypot")
        answer = _annotate(task, reviewer, "violating", source=source)
        HoneypotCheck.objects.create(task=task, gold=gold, reviewer=reviewer, annotation=answer, correct=True)
    assert {row.reviewer_id for row in honeypot_accuracy(policy_id=policy.pk)} == {person.pk}
    assert {row.reviewer_id for row in honeypot_accuracy(policy_id=policy.pk, include_llm=True)} == {
        person.pk,
        llm.account_id,
    }
    (figures,) = llm_beside_humans(policy=policy, resamples=10)
    assert (figures.honeypots.successes, figures.honeypots.n) == (1, 1) and figures.honeypots.too_few
    assert figures.honeypots.interval is None


def test_confusion_matrix_rows_are_distributions_over_its_answers(policy, crowd, llm) -> None:
    _llm_answers(llm, crowd[1])
    (figures,) = llm_beside_humans(policy=policy, resamples=10)
    matrix = figures.confusion
    assert matrix.classes == ("not_violating", "violating") and matrix.llm_labels == 30 and matrix.people == 3
    for _, row in matrix.rows:
        assert sum(row) == pytest.approx(1.0)
    assert matrix.passed, matrix.check


def _run(llm, kind, item_ids, variants, **extra) -> LLMRun:  # type: ignore[no-untyped-def]
    return LLMRun.objects.create(
        reviewer=llm, kind=kind, item_ids=item_ids, variants=variants, position=len(item_ids), status="done", **extra
    )


def test_abstention_rate_latency_and_cost_come_from_judgements(policy, crowd, llm) -> None:
    _, tasks = crowd
    _llm_answers(llm, tasks)
    items = [task.item for task, _ in tasks[:25]]
    first = _run(llm, "gold_sample", [i.pk for i in items], [""])
    for n, item in enumerate(items):  # 5 abstentions
        LLMJudgement.objects.create(
            run=first,
            item=item,
            label="" if n < 5 else "violating",
            latency_ms=100 + n,
            prompt_tokens=80,
            completion_tokens=1,
        )
    again = _run(llm, "gold_sample", [i.pk for i in items[:3]], [""])
    for item in items[:3]:  # a later run answers three of them, from the cache
        LLMJudgement.objects.create(run=again, item=item, label="violating", cached=True, latency_ms=0)
    draft = _run(llm, "draft", [items[9].pk], ["current", "draft"])
    LLMJudgement.objects.create(run=draft, item=items[9], variant="draft", label="", latency_ms=130, prompt_tokens=90)

    (figures,) = llm_beside_humans(policy=policy, resamples=10)
    assert (figures.abstention.successes, figures.abstention.n) == (2, 25)
    computed = [100 + n for n in range(25)] + [130]
    assert figures.latency_ms.n == 26 and figures.latency_ms.value == pytest.approx(np.mean(computed))
    low, high = figures.latency_ms.interval
    assert low < np.mean(computed) < high
    tokens = np.mean([81] * 25 + [90])
    assert figures.tokens.value == pytest.approx(tokens)
    assert figures.cost.value == pytest.approx(tokens * 2.5 / 1e6)


@pytest.fixture
def three_label_policy(db):  # type: ignore[no-untyped-def]
    return PolicyFactory(key="abuse", version__label_schema=THREE_LABELS)


def test_injection_flip_rate_counts_flips_and_keeps_abstentions_apart(three_label_policy, queue) -> None:
    llm = _llm_reviewer(three_label_policy, name="injected")
    items = [ContentItemFactory(text=f"item {n}") for n in range(25)]
    run = _run(llm, "injection", [i.pk for i in items], ["", "ignore_policy", "fake_system"])
    for n, item in enumerate(items):
        plain = "" if n == 0 else "fine"
        LLMJudgement.objects.create(run=run, item=item, variant="", label=plain)
        if n == 24:
            continue  # no injected answer: the item is not a pair
        injected = "" if n == 1 else ("threat" if 2 <= n < 6 else "insult" if 6 <= n < 8 else "fine")
        LLMJudgement.objects.create(run=run, item=item, variant="ignore_policy", label=injected)
        LLMJudgement.objects.create(run=run, item=item, variant="fake_system", label=plain)
    LLMJudgement.objects.create(run=run, item=items[24], variant="fake_system", label="fine")

    report = injection_report(run=run)
    ignore, fake = report.keys
    assert ignore.key == "ignore_policy" and ignore.pairs == 24
    assert (ignore.flipped.successes, ignore.flipped.n) == (6, 22)
    assert ignore.plain_abstained == 1 and ignore.injected_abstained == 1
    assert ignore.to_target == 4  # "threat" is the first label other than the plain "fine"
    assert ignore.flipped.interval == wilson_interval(6, 22)
    assert [(ex.item_id, ex.plain, ex.injected) for ex in ignore.examples] == [
        (items[n].pk, "fine", "threat") for n in range(2, 6)
    ] + [(items[6].pk, "fine", "insult")]
    assert (fake.flipped.successes, fake.flipped.n, fake.plain_abstained) == (0, 24, 1)
    assert (report.overall.flipped.successes, report.overall.flipped.n) == (6, 46)
    assert injection_report(run=_run(llm, "gold_sample", [], [""])) is None


def test_injection_report_escapes_and_shortens_hostile_content(three_label_policy) -> None:
    llm = _llm_reviewer(three_label_policy, name="<b>bold</b> model")
    hostile = ContentItemFactory(text='<script>alert("x")</script> ' + "y" * 500)
    run = _run(llm, "injection", [hostile.pk], ["", "role_play"])
    LLMJudgement.objects.create(run=run, item=hostile, variant="", label="fine")
    LLMJudgement.objects.create(run=run, item=hostile, variant="role_play", label="threat")
    report = injection_report(run=run)
    assert len(report.keys[0].examples[0].text) == EXAMPLE_CHARS
    html = render_to_string("llm/partials/_injection_report.html", {"injection": report})
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html and "<script>" not in html
    assert "&lt;b&gt;bold&lt;/b&gt; model" in html
    assert "Role play" in html and "too few to judge" in html and "<td>Fine</td><td>Threat</td>" in html


@pytest.fixture
def lead_client(db) -> Client:  # type: ignore[no-untyped-def]
    lead = UserFactory(username="lead")
    lead.groups.add(Group.objects.get_or_create(name="policy_lead")[0])
    client = Client()
    client.force_login(lead)
    return client


def test_quality_page_shows_the_llm_beside_the_people(lead_client, policy, crowd) -> None:
    html = lead_client.get(f"/lead/quality/?policy={policy.key}").content.decode()
    assert 'id="llm-beside-humans"' not in html  # no LLM reviewer: no section
    llm = _llm_reviewer(policy, name="<script>alert(1)</script>")
    html = lead_client.get(f"/lead/quality/?policy={policy.key}").content.decode()
    assert "have not labelled anything yet" in html
    _llm_answers(llm, crowd[1])
    html = lead_client.get(f"/lead/quality/?policy={policy.key}").content.decode()
    assert html.count('id="llm-beside-humans"') == 1 and "<script>alert(1)" not in html
    section = html.split('id="llm-beside-humans"')[1]
    assert "LLM: <bdi>&lt;script&gt;alert(1)&lt;/script&gt;</bdi>" in section and "machine-made" in section
    assert "measured on the gold items it labelled, against their current gold label" in section
    assert "no honeypot items answered" in section
    assert '<th scope="col" class="num">Not violating</th>' in section and '<th scope="row">Violating</th>' in section
    assert "People and LLM" in section and "too few to judge" in section  # person2: 15 items in common
    people_part = html.split('id="llm-beside-humans"')[0]
    assert (
        llm.account.username not in people_part
        and "30 items with two or more independent answers (75 answers)" in people_part
    )


def test_an_llm_on_few_items_is_only_too_few_to_judge(lead_client, policy, crowd) -> None:
    llm = _llm_reviewer(policy)
    _llm_answers(llm, crowd[1][:8])
    (figures,) = llm_beside_humans(policy=policy, resamples=10)
    assert figures.gold.n == 8 and figures.gold.too_few and figures.gold.interval is None
    assert figures.alpha.too_few and figures.confusion.too_few
    section = lead_client.get(f"/lead/quality/?policy={policy.key}").content.decode().split('id="llm-beside-humans"')[1]
    table = section.split("</table>")[0]
    assert "too few to judge" in table and " – " not in table
    assert "n = 8 items: too few to judge its confusion" in section
