"""Item search latency on 1,000,000 items, through the Django view, against the 200 ms target.

    python bench/search.py [--items 1000000] [--requests 200]

Needs DATABASE_URL (`make bench` provides it). Works in its own database (`<name>_bench_search`,
dropped and re-created), so it never touches real data.

Setup: three policies; --items content items (three sources; received times spread over a year,
four items to each second, so pages end inside a tie; texts of 8–16 words from a 2,000-word
vocabulary plus marker words at 5 %, 0.5 % and 0.05 %); one model decision each, routed by score
(≤ 0.6 auto-cleared, ≥ 0.9 auto-enforced, else a review task); a third of the review tasks open,
one in 50 of those escalated with an open adjudication, the rest completed with a gold label.
All rows are written with COPY; the search indexes of migration 0008 are dropped before the load
and built after it (as they would be on an existing table: CREATE INDEX), then VACUUM ANALYZE.

Measured: GET /items/?… through the Django test client, in this process, with production
settings (DEBUG off, the full middleware stack, session and lead check, form, search, the rows'
four follow-up queries, template rendering), as a signed-in policy lead; --requests of each kind,
after 5 untimed warm-up requests of each:
- external_id: `?external_id=<a random existing id>`;
- filtered: `?policy=<random>&status=<random of the five>&received_from=<random>&received_to=<+30 days>`,
  and every fourth request follows that page's Next link (a keyset page deeper in the result);
- text: `?text=<a marker word>&policy=<random>`, the three marker frequencies in turn.
Each kind's query plan (EXPLAIN ANALYZE of the page query) is summarised: indexes read, execution time.

Last line: `p95_external_id_ms=… p95_filtered_ms=… p95_text_ms=… ratio=…` (ratio = the worst of
the three p95s / 200 ms, the target; below 1 meets it).
"""

from __future__ import annotations

import argparse
import io
import itertools
import os
import random
import re
import secrets
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _db import bench_database_url, recreate_database  # noqa: E402

TARGET_MS = 200.0
POLICIES = ("harassment", "spam", "hate")
SOURCES = ("comments", "posts", "messages")
MARKERS = (("zephyrine", 0.05), ("quillbrook", 0.005), ("marrowgate", 0.0005))
START = datetime(2025, 1, 1, tzinfo=UTC)
SECONDS_PER_TIE = 126  # four items share each received second: 1M items span ~365 days
STATUSES = ("open_task", "awaiting_adjudication", "gold", "auto_actioned", "auto_cleared")
SEARCH_INDEXES = ("contentitem_received", "contentitem_external_id", "contentitem_text_trgm")


def configure_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_DEBUG"] = "0"  # production settings: no query log, manifest static files
    os.environ["DJANGO_SECRET_KEY"] = secrets.token_urlsafe(50)  # this run's sessions only
    os.environ["DJANGO_ALLOWED_HOSTS"] = "testserver"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def vocabulary(rng: random.Random) -> list[str]:
    consonants, vowels = "bcdfghklmnprstvz", "aeiou"
    words: set[str] = set()
    while len(words) < 2000:
        words.add("".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(rng.randint(2, 4))))
    return sorted(words)


def copy_rows(table: str, columns: str, lines: io.StringIO) -> None:
    from django.db import connection

    lines.seek(0)
    connection.ensure_connection()
    with connection.connection.cursor() as raw, raw.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        while chunk := lines.read(1 << 20):
            copy.write(chunk)


