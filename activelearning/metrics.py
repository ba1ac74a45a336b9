"""Active learning's figures on /metrics and /ops/: the model in use per policy, the latest round's timings,
and the online figures of automation (audit-sample precision, clear misses, appeal overturns).

Registered with reviewapp's metrics in `ActivelearningConfig.ready()`; the metric names keep the
`reviewapp_` prefix every series of this deployment has, so dashboards and alerts do not change.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from labeling.models import Policy

from .models import ModelStatus, ModelVersion, RunStatus, TrainingRun
from .services.drift import drift_latest
from .services.online_metrics import online_metrics_compute


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


ONLINE_VERSIONS = 3  # model versions per policy on /metrics: bounded label cardinality


class OnlineCollector(Collector):
    """Online figures of the current ISO week, per policy and its `ONLINE_VERSIONS` most recently
    seen model versions (`activelearning.services.online_metrics`). A figure without data (no
    audited item, no decided appeal) is left out rather than written as 0 or NaN."""

    def collect(self) -> Iterator[Metric]:
        labels = ["policy", "model_name", "model_version"]

        def gauge(name: str, text: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"reviewapp_online_{name}", text, labels=labels)

        families = {
            "precision": gauge("precision", "Precision of automatic actions this ISO week (Hájek, audit sample)"),
            "precision_lower": gauge("precision_lower", "Lower end of its 95 % interval"),
            "precision_upper": gauge("precision_upper", "Upper end of its 95 % interval"),
            "precision_n_eff": gauge("precision_n_eff", "Kish effective sample size of the precision estimate"),
            "precision_alert": gauge("precision_alert", "1 when the precision interval lies below the target"),
            "clear_miss_rate": gauge("clear_miss_rate", "Violations among automatic clears this ISO week (Hájek)"),
            "clear_miss_rate_lower": gauge("clear_miss_rate_lower", "Lower end of its 95 % interval"),
            "clear_miss_rate_upper": gauge("clear_miss_rate_upper", "Upper end of its 95 % interval"),
            "clear_miss_rate_n_eff": gauge("clear_miss_rate_n_eff", "Kish effective sample size of the miss rate"),
            "appeal_overturn_rate": gauge("appeal_overturn_rate", "Overturned share of decided appeals this week"),
        }
        for policy in Policy.objects.filter(is_active=True):
            for model in online_metrics_compute(policy=policy, weeks=1, versions=ONLINE_VERSIONS).models:
                if not model.weeks:
                    continue
                week, values = model.weeks[-1], [policy.key, model.model_name, model.model_version]
                for prefix, share in (("precision", week.precision), ("clear_miss_rate", week.miss_rate)):
                    if share.estimate is not None and share.low is not None and share.high is not None:
                        families[prefix].add_metric(values, share.estimate)
                        families[f"{prefix}_lower"].add_metric(values, share.low)
                        families[f"{prefix}_upper"].add_metric(values, share.high)
                        families[f"{prefix}_n_eff"].add_metric(values, share.n_eff)
                if week.precision.estimate is not None:
                    families["precision_alert"].add_metric(values, 1.0 if week.alert else 0.0)
                if week.overturns.rate is not None:
                    families["appeal_overturn_rate"].add_metric(values, week.overturns.rate)
        yield from families.values()


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
