"""Policy lead pages: adjudication, gold history, reviewer and policy quality."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseNotFound
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from reviewapp.access import lead_required
from reviewapp.audit import Actor
from reviewapp.charts import Bar, Point, bar_chart, line_chart
from reviewapp.content import hidden_characters, render_guideline
from reviewapp.models import Queue, QueueKind, TaskStatus
from reviewapp.projection import task_projection

from .llm.services.reports import llm_beside_humans
from .llm.services.suggestions import automation_bias_report
from .models import (
    Adjudication,
    AdjudicationStatus,
    Annotation,
    AnnotationSource,
    Appeal,
    AppealStatus,
    GoldLabel,
    Policy,
    PolicyVersion,
)
from .quality import (
    AgreementReport,
    agreement_over_time,
    agreement_report,
    reviewer_pairs,
    reviewer_stats,
    scale_agreement_report,
)
from .services.adjudication import (
    AdjudicationClosed,
    adjudication_decide,
    adjudication_send_back,
    adjudications_confirm_agreed,
)
from .services.appeals import (
    appeal_counts_by_policy,
    appeal_overturn_rates,
    appeals_listed,
    appeals_queue_active,
    appeals_queue_ensure,
)
from .services.consensus import plurality_of
from .services.reliability import reliabilities_in_force, reliability_fit_latest
from .tasks import refresh_reliability


@require_GET
@lead_required
def adjudication_list(request: HttpRequest) -> HttpResponse:
    adjudications = (
        Adjudication.objects.filter(status=AdjudicationStatus.OPEN)
        .select_related("task__item", "task__policy", "task__queue")
        .annotate(n_annotations=Count("task__annotations"))
        .order_by("created_at")
    )
    policy_key = request.GET.get("policy", "")
    if policy_key:
        adjudications = adjudications.filter(task__policy__key=policy_key)
    page = list(adjudications[:200])
    _name_proposals(page)
    context = {
        "adjudications": page,
        "policies": Policy.objects.all(),
        "policy_key": policy_key,
        "total": adjudications.count(),
    }
    return render(request, "labeling/adjudication_list.html", context)


def _name_proposals(adjudications: Sequence[Adjudication]) -> None:
    """Set `proposal_names`: the proposal's display names, or "" unless the live answers hold it by plurality.

    One query for the live answers of the whole page, one per policy for its current version.
    """
    tasks = [a.task_id for a in adjudications]
    votes: dict[int, list[tuple[str, ...]]] = {task_id: [] for task_id in tasks}
    human = Annotation.objects.filter(task_id__in=tasks, retracted_at__isnull=True).exclude(source=AnnotationSource.LLM)
    for task_id, labels in human.values_list("task_id", "labels"):
        votes[task_id].append(tuple(sorted(labels)))
    policies = {a.task.policy_id: a.task.policy for a in adjudications}
    versions = {policy_id: policy.current_version() for policy_id, policy in policies.items()}
    for a in adjudications:
        proposal: list[str] = a.proposed_labels or []
        version = versions[a.task.policy_id]
        shown = bool(proposal) and plurality_of(votes[a.task_id]) == tuple(sorted(proposal))
        a.proposal_names = (  # type: ignore[attr-defined]
            ", ".join(version.label_title(v) if version else v for v in proposal) if shown else ""
        )


@require_GET
@lead_required
def adjudication_detail(request: HttpRequest, pk: int) -> HttpResponse:
    adjudication = get_object_or_404(
        Adjudication.objects.select_related("task__item", "task__policy", "task__queue", "task__decision"), pk=pk
    )
    return render(request, "labeling/adjudication_detail.html", _detail_context(adjudication))


def _detail_context(adjudication: Adjudication, error: str = "") -> dict[str, Any]:
    task = adjudication.task
    version = task.policy.current_version()
    annotations = list(task.annotations.select_related("reviewer", "policy_version").order_by("created_at"))
    reliability = dict(
        reliabilities_in_force(policy_id=task.policy_id, reviewer_ids=[a.reviewer_id for a in annotations]).values_list(
            "reviewer_id", "accuracy"
        )
    )
    for annotation in annotations:
        annotation.reliability = reliability.get(annotation.reviewer_id)  # type: ignore[attr-defined]
    preselected = _preselected(adjudication, annotations)
    return {
        "adjudication": adjudication,
        "task": task,
        "view": task_projection(task=task, version=version, blind=False),  # leads see the model's line
        "annotations": annotations,
        "version": version,
        "guideline_html": render_guideline(version.guideline) if version else "",
        "revealed": True,  # leads see media on purpose; their tool is not a work queue
        "label_keys": [
            (str(i + 1) if i < 9 else "", label["value"], version.label_title(label["value"]))
            for i, label in enumerate(version.label_schema["labels"])
        ]
        if version
        else [],
        "preselected": preselected,
        "no_default": bool(adjudication.proposed_labels) and not preselected,
        "gold_history": GoldLabel.objects.filter(item=task.item, policy=task.policy)
        .select_related("policy_version", "adjudicator")
        .order_by("-version"),
        "error": error,
    }


def _preselected(adjudication: Adjudication, annotations: list[Annotation]) -> list[str]:
    """The proposal, pre-selected only when the live answers hold it by a strict plurality.

    Focus starts on the first label and Enter records the form, so a pre-selected label on a tie
    (1–1, 2–2, a weighted rule's equal weights) would make an arbitrary answer gold with one key.
    A weighted proposal that outvotes the head count is not pre-selected either: the lead decides.
    """
    proposal = adjudication.proposed_labels
    live = [tuple(sorted(a.labels)) for a in annotations if a.retracted_at is None]
    if not proposal or plurality_of(live) != tuple(sorted(proposal)):
        return []
    return list(proposal)


@require_POST
@lead_required
def adjudication_decide_view(request: HttpRequest, pk: int) -> HttpResponse:
    adjudication = get_object_or_404(Adjudication.objects.select_related("task__item", "task__policy"), pk=pk)
    try:
        adjudication_decide(
            adjudication_id=pk,
            lead=request.user,
            labels=request.POST.getlist("labels"),
            severity=request.POST.get("severity", ""),
            note=request.POST.get("note", "")[:2000],
        )
    except ValidationError as error:
        # The service validates before it writes anything, so the lead can simply try again.
        return render(
            request,
            "labeling/adjudication_detail.html",
            _detail_context(adjudication, " ".join([*error.messages, "Nothing was recorded."])),
            status=400,
        )
    except AdjudicationClosed as error:
        messages.warning(request, str(error))
        return redirect("adjudication-list")
    messages.success(request, "Decided: the gold label is recorded.")
    return redirect(_next_adjudication_url(pk))


@require_POST
@lead_required
def adjudication_send_back_view(request: HttpRequest, pk: int) -> HttpResponse:
    adjudication = get_object_or_404(Adjudication.objects.select_related("task__item", "task__policy"), pk=pk)
    try:
        adjudication_send_back(adjudication_id=pk, lead=request.user, note=request.POST.get("note", "")[:2000])
    except ValidationError as error:
        return render(
            request,
            "labeling/adjudication_detail.html",
            _detail_context(adjudication, " ".join(error.messages)),
            status=400,
        )
    except AdjudicationClosed as error:
        messages.warning(request, str(error))
        return redirect("adjudication-list")
    messages.success(request, "Sent back for another review.")
    return redirect(_next_adjudication_url(pk))


def _next_adjudication_url(after_pk: int) -> str:
    following = Adjudication.objects.filter(status=AdjudicationStatus.OPEN).order_by("created_at").first()
    if following is None:
        return "/lead/adjudications/"
    return f"/lead/adjudications/{following.pk}/"


@require_POST
@lead_required
def adjudication_bulk_confirm(request: HttpRequest) -> HttpResponse:
    try:
        ids = _adjudication_ids(request.POST.getlist("ids"))
    except ValidationError as error:
        return HttpResponseBadRequest(" ".join(error.messages), content_type="text/plain; charset=utf-8")
    unknown = sorted(set(ids) - set(Adjudication.objects.filter(pk__in=ids).values_list("pk", flat=True)))
    if unknown:
        # Nothing is confirmed: a list with a wrong id in it is not what the lead meant to send.
        message = f"No adjudication has the id {', '.join(map(str, unknown))}; nothing was confirmed."
        return HttpResponseNotFound(message, content_type="text/plain; charset=utf-8")
    made = adjudications_confirm_agreed(adjudication_ids=ids, lead=request.user)
    skipped = len(ids) - len(made)
    messages.success(request, f"Confirmed {len(made)} agreed items as gold; {skipped} left for a decision.")
    return redirect("adjudication-list")


BIGINT_MAX = 2**63 - 1


def _adjudication_ids(values: list[str]) -> list[int]:
    """Distinct ids, in the order given; ValidationError unless each is a positive bigint in ASCII digits.

    `str.isdigit()` is not enough: it accepts `²` and other Unicode digits that `int()` refuses.
    """
    ids: dict[int, None] = {}
    for value in values:
        # The length check comes first: int() refuses strings of more than 4300 digits with ValueError.
        if not (value.isascii() and value.isdigit() and len(value) <= 19 and 0 < int(value) <= BIGINT_MAX):
            raise ValidationError(f"{value[:40]!r} is not an adjudication id (a positive whole number).")
        ids[int(value)] = None
    return list(ids)


@require_GET
@lead_required
def gold_history(request: HttpRequest, item_id: int, policy_id: int) -> HttpResponse:
    labels = (
        GoldLabel.objects.filter(item_id=item_id, policy_id=policy_id)
        .select_related("policy_version", "adjudicator", "item")
        .order_by("-version")
    )
    if not labels:
        return render(request, "labeling/gold_history.html", {"labels": [], "item_id": item_id}, status=404)
    return render(request, "labeling/gold_history.html", {"labels": labels, "item": labels[0].item})


AGREEMENT_AXIS = "statistic, −0.2 to 1 (1 = perfect agreement, 0 = chance)"


def _agreement_chart(report: AgreementReport | None) -> Any:
    """The three statistics, with their intervals only when enough items stand behind them."""
    if report is None:
        return bar_chart([], title="Agreement", axis=AGREEMENT_AXIS, minimum=-0.2, percent=False)
    figures = (
        ("Percent agreement", report.percent),
        ("Fleiss' kappa", report.fleiss),
        ("Krippendorff's alpha", report.alpha),
    )
    if report.too_few:
        bars = [Bar(name, ci.point) for name, ci in figures]
        title = f"Agreement on {report.units} item{pluralize(report.units)}: too few for an interval"
    else:
        bars = [Bar(name, ci.point, ci.low, ci.high) for name, ci in figures]
        title = "Agreement with 95% bootstrap intervals"
    return bar_chart(bars, title=title, axis=AGREEMENT_AXIS, minimum=-0.2, percent=False)


@require_GET
@lead_required
def quality(request: HttpRequest) -> HttpResponse:
    """Reviewer quality and policy agreement for one policy, with charts."""
    policies = list(Policy.objects.filter(is_active=True))
    policy = next((p for p in policies if p.key == request.GET.get("policy")), policies[0] if policies else None)
    now = timezone.now()
    context: dict[str, Any] = {
        "policies": policies,
        "policy": policy,
        "overturns": appeal_overturn_rates(policy_id=policy.pk) if policy else {"policy": [], "model": []},
    }
    if policy is None:
        return render(request, "labeling/quality.html", context)
    queues = list(Queue.objects.filter(tasks__policy=policy).distinct().order_by("slug"))
    queue = next((q for q in queues if str(q.pk) == request.GET.get("queue")), None)
    stats = reviewer_stats(policy=policy, since=now - timedelta(days=30))
    report = agreement_report(policy=policy, queue_id=queue.pk if queue else None)
    # A week resting on too few items would draw a line through noise with a zero-width interval.
    trend = [(start, r) for start, r in agreement_over_time(policy=policy, now=now) if not r.too_few]
    context.update(
        queues=queues,
        queue=queue,
        stats=stats,
        report=report,
        scale_report=scale_agreement_report(policy=policy, queue_id=queue.pk if queue else None),
        reliability_fit=reliability_fit_latest(policy_id=policy.pk),
        accuracy_bar=settings.HONEYPOT_MIN_ACCURACY,
        pairs=reviewer_pairs(policy=policy),
        llm_figures=llm_beside_humans(policy=policy) if policy.llm_reviewers.exists() else None,
        automation_bias=automation_bias_report(queue=queue) if queue else automation_bias_report(policy=policy),
        accuracy_chart=bar_chart(
            [
                Bar(
                    s.reviewer.get_username(),
                    s.agreement_with_gold,
                    note=f"({s.gold_compared:,} item{pluralize(s.gold_compared)})",
                )
                for s in stats
                if s.agreement_with_gold is not None
            ][:25],
            title="Agreement with gold per reviewer",
            axis="share of answers equal to gold, %",
        ),
        agreement_rows=[
            ("Percent agreement", report.percent),
            ("Fleiss' kappa", report.fleiss),
            ("Krippendorff's alpha (nominal)", report.alpha),
        ]
        if report
        else [],
        agreement_chart=_agreement_chart(report),
        trend_chart=line_chart(
            [Point(start.strftime("%d %b"), r.alpha.point, r.alpha.low, r.alpha.high) for start, r in trend],
            title="Krippendorff's alpha per week",
            y_label="alpha",
            x_label="week starting",
        )
        if len(trend) > 1
        else None,
    )
    return render(request, "labeling/quality.html", context)


@require_POST
@lead_required
def reliability_refresh_view(request: HttpRequest) -> HttpResponse:
    policy = get_object_or_404(Policy, key=request.POST.get("policy", ""))
    refresh_reliability.delay(policy.pk)
    messages.info(request, f"Re-estimating reviewer reliability for {policy.name}; reload in a minute.")
    return redirect(f"/lead/quality/?policy={policy.key}")


APPEALS_PAGE = 50
QUEUE_OUTCOME_MESSAGES = {
    "created": (
        "Created the appeals queue “{name}”; reviewers and policy leads are its members. Upstream can open appeals now."
    ),
    "enabled": "Enabled the appeals queue “{name}” again. Upstream can open appeals now.",
    "existing": "The appeals queue “{name}” already exists.",
}


@require_GET
@lead_required
def appeal_list(request: HttpRequest) -> HttpResponse:
    """Appeals newest first, by policy and status, with the appeals queue's state and counts per policy."""
    policies = list(Policy.objects.order_by("name"))
    policy = next((p for p in policies if p.key == request.GET.get("policy")), None)
    status = request.GET.get("status", "")
    status = status if status in AppealStatus.values else ""
    before = request.GET.get("before", "")
    if before and not before.isdigit():
        return HttpResponseBadRequest("before: not an appeal id", content_type="text/plain; charset=utf-8")
    appeals = appeals_listed(
        policy_id=policy.pk if policy else None,
        status=status or None,
        before_id=int(before) if before else None,
        limit=APPEALS_PAGE + 1,
    )
    queue = appeals_queue_active()
    context = {
        "appeals": _described(appeals[:APPEALS_PAGE]),
        "older": appeals[APPEALS_PAGE - 1].pk if len(appeals) > APPEALS_PAGE else None,
        "policies": policies,
        "policy": policy,
        "status": status,
        "statuses": AppealStatus.choices,
        "counts": appeal_counts_by_policy(),
        "queue": queue,
        "queue_open": queue.tasks.filter(status=TaskStatus.OPEN).count() if queue else 0,
        "queue_inactive": queue is None and Queue.objects.filter(kind=QueueKind.APPEALS).exists(),
    }
    return render(request, "labeling/appeal_list.html", context)


def _described(appeals: list[Appeal]) -> list[Appeal]:
    """Set display names of the original and outcome labels, and the statement's hidden characters."""
    versions: dict[int, PolicyVersion | None] = {}
    for appeal in appeals:
        version = versions.setdefault(appeal.policy_id, appeal.policy.current_version())
        name = version.label_title if version else str
        appeal.original_names = [name(v) for v in appeal.original_labels]  # type: ignore[attr-defined]
        gold = appeal.outcome_gold
        appeal.outcome_names = [name(v) for v in gold.labels] if gold else []  # type: ignore[attr-defined]
        appeal.statement_hidden = hidden_characters(appeal.statement)  # type: ignore[attr-defined]
    return appeals


@require_POST
@lead_required
def appeals_queue_create(request: HttpRequest) -> HttpResponse:
    """Create (or enable again) the queue appeals are reviewed in; a no-op when one is active."""
    result = appeals_queue_ensure(actor=Actor.of(request.user))
    messages.success(request, QUEUE_OUTCOME_MESSAGES[result.outcome].format(name=result.queue.name))
    return redirect("appeal-list")
