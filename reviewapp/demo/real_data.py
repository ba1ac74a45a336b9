"""The real public data behind the leads' demo pages, when it is in REVIEWAPP_DATA_DIR.

With ConvAbuse present (the pinned copy `make data` fetches), `seed_demo` fills the leads' pages
from its real crowd labels instead of simulated annotators: the first `LABELLED_RECORDS`
examples are imported with their per-annotator labels (resolved into gold and open
disagreements by the crowd import), and the next `POOL_RECORDS` examples are stored as plain
content items (no label, no decision, no task) so the demo round has real, unlabelled
ConvAbuse texts to select from. ConvAbuse: Cercas Curry, Abercrombie and Rieser, EMNLP 2021,
CC BY 4.0.
"""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from django.db import transaction

from labeling.datasets import CONVABUSE, CONVABUSE_FILE
from reviewapp.audit import SYSTEM, audit_record
from reviewapp.models import ContentItem
from reviewapp.services.imports import dataset_read, record_item_fields
from reviewapp.services.ingest import content_items_upsert
from reviewapp.services.validation import RowError, check_item_fields

# The sum tools/data.py pins for ConvAbuseEMNLPfull.csv (a test keeps the two equal): the demo's
# figures are those of exactly this file.
CONVABUSE_SHA256 = "c054ed30375651cd234930eada705fee6fcad79f86bdca45c1e557284b6b1af4"
# Examples imported with their crowd labels; bounded so that `seed_demo` stays well under a minute.
LABELLED_RECORDS = 1000
# The following examples, imported without labels: the pool the demo round selects from.
POOL_RECORDS = 600
POOL_IMPORT_ACTION = "import.pool_items"


@dataclass(frozen=True)
class DemoData:
    """Where the demo's real data is (`folder` is None when absent or not the pinned copy), and why."""

    folder: Path | None
    reason: str


def demo_data_find(*, data_dir: Path) -> DemoData:
    """ConvAbuse in `data_dir` when its full file is there with the pinned sha256."""
    folder = Path(data_dir) / CONVABUSE
    path = folder / CONVABUSE_FILE
    if not path.is_file():
        return DemoData(None, f"no {CONVABUSE}/{CONVABUSE_FILE} in {data_dir}; `make data` fetches it")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != CONVABUSE_SHA256:
        return DemoData(
            None, f"{path} is not the pinned copy (sha256 {digest[:12]}…, expected {CONVABUSE_SHA256[:12]}…)"
        )
    return DemoData(folder, f"{path} is present with the pinned sha256")


@dataclass(frozen=True)
class DemoPool:
    """What `demo_pool_ensure` read and stored."""

    records: int
    created: int
    existing: int


def demo_pool_ensure(*, folder: Path, skip: int = LABELLED_RECORDS, count: int = POOL_RECORDS) -> DemoPool:
    """Store ConvAbuse examples `skip` to `skip + count` as content items only. Idempotent.

    Their crowd labels are dropped (nothing on the item says how annotators answered) and no
    decision or task is made, so the items are in every policy's active-learning pool until a
    round selects them. An existing item is left as it is. Audit: one `import.pool_items`
    summary when items were created.
    """
    records = list(islice(dataset_read(fmt=CONVABUSE, path=folder, limit=skip + count), skip, None))
    rows = []
    for record in records:
        try:
            rows.append(check_item_fields(record_item_fields(dataclasses.replace(record, annotations=[], label=None))))
        except RowError:
            continue  # the crowd import reports invalid records; the pool simply has fewer
    keys = [row.external_id for row in rows]
    with transaction.atomic(durable=True):
        existing = ContentItem.objects.filter(source=CONVABUSE, external_id__in=keys).count()
        created: set[int] = set()
        content_items_upsert(items=rows, created=created)
        if created:
            audit_record(
                actor=SYSTEM,
                action=POOL_IMPORT_ACTION,
                object_type="import",
                object_id=uuid.uuid4().hex,
                after={
                    "source": CONVABUSE,
                    "first_record": skip,
                    "records": len(records),
                    "items_created": len(created),
                },
            )
    return DemoPool(records=len(records), created=len(created), existing=existing)