def build(n_items: int, rng: random.Random) -> dict[str, int]:
    """Policies, a lead, and the items with their decisions, tasks, gold labels and adjudications."""
    from django.contrib.auth.models import Group, User
    from django.db import connection, transaction

    from labeling.models import Policy, PolicyVersion
    from reviewapp.models import Queue

    schema = {"labels": [{"value": "violating", "title": "Violating"}, {"value": "not_violating"}]}
    with transaction.atomic():
        policies = [Policy.objects.create(key=key, name=key.title()) for key in POLICIES]
        versions = [
            PolicyVersion.objects.create(policy=p, number=1, guideline="…", label_schema=schema, effective_at=START)
            for p in policies
        ]
        queue = Queue.objects.create(slug="bench-review", name="Review")
        lead = User.objects.create(username="bench-lead")
        lead.groups.add(Group.objects.get_or_create(name="policy_lead")[0])
    words = vocabulary(rng)
    items, decisions, tasks, gold, adjudications = (io.StringIO() for _ in range(5))
    task_id = gold_id = adjudication_id = 0
    counts = dict.fromkeys(("open", "escalated", "gold", "auto_action", "auto_clear"), 0)
    for n in range(1, n_items + 1):
        received = START + timedelta(seconds=(n // 4) * SECONDS_PER_TIE)
        text = [rng.choice(words) for _ in range(rng.randint(8, 16))]
        for marker, share in MARKERS:
            if rng.random() < share:
                text.insert(rng.randrange(len(text)), marker)
        items.write(
            f"{n}\t{SOURCES[n % 3]}\tx-{n}\ttext\t\t{' '.join(text)}\t[]\t[]\t{{}}\t{n % 5000}\t"
            f"{received.isoformat()}\n"
        )
        p = rng.randrange(3)
        score = rng.random()
        outcome = "auto_clear" if score <= 0.6 else "auto_action" if score >= 0.9 else "review"
        decided = received - timedelta(seconds=30)
        decisions.write(
            f"{n}\t{n}\t{policies[p].pk}\t{versions[p].pk}\ttox\tv1\t{score:.6f}\t\t[]\t{outcome}\t0.6\t0.9\tf\t"
            f"1.0\t{decided.isoformat()}\t{received.isoformat()}\n"
        )
        if outcome != "review":
            counts[outcome] += 1
            continue
        task_id += 1
        status = "open" if task_id % 3 == 0 else "completed"
        if status == "open" and task_id % 50 == 0:
            status = "escalated"
            adjudication_id += 1
            adjudications.write(f"{adjudication_id}\t{task_id}\tdisagreement\t\topen\t{received.isoformat()}\n")
        completed = "\\N" if status != "completed" else (received + timedelta(hours=1)).isoformat()
        tasks.write(
            f"{task_id}\t{n}\t{policies[p].pk}\t{n}\t{queue.pk}\tlow_confidence\t0.5\t{received.isoformat()}\t1.0\t"
            f"{status}\t{0 if status == 'open' else 1}\t0\t{received.isoformat()}\t{completed}\t{completed}\n"
        )
        if status != "completed":
            counts["open" if status == "open" else "escalated"] += 1
        if status == "completed":
            gold_id += 1
            label = "violating" if score > 0.75 else "not_violating"
            gold.write(
                f'{gold_id}\t{n}\t{policies[p].pk}\t{versions[p].pk}\t1\t["{label}"]\t\tconsensus\t{task_id}\t[]\t1\t'
                f"low_confidence\t\t1.0\t\t{completed}\n"
            )
            counts["gold"] += 1
    with connection.cursor() as cursor:
        for name in SEARCH_INDEXES:
            cursor.execute(f'DROP INDEX "{name}"')
        cursor.execute("SET session_replication_role = replica")  # no FK triggers during the load
    copy_rows(
        "reviewapp_contentitem",
        "id, source, external_id, modality, title, text, media_urls, context, metadata, reach, created_at",
        items,
    )
    copy_rows(
        "reviewapp_modeldecision",
        "id, item_id, policy_id, policy_version_id, model_name, model_version, score, predicted_label, "
        "evidence_spans, routing_outcome, auto_clear_threshold, auto_action_threshold, audit_sampled, "
        "sampling_propensity, decided_at, received_at",
        decisions,
    )
    copy_rows(
        "reviewapp_reviewtask",
        "id, item_id, policy_id, decision_id, queue_id, reason, priority, due_at, sampling_propensity, status, "
        "annotation_count, extra_annotations, created_at, completed_at, resolved_at",
        tasks,
    )
    copy_rows(
        "labeling_goldlabel",
        "id, item_id, policy_id, policy_version_id, version, labels, severity, source, task_id, annotation_ids, "
        "n_annotations, route, routing_outcome, sampling_propensity, note, created_at",
        gold,
    )
    copy_rows("labeling_adjudication", "id, task_id, reason, note, status, created_at", adjudications)
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = origin")
        for table in ("reviewapp_contentitem", "reviewapp_modeldecision", "reviewapp_reviewtask",
                      "labeling_goldlabel", "labeling_adjudication"):  # fmt: skip
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        cursor.execute("SET maintenance_work_mem = '512MB'")
        cursor.execute('CREATE INDEX "contentitem_received" ON "reviewapp_contentitem" ("created_at", "id")')
        cursor.execute('CREATE INDEX "contentitem_external_id" ON "reviewapp_contentitem" ("external_id")')
        cursor.execute(
            'CREATE INDEX "contentitem_text_trgm" ON "reviewapp_contentitem" USING gin ((UPPER("text")) gin_trgm_ops)'
        )
    connection.close()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return counts | {"items": n_items, "lead": lead.pk}


def timed_get(client, url: str) -> tuple[float, str]:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    response = client.get(url, secure=True)
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise SystemExit(f"GET {url} answered {response.status_code}: {response.content[:500]!r}")
    return elapsed, response.content.decode()


NEXT_LINK = re.compile(r'<a rel="next" href="([^"]+)"')
ROW = re.compile(r'<th scope="row"><a href="/items/\d+/"><bdi>([^<]*)</bdi>')


def run_kind(client, make_url, n_requests: int, follow_next: bool = False) -> tuple[list[float], int]:  # type: ignore[no-untyped-def]
    """Time n_requests GETs of make_url(); returns the times (ms) and the rows they listed."""
    for _ in range(5):
        timed_get(client, make_url())
    times, rows = [], 0
    for number in range(n_requests):
        elapsed, page = timed_get(client, make_url())
        if follow_next and number % 4 == 3 and (link := NEXT_LINK.search(page)):
            elapsed, page = timed_get(client, link.group(1).replace("&amp;", "&"))
        times.append(elapsed)
        rows += len(ROW.findall(page))
    return times, rows


def p(times: list[float], q: float) -> float:
    return statistics.quantiles(times, n=100, method="inclusive")[int(q) - 1]


def plan_summary(query: str) -> str:
    """Indexes the page query reads and its execution time, from EXPLAIN ANALYZE."""
    from django.test import RequestFactory

    from reviewapp.search_forms import ItemSearchForm
    from reviewapp.services.search import PAGE_SIZE, item_search_queryset

    form = ItemSearchForm(RequestFactory().get("/items/?" + query).GET)
    if not form.is_valid():
        raise SystemExit(f"invalid bench query {query}: {form.errors}")
    page = item_search_queryset(filters=form.filters()).order_by("-created_at", "-id")[: PAGE_SIZE + 1]
    plan = page.explain(analyze=True)
    indexes = sorted(set(re.findall(r"(?:Index|Index Only|Bitmap Index) Scan(?: Backward)? (?:using|on) (\w+)", plan)))
    seq = sorted(set(re.findall(r"Seq Scan on (\w+)", plan)))
    execution = re.search(r"Execution Time: ([\d.]+) ms", plan)
    return (
        f"indexes={','.join(indexes) or '-'} seq_scans={','.join(seq) or '-'} "
        f"execution_ms={execution.group(1) if execution else '?'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()

    started = time.perf_counter()
    url = bench_database_url("bench_search")
    recreate_database(url)
    configure_django(url)
    from django.core.management import call_command
    from django.test import Client

    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)  # the manifest the templates' {% static %} reads
    rng = random.Random(16)
    counts = build(args.items, rng)
    print(
        f"items={counts['items']} auto_actioned={counts['auto_action']} auto_cleared={counts['auto_clear']} "
        f"open_tasks={counts['open']} awaiting_adjudication={counts['escalated']} gold={counts['gold']} "
        f"build_s={time.perf_counter() - started:.0f}",
        flush=True,
    )
    from django.contrib.auth.models import User

    client = Client()
    client.force_login(User.objects.get(pk=counts["lead"]))
    days = (args.items // 4) * SECONDS_PER_TIE // 86400

    def external_id() -> str:
        return f"/items/?external_id=x-{rng.randint(1, args.items)}"

    def filtered() -> str:
        start = START.date() + timedelta(days=rng.randrange(max(days - 30, 1)))
        end: date = start + timedelta(days=30)
        return (
            f"/items/?policy={rng.choice(POLICIES)}&status={rng.choice(STATUSES)}"
            f"&received_from={start.isoformat()}&received_to={end.isoformat()}"
        )

    markers = itertools.cycle(marker for marker, _ in MARKERS)

    def text() -> str:
        return f"/items/?text={next(markers)}&policy={rng.choice(POLICIES)}"

    examples = {
        "external_id": "external_id=x-123457",
        "filtered": "policy=spam&status=gold&received_from=2025-06-01&received_to=2025-07-01",
        "filtered_sparse": "policy=hate&status=awaiting_adjudication&received_from=2025-06-01&received_to=2025-07-01",
        "text_common": f"text={MARKERS[0][0]}&policy=spam",
        "text_middling": f"text={MARKERS[1][0]}&policy=spam",
        "text_rare": f"text={MARKERS[2][0]}&policy=spam",
    }
    for name, query in examples.items():
        print(f"plan {name}: {plan_summary(query)}", flush=True)
    results = {}
    kinds = (("external_id", external_id, False), ("filtered", filtered, True), ("text", text, False))
    for name, make_url, follow in kinds:
        times, rows = run_kind(client, make_url, args.requests, follow_next=follow)
        results[name] = p(times, 95)
        print(
            f"{name}: requests={len(times)} rows_listed={rows} p50_ms={p(times, 50):.1f} p95_ms={p(times, 95):.1f} "
            f"max_ms={max(times):.1f}",
            flush=True,
        )
    load = os.getloadavg()[0]
    print(
        f"via=django_test_client_in_process settings=production load1={load:.2f} "
        f"total_s={time.perf_counter() - started:.0f}"
    )
    worst = max(results.values())
    print(
        f"p95_external_id_ms={results['external_id']:.1f} p95_filtered_ms={results['filtered']:.1f} "
        f"p95_text_ms={results['text']:.1f} ratio={worst / TARGET_MS:.3f}"
    )


if __name__ == "__main__":
    main()
