"""Active learning's figures on /metrics and /ops/: the model in use per policy and the latest round's timings.

Registered with reviewapp's metrics in `ActivelearningConfig.ready()`; the metric names keep the
`reviewapp_` prefix every series of this deployment has, so dashboards and alerts do not change.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .models import ModelStatus, ModelVersion, RunStatus, TrainingRun
from .services.drift import drift_latest


class ModelCollector(Collector):
    """The model version in use per policy, and the timings of each policy's latest finished round."""

    def collect(self) -> Iterator[object]:
        in_use = GaugeMetricFamily(
            "reviewapp_model_in_use_info", "Champion model of a policy (1)", labels=["policy", "model", "version"]
        )
        for version in ModelVersion.objects.filter(status=ModelStatus.CHAMPION).select_related("policy"):
            in_use.add_metric([version.policy.key, version.model_name, version.version_label], 1)
        yield in_use
        labels = ["policy", "status"]
        duration = GaugeMetricFamily(
            "reviewapp_al_round_duration_seconds", "Latest finished active-learning round, start to end", labels=labels
        )
        finished = GaugeMetricFamily(
            "reviewapp_al_round_finished_timestamp_seconds", "When the latest round finished", labels=labels
        )
        stages = GaugeMetricFamily(
            "reviewapp_al_round_stage_seconds", "Stages of the latest finished round", labels=["policy", "stage"]
        )
        latest = (
            TrainingRun.objects.filter(status__in=[RunStatus.SUCCEEDED, RunStatus.FAILED], finished_at__isnull=False)
            .order_by("policy_id", "-created_at")
            .distinct("policy_id")
            .select_related("policy")
        )
        for run in latest:
            key = run.policy.key
            finished.add_metric([key, run.status], run.finished_at.timestamp())
            if run.started_at is not None:
                duration.add_metric([key, run.status], (run.finished_at - run.started_at).total_seconds())
            for stage, seconds in sorted(run.timings.items()):
                stages.add_metric([key, stage], float(seconds))
        yield from (duration, finished, stages)


class DriftCollector(Collector):
    """PSI per feature per policy of live decisions against the champion's training items, as last
    measured (`services/drift.py`: the beat every 15 minutes, or a page or REST read); no database read."""

    def collect(self) -> Iterator[object]:
        labels = ["policy", "feature", "live_source"]
        psi = GaugeMetricFamily(
            "reviewapp_al_drift_psi",
            "Population stability index of a feature: live window vs the champion's training items",
            labels=labels,
        )
        alert = GaugeMetricFamily(
            "reviewapp_al_drift_alert", "1 when a feature's PSI reached the alert threshold (0.25)", labels=["policy"]
        )
        measured_at = GaugeMetricFamily(
            "reviewapp_al_drift_measured_timestamp_seconds", "When drift was last measured", labels=["policy"]
        )
        for policy, latest in sorted(drift_latest().items()):
            for feature, value in sorted(latest["psi"].items()):
                psi.add_metric([policy, feature, latest["live_source"]], value)
            alert.add_metric([policy], 1.0 if latest["alert"] else 0.0)
            measured_at.add_metric([policy], latest["measured_at"])
        yield from (psi, alert, measured_at)
