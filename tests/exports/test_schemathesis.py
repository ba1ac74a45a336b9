"""Property-based API testing: schemathesis against the live server's OpenAPI schema.

Every dataset and export operation is called with generated valid and invalid input (bounded:
a few dozen examples per operation), once with generated path parameters and once against
objects that exist, and no response may be a server error.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from labeling.exports.models import ExportJob, SnapshotBuild
from labeling.exports.snapshots import SnapshotFilter, dataset_create, snapshot_create
from reviewapp.audit import SYSTEM
from tests.exports.conftest import export_token

# Slow tier: schemathesis drives every operation through a live server.
pytestmark = pytest.mark.slow

OPERATIONS = r"^/api/v1/(datasets|exports)"
# Examples per operation: (mode, against existing objects?) -> count; about 20 per operation.
EXAMPLES = {
    (GenerationMode.POSITIVE, True): 8,
    (GenerationMode.NEGATIVE, True): 5,
    (GenerationMode.POSITIVE, False): 4,
    (GenerationMode.NEGATIVE, False): 4,
}


@pytest.fixture
def existing(hate, make_gold) -> dict[str, object]:  # type: ignore[no-untyped-def]
    for n in range(5):
        make_gold(hate, text=f"text {n} mail me@example.com")
    dataset = dataset_create(slug="fuzz", name="Fuzz", filters=SnapshotFilter(), actor=SYSTEM)
    snapshot = snapshot_create(dataset_id=dataset.pk, filters=SnapshotFilter(), actor=SYSTEM)
    snapshot_create(dataset_id=dataset.pk, filters=SnapshotFilter(), actor=SYSTEM)
    build = SnapshotBuild.objects.create(dataset=dataset, filters={}, rows_expected=5, requested_by_label="t")
    job = ExportJob.objects.create(snapshot=snapshot, format="csv", rows_total=5, requested_by_label="t")
    return {"slug": "fuzz", "version": 2, "build_id": build.pk, "job_id": job.pk}


def test_no_server_errors(transactional_db, live_server, existing) -> None:
    headers = {"Authorization": f"Bearer {export_token('export:read', 'export:write')}"}
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/schema/").include(path_regex=OPERATIONS)
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 11
    for operation in operations:
        fixed = {name: existing[name] for name in existing if "{" + name + "}" in operation.path}
        for (mode, use_existing), examples in EXAMPLES.items():
            if use_existing and not fixed:
                continue
            strategy = operation.as_strategy(generation_mode=mode, path_parameters=fixed if use_existing else {})

            @given(case=strategy)
            @hypothesis_settings(
                max_examples=examples,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            def call(case) -> None:  # type: ignore[no-untyped-def]
                case.call_and_validate(base_url=live_server.url, headers=headers, checks=[not_a_server_error])

            call()
