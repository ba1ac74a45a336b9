"""Lead pages: create a dataset, see its charts and diff, download, follow background work."""

from __future__ import annotations

import csv
import io
import re

import pytest

from labeling.exports.jobs import export_run
from labeling.exports.models import Dataset, ExportJob, SnapshotBuild
from labeling.exports.tasks import build_snapshot
from tests.exports.conftest import body
from tests.visible_text import visible_text

FORM = {
    "name": "Hate <b>EN</b>",
    "slug": "hate-en",
    "policies": ["hate"],
    "languages": "en, de",
    "label_sources": ["consensus", "adjudication"],
    "grouping": "meta",
    "group_field": "conversation_id",
    "train_percent": "80",
    "dev_percent": "10",
}


@pytest.fixture
def golds(hate, make_gold):  # type: ignore[no-untyped-def]
    return [
        make_gold(hate, ["violating" if n % 3 else "not_violating"], text=f"t{n}", source="consensus") for n in range(9)
    ]


def assert_csp_safe(html: str) -> None:
    """No inline script or style: the strict CSP (script-src 'self', style-src 'self') must hold."""
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html) and " style=" not in html and "<style" not in html


def test_lead_creates_a_dataset_and_sees_its_first_version(lead_client, golds) -> None:
    form_page = lead_client.get("/lead/datasets/new")
    assert form_page.status_code == 200 and 'name="group_field"' in form_page.content.decode()
    response = lead_client.post("/lead/datasets/new", FORM)
    assert response.status_code == 302 and response["Location"] == "/lead/datasets/hate-en/v1/"
    dataset = Dataset.objects.get()
    assert dataset.group_by == "meta:conversation_id" and dataset.filters["languages"] == ["de", "en"]

    html = lead_client.get(response["Location"]).content.decode()
    assert "Hate &lt;b&gt;EN&lt;/b&gt; v1" in html and len(html) < 100_000
    assert html.count('<svg class="chart"') >= 3  # split sizes, class balance per split, label sources
    assert "Class balance in" in html and "Label sources" in html and "This is the first version." in html
    assert 'action="/lead/datasets/hate-en/v1/download"' in html
    text = visible_text(html.split("<main")[1])
    assert "Hate: Not violating" in text and "Hate: Violating" in text
    assert "Label sources (share of rows, %) share of rows, %. Reviewer consensus: 100%." in text
    assert "Policies Hate Languages" in text and "Label sources Lead adjudication, Reviewer consensus" in text
    assert "not_violating" not in text and "hate:" not in text  # classes and sources by name, not key
    assert_csp_safe(html)
    listing = lead_client.get("/lead/datasets/").content.decode()
    assert 'href="/lead/datasets/hate-en/v1/"' in listing and "meta:conversation_id" in listing


def test_form_errors_are_shown(lead_client, golds) -> None:
    response = lead_client.post("/lead/datasets/new", {**FORM, "languages": "xx"})
    assert response.status_code == 400 and "No gold labels match" in response.content.decode()
    lead_client.post("/lead/datasets/new", FORM)
    again = lead_client.post("/lead/datasets/new", FORM)
    assert again.status_code == 400 and "exists already" in again.content.decode()
    assert lead_client.post("/lead/datasets/new", {**FORM, "slug": "x", "dev_percent": "30"}).status_code == 400


def test_new_version_shows_the_diff_with_the_previous_one(lead_client, golds, hate, make_gold) -> None:
    lead_client.post("/lead/datasets/new", FORM)
    make_gold(hate, ["not_violating"], item=golds[1].item, source="adjudication")
    make_gold(hate, text="fresh <script>alert(1)</script>", external_id="<img src=x>")
    response = lead_client.post("/lead/datasets/hate-en/build")
    assert response["Location"] == "/lead/datasets/hate-en/v2/"
    html = lead_client.get("/lead/datasets/hate-en/v2/").content.decode()
    assert "1 added, 0 removed, 1 relabelled" in html
    assert "&lt;img src=x&gt;" in html and "<img src=x>" not in html
    detail = lead_client.get("/lead/datasets/hate-en/").content.decode()
    assert "+1 −0, 1 relabelled" in detail and "v2" in detail


def test_download_streams_a_small_export(lead_client, golds) -> None:
    lead_client.post("/lead/datasets/new", FORM)
    response = lead_client.get("/lead/datasets/hate-en/v1/download", {"format": "csv", "split": ""})
    assert response.status_code == 200 and response.streaming
    assert response["Content-Disposition"] == 'attachment; filename="hate-en-v1.csv"'
    assert len(body(response).decode().splitlines()) == 10


