"""Prometheus metrics at /metrics.

Web and worker processes are many and short-lived, so counters live in Redis (atomic increments
shared by every process) instead of per-process memory; queue gauges are read from PostgreSQL at
scrape time. Recording never raises: metrics must not break the work they describe. The counters
of one event (an accepted answer and its handle time) are written in one round trip.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Generator, Iterator

import redis
from celery import current_app
from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from django.db import connection
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

HANDLE_TIME_BUCKETS = (2, 5, 10, 20, 30, 60, 120, 300, 600)  # seconds
PREFIX = "metrics"
# Counter name → its label names; the Redis key of a series is metrics:<name>:<label values>.
COUNTERS = {
    "claims": ("queue",),
    "submissions": ("queue", "outcome"),
    "decisions_ingested": ("routing_outcome",),
    "celery_tasks": ("task", "state"),
}
SUBMISSION_OUTCOMES = ("accepted", "duplicate", "rejected")
TASK_STATES = ("success", "failure", "retry")


def _key(name: str, values: tuple[str, ...]) -> str:
    return ":".join((PREFIX, name, *values))


def count(name: str, *values: str, amount: int = 1) -> None:
    """Add `amount` to a counter series (label values in COUNTERS order)."""
    _add({_key(name, values): amount})


def observe_handle_time(seconds: float) -> None:
    _add(_handle_time_amounts(seconds))


def count_submission_accepted(*, queue: str, handle_seconds: float) -> None:
    """An accepted answer: its submissions counter and its handle time, in one round trip."""
    _add({_key("submissions", (queue, "accepted")): 1, **_handle_time_amounts(handle_seconds)})


def _handle_time_amounts(seconds: float) -> dict[str, int]:
    bucket = next((b for b in HANDLE_TIME_BUCKETS if seconds <= b), math.inf)
    return {_key("handle_time_bucket", (str(bucket),)): 1, _key("handle_time_ms_sum", ()): int(seconds * 1000)}


def _add(amounts: dict[str, int]) -> None:
    """Add to counter series (cache keys before prefixing). Never raises.

    On Redis: one pipelined INCRBY per series, so one round trip, atomic per key across
    processes, written where the cache API reads them (`ReviewappCollector`). Other cache
    backends (local memory in tests) take add-or-incr per series.
    """
    try:
        writer = redis_writer()
        if writer is None:
            for key, amount in amounts.items():
                if not cache.add(key, amount, timeout=None):
                    cache.incr(key, amount)
            return
        pipeline = writer.pipeline(transaction=False)
        for key, amount in amounts.items():
            pipeline.incrby(cache.make_and_validate_key(key), amount)
        pipeline.execute()
    except Exception:  # a metrics outage must not fail a claim or a submission
        log.warning("could not record metrics %s", ", ".join(amounts), exc_info=True)


_writers: dict[str, redis.Redis] = {}


def redis_writer() -> redis.Redis | None:
    """A client of the Redis server the cache writes to (its first), or None for other caches.

    Kept for the life of the process: Django's cache builds a client object for every call,
    which costs more CPU than the increment it sends.
    """
    if not isinstance(caches["default"], RedisCache):
        return None
    location = settings.CACHES["default"]["LOCATION"]
    server = re.split("[;,]", location)[0] if isinstance(location, str) else location[0]
    writer = _writers.get(server)
    if writer is None:
        writer = _writers[server] = redis.Redis.from_url(server)
    return writer


class ReviewappCollector(Collector):
    """Queue gauges from the database; counters and the handle-time histogram from Redis.

    The review workflow's own figures. Other apps add theirs with `collector_register`.
    """

    def collect(self) -> Iterator[object]:
        slugs = yield from self._queue_gauges()
        series = self._series(slugs)
        values = cache.get_many([_key(name, labels) for name, labels in series])
        for name, label_names in COUNTERS.items():
            family = CounterMetricFamily(f"reviewapp_{name}", f"{name.replace('_', ' ')}", labels=label_names)
            for series_name, labels in series:
                if series_name == name:
                    family.add_metric(list(labels), values.get(_key(name, labels), 0))
            yield family
        yield self._handle_time(
            cache.get_many(
                [_key("handle_time_bucket", (str(b),)) for b in (*HANDLE_TIME_BUCKETS, math.inf)]
                + [_key("handle_time_ms_sum", ())]
            )
        )

    @staticmethod
    def _series(slugs: list[str]) -> list[tuple[str, tuple[str, ...]]]:
        """Every series that can exist, so no index of keys has to be kept (and kept consistent)."""
        from .models import RoutingOutcome

        app = current_app  # the project's Celery app (config/celery.py), without importing the project
        app.loader.import_default_modules()  # a web process has not imported the apps' tasks modules
        tasks = sorted(name for name in app.tasks if not name.startswith("celery."))
        return (
            [("claims", (slug,)) for slug in slugs]
            + [("submissions", (slug, outcome)) for slug in slugs for outcome in SUBMISSION_OUTCOMES]
            + [("decisions_ingested", (outcome,)) for outcome in RoutingOutcome.values]
            + [("celery_tasks", (task, state)) for task in tasks for state in TASK_STATES]
        )

    def _queue_gauges(self) -> Generator[object, None, list[str]]:
        depth = GaugeMetricFamily("reviewapp_queue_depth", "Open tasks per queue", labels=["queue"])
        oldest = GaugeMetricFamily(
            "reviewapp_queue_oldest_task_age_seconds", "Age of the oldest open task", labels=["queue"]
        )
        breaches = GaugeMetricFamily("reviewapp_queue_sla_breaches", "Open tasks past their due time", labels=["queue"])
        with connection.cursor() as cursor:
            cursor.execute(
                """
                SELECT q.slug, count(t.id),
                       coalesce(extract(epoch FROM statement_timestamp() - min(t.created_at)), 0),
                       count(t.id) FILTER (WHERE t.due_at < statement_timestamp())
                FROM reviewapp_queue q
                LEFT JOIN reviewapp_reviewtask t ON t.queue_id = q.id AND t.status = 'open'
                WHERE q.is_active GROUP BY q.slug ORDER BY q.slug
                """
            )
            for slug, n, age, late in cursor.fetchall():
                depth.add_metric([slug], n)
                oldest.add_metric([slug], float(age))
                breaches.add_metric([slug], late)
        yield from (depth, oldest, breaches)
        return [sample.labels["queue"] for sample in depth.samples]

    def _handle_time(self, values: dict[str, int]) -> HistogramMetricFamily:
        cumulative, buckets = 0, []
        for bound in (*HANDLE_TIME_BUCKETS, math.inf):
            cumulative += values.get(_key("handle_time_bucket", (str(bound),)), 0)
            buckets.append(("+Inf" if bound == math.inf else str(bound), cumulative))
        total_ms = values.get(_key("handle_time_ms_sum", ()), 0)
        return HistogramMetricFamily(
            "reviewapp_handle_time_seconds", "Time from render to submit", buckets=buckets, sum_value=total_ms / 1000
        )


# The other apps' collectors, added from their AppConfig.ready() (activelearning: the model in use and
# round timings), so /metrics and /ops/ show every app while this module imports none of them.
_app_collectors: dict[str, Collector] = {}
_scrape_only: set[str] = set()


def collector_register(*, name: str, collector: Collector, on_ops: bool = True) -> None:
    """Add an app's collector to /metrics and, unless `on_ops` is False (figures the dashboard does
    not show, whose queries grow with the data), to /ops/, after reviewapp's. Idempotent per `name`."""
    _app_collectors[name] = collector
    if on_ops:
        _scrape_only.discard(name)
    else:
        _scrape_only.add(name)


def collectors(*, for_ops: bool = False) -> list[Collector]:
    """What a scrape (or, with `for_ops`, the /ops/ page) reads, in output order: reviewapp's figures,
    then each app's in registration order."""
    return [
        ReviewappCollector(),
        *(c for name, c in _app_collectors.items() if not (for_ops and name in _scrape_only)),
    ]


def metrics_view(request):  # type: ignore[no-untyped-def]
    """Prometheus exposition. Needs a token with `metrics:read` (Bearer) or a staff session."""
    from django.http import HttpResponse
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    if not _may_scrape(request):
        return HttpResponse(
            "metrics need a token with the metrics:read scope\n",
            status=401,
            content_type="text/plain",
            headers={"WWW-Authenticate": "Bearer"},
        )
    registry = CollectorRegistry(auto_describe=False)
    for collector in collectors():
        registry.register(collector)
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


def _may_scrape(request) -> bool:  # type: ignore[no-untyped-def]
    from .models import ServiceToken

    if request.user.is_authenticated and request.user.is_staff:
        return True
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret:
        return False
    token = ServiceToken.objects.filter(
        key_hash=ServiceToken.hash_secret(secret.strip()), revoked_at__isnull=True
    ).first()
    return token is not None and "metrics:read" in token.scopes
