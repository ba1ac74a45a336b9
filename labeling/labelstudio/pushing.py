"""What a review task looks like as a Label Studio task: item data, context and prediction."""

from __future__ import annotations

from typing import Any

from labeling.models import PolicyVersion
from reviewapp.models import ReviewTask

from .labelconfig import choice_results, context_text


def task_payload(task: ReviewTask, version: PolicyVersion, *, marker: str) -> dict[str, Any]:
    """A Label Studio task for `task` (needs item, decision and queue loaded).

    The model's prediction becomes a pre-annotation with its model as `model_version`, unless
    the queue is blind (reviewers there must not see model output) or the prediction is not a
    label of this policy version. `data[marker]` holds the review task id, which is how an
    interrupted push is reconciled.
    """
    item = task.item
    payload: dict[str, Any] = {
        "data": {
            "text": item.text or item.title,
            "title": item.title,
            "context": context_text(item.context),
            "media_urls": list(item.media_urls),
            "item": f"{item.source}:{item.external_id}",
            "queue": task.queue.slug,
            "reason": task.reason,
            marker: task.pk,
        },
        "meta": {"reviewapp_item_id": item.pk, "policy_version": version.number},
    }
    decision = task.decision
    if decision is not None and not task.queue.blind_review and decision.predicted_label in version.label_values:
        payload["predictions"] = [
            {
                "model_version": f"{decision.model_name}@{decision.model_version}",
                "score": decision.score,
                "result": choice_results([decision.predicted_label]),
            }
        ]
    return payload
