"""Property tests over the ingest row schema, through the HTTP API on real PostgreSQL.

For any batch a JSON body can carry: never a 5xx; every valid row is stored; every other row is
reported by index, naming a field of the row. Hypothesis builds rows from a valid one by giving
fields arbitrary JSON values, and values PostgreSQL or Python are known to choke on (1e400,
NUL, lone surrogates, huge integers, far UTC offsets, unparsable URLs, deep nesting).
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from reviewapp.models import IngestJob, ModelDecision
from reviewapp.services.ingest_jobs import ingest_chunk_apply
from reviewapp.services.validation import DECISION_FIELDS, ITEM_FIELDS, storable_name

PROPERTY_SETTINGS = settings(
    max_examples=75,
    deadline=None,
    derandomize=True,  # the same examples on every run: a failure reproduces
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


# Slow tier: hypothesis property runs of hundreds of requests.
pytestmark = pytest.mark.slow
# Examples share the test's database: unique external ids keep their rows apart.
_external_ids = itertools.count()


class Big:
    """A number Python's json module cannot write: serialised as the raw JSON text it carries."""

    def __init__(self, text: str) -> None:
        self.text = text


def to_json(value: Any) -> str:
    if isinstance(value, Big):
        return value.text
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {to_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(to_json(v) for v in value) + "]"
    return json.dumps(value)  # ensure_ascii: lone surrogates travel as \\udXXX escapes


hostile_text = st.one_of(
    st.text(max_size=20),
    st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF, categories=None), max_size=10),
    st.sampled_from(["", " ", "\x00", "a\x00b", "\ud800", "x\udfff", "\U0001f600", "\u202e", "x" * 300]),
)
hostile_numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([Big("1e400"), Big("-1e400"), Big("1e-400"), Big("-0.0"), Big("1" + "0" * 1000), 2**63, 2**62]),
)
json_values = st.recursive(
    st.none() | st.booleans() | hostile_numbers | hostile_text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(hostile_text, children, max_size=3),
    max_leaves=8,
)
offsets = st.builds(
    lambda sign, hours, minutes: f"{sign}{hours:02d}:{minutes:02d}",
    st.sampled_from("+-"),
    st.integers(0, 23),
    st.integers(0, 59),
) | st.sampled_from(["Z", "", "+05:30:15"])
datetimes = st.builds(
    lambda year, offset: f"{year:04d}-12-31T23:59:59{offset}",
    st.sampled_from([1, 2, 1970, 2026, 9998, 9999]),
    offsets,
)
urls = st.one_of(
    st.sampled_from(
        [
            "http://[bad/x",
            "http://[::1]/a.png",
            "https://example.com:99999/x",
            "https://example.com:-1/x",
            "https://example.com/a b",
            "javascript:alert(1)",
            "https://cdn.example/ok.png",
        ]
    ),
    hostile_text,
)
deep = st.integers(1, 60).map(lambda depth: {"deep": json.loads("[" * depth + "]" * depth)})
FIELD_VALUES = {
    "decided_at": datetimes | json_values,
    "media_urls": st.lists(urls, max_size=3) | json_values,
    "metadata": st.dictionaries(hostile_text, json_values, max_size=4) | deep | json_values,
    "score": hostile_numbers | json_values,
    "reach": hostile_numbers | json_values,
    "embedding": st.lists(hostile_numbers, min_size=1, max_size=4) | json_values,
    "evidence_spans": st.lists(st.fixed_dictionaries({"start": hostile_numbers, "end": hostile_numbers}), max_size=2)
    | json_values,
    "context": st.lists(st.fixed_dictionaries({"text": hostile_text}, optional={"author": json_values}), max_size=2)
    | json_values,
}
FIELDS = sorted(ITEM_FIELDS | DECISION_FIELDS)


def valid_row() -> dict[str, Any]:
    return {
        "source": "prop",
        "external_id": f"prop-{next(_external_ids)}",
        "text": "you are a clown",
        "policy": "harassment",
        "model_name": "tox-bert",
        "model_version": "v1",
        "score": 0.5,
    }


@st.composite
def hostile_rows(draw: st.DrawFn) -> dict[str, Any]:
    """A valid row with one to three fields given hostile values (or an unknown field added)."""
    row = valid_row()
    for name in draw(st.lists(st.sampled_from([*FIELDS, "extra\x00field"]), min_size=1, max_size=3, unique=True)):
        row[name] = draw(FIELD_VALUES.get(name, hostile_text | json_values))
    return row


# A batch: (hostile?, row) pairs; rows not made hostile must be stored.
batches = st.lists(st.booleans(), min_size=1, max_size=5).flatmap(
    lambda hostile: st.tuples(
        *[st.tuples(st.just(bad), hostile_rows() if bad else st.builds(valid_row)) for bad in hostile]
    )
)


def post_batch(client: APIClient, url: str, batch: tuple[tuple[bool, dict], ...]):  # type: ignore[no-untyped-def]
    body = to_json({"decisions": [row for _, row in batch]})
    return client.post(url, body, content_type="application/json")


def check_row_outcomes(batch: tuple[tuple[bool, dict], ...], stored: set[int], errors: list[dict]) -> None:
    """Every row is either stored or reported, once; a valid row is stored; an error names a field of its row."""
    assert sorted([*stored, *(e["index"] for e in errors)]) == list(range(len(batch)))
    for error in errors:
        names = {storable_name(name) for name in batch[error["index"]][1]}
        assert error["message"] and error["field"] in names, error
    for index, (hostile, row) in enumerate(batch):
        assert hostile or index in stored, (index, errors)
        if index in stored:
            sent = json.loads(to_json(row))  # as the server parsed it (1e400 and all)
            decision = ModelDecision.objects.filter(
                item__source=sent["source"], item__external_id=sent["external_id"], score=sent["score"]
            )
            assert decision.exists(), (index, sent)


@pytest.mark.usefixtures("routing_rule")
@PROPERTY_SETTINGS
@given(batch=batches)
def test_decisions_never_5xx_store_valid_rows_and_report_each_bad_one(ingest_client, batch) -> None:
    response = post_batch(ingest_client, "/api/v1/decisions", batch)

    assert response.status_code in (200, 207, 400), response.content
    body = response.json()
    assert "results" in body, body  # a row-level outcome, not a body-level refusal
    check_row_outcomes(batch, {r["index"] for r in body["results"]}, body["errors"])
    expected = 200 if not body["errors"] else 207 if body["results"] else 400
    assert response.status_code == expected


@pytest.mark.usefixtures("routing_rule")
@PROPERTY_SETTINGS
@given(batch=batches)
def test_ingest_jobs_never_5xx_and_never_fail_without_row_errors(ingest_client, batch) -> None:
    response = post_batch(ingest_client, "/api/v1/ingest-jobs", batch)

    assert response.status_code in (202, 400), response.content
    if response.status_code == 400:
        assert len(response.json()["errors"]) == len(batch)
        return
    job = IngestJob.objects.get(pk=response.json()["id"])
    for chunk_id in job.chunks.values_list("pk", flat=True):
        ingest_chunk_apply(chunk_id=chunk_id)
    body = ingest_client.get(response.json()["url"]).json()

    assert body["status"] == "done", body
    assert body["rows_created"] + body["rows_duplicate"] + body["rows_rejected"] == len(batch)
    refused = {e["index"] for e in body["errors"]}
    check_row_outcomes(batch, set(range(len(batch))) - refused, body["errors"])