def test_version_page_offers_a_spreadsheet_safe_csv(lead_client, hate, make_gold) -> None:
    make_gold(hate, ["violating"], text='=HYPERLINK("http://evil.example","x")', external_id="@c1")
    lead_client.post("/lead/datasets/new", FORM)
    page = lead_client.get("/lead/datasets/hate-en/v1/").content.decode()
    assert '<option value="csv-excel">CSV for spreadsheets' in page
    response = lead_client.get("/lead/datasets/hate-en/v1/download", {"format": "csv-excel", "split": ""})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == 'attachment; filename="hate-en-v1.spreadsheet.csv"'
    header, row = csv.reader(io.StringIO(body(response).decode(), newline=""))
    cells = dict(zip(header, row, strict=True))
    assert (cells["text"], cells["external_id"]) == ('\'=HYPERLINK("http://evil.example","x")', "'@c1")


def test_large_download_becomes_a_background_export_with_progress(lead_client, golds, settings) -> None:
    lead_client.post("/lead/datasets/new", FORM)
    settings.EXPORT_STREAM_MAX_ROWS = 3
    response = lead_client.get("/lead/datasets/hate-en/v1/download", {"format": "parquet", "redact_pii": "on"})
    job = ExportJob.objects.get()
    assert response["Location"] == f"/lead/datasets/exports/{job.pk}/" and job.redact_pii
    page = lead_client.get(response["Location"]).content.decode()
    assert 'hx-trigger="every 2s"' in page and "<progress" in page and "0 of 9 rows" in page
    assert_csp_safe(page)
    fragment = lead_client.get(response["Location"], HTTP_HX_REQUEST="true").content.decode()
    assert fragment.lstrip().startswith('<div class="export-job"') and "<html" not in fragment

    export_run(job_id=job.pk)
    done = lead_client.get(response["Location"], HTTP_HX_REQUEST="true").content.decode()
    assert "hx-trigger" not in done and f'href="/lead/datasets/exports/{job.pk}/file"' in done
    download = lead_client.get(f"/lead/datasets/exports/{job.pk}/file")
    assert download.status_code == 200 and body(download)[:4] == b"PAR1"


def test_background_export_button(lead_client, golds) -> None:
    lead_client.post("/lead/datasets/new", FORM)
    response = lead_client.post("/lead/datasets/hate-en/v1/exports", {"format": "jsonl", "split": "train"})
    job = ExportJob.objects.get()
    assert response["Location"] == f"/lead/datasets/exports/{job.pk}/" and job.split == "train"
    assert lead_client.get(f"/lead/datasets/exports/{job.pk}/file").status_code == 302  # not ready yet
    html = lead_client.get("/lead/datasets/hate-en/v1/").content.decode()
    assert f'id="export-job-{job.pk}"' in html


def test_large_dataset_builds_in_the_background(lead_client, golds, settings) -> None:
    settings.SNAPSHOT_SYNC_MAX_ROWS = 3
    response = lead_client.post("/lead/datasets/new", FORM)
    build = SnapshotBuild.objects.get()
    assert response["Location"] == f"/lead/datasets/hate-en/builds/{build.pk}/"
    page = lead_client.get(response["Location"]).content.decode()
    assert 'hx-trigger="every 2s"' in page and "freezing 9 gold labels" in page

    build_snapshot(build.pk)
    poll = lead_client.get(response["Location"], HTTP_HX_REQUEST="true")
    assert poll["HX-Redirect"] == "/lead/datasets/hate-en/v1/"
    assert "version 1" in lead_client.get(response["Location"]).content.decode()


def test_lead_sees_how_items_are_split_and_content_is_the_default(lead_client, golds) -> None:
    form = {key: value for key, value in FORM.items() if key not in ("grouping", "group_field")}
    response = lead_client.post("/lead/datasets/new", form)
    assert response.status_code == 302
    dataset = Dataset.objects.get()
    assert dataset.group_by == "content"
    version_html = lead_client.get(response["Location"]).content.decode()
    dataset_html = lead_client.get("/lead/datasets/hate-en/").content.decode()
    for html in (version_html, dataset_html):
        assert "How items are split" in html and "exact and near-duplicate texts" in html
        assert (
            dataset.split_salt in html and "text-nfkc-shingle5" in html and "train 80 % · dev 10 % · test 10 %" in html
        )
    assert "(0 dev, 0 test items in this version)" in version_html
    assert_csp_safe(version_html)
    form_page = lead_client.get("/lead/datasets/new").content.decode()
    assert '<option value="content" selected>' in form_page
