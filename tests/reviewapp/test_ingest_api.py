"""POST /api/v1/decisions: auth, validation, per-row semantics, idempotency, routing, audit."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test import override_settings
from rest_framework.test import APIClient

from reviewapp.models import AuditEvent, ContentItem, ModelDecision, ReviewTask, TaskReason

URL = "/api/v1/decisions"


def row(external_id: str = "c-1", score: float = 0.5, **kwargs) -> dict:  # type: ignore[no-untyped-def]
    values = {
        "source": "comments",
        "external_id": external_id,
        "text": "you are a clown",
        "policy": "harassment",
        "model_name": "tox-bert",
        "model_version": "v1",
        "score": score,
    }
    values.update(kwargs)
    return values


def post(client: APIClient, rows: list[dict]):  # type: ignore[no-untyped-def]
    return client.post(URL, {"decisions": rows}, format="json")


@pytest.mark.usefixtures("routing_rule")
class TestRouting:
    def test_review_band_creates_task_with_priority_and_due_time(self, ingest_client, queue) -> None:
        response = post(ingest_client, [row(score=0.5, reach=1000)])
        assert response.status_code == 200, response.json()
        result = response.json()["results"][0]
        assert result["routing_outcome"] == "review" and result["status"] == "created"
        task = ReviewTask.objects.get(pk=result["task_id"])
        assert (task.queue, task.reason, task.sampling_propensity) == (queue, TaskReason.LOW_CONFIDENCE, 1.0)
        assert task.priority == pytest.approx(2.0 * 1.0 * 4.000434, rel=1e-5)  # severity × u × (1+log10 1001)
        assert 119 <= (task.due_at - task.created_at).total_seconds() / 60 <= 121

    def test_auto_outcomes_create_no_task_without_sampling(self, ingest_client) -> None:
        response = post(ingest_client, [row("a", score=0.9), row("b", score=0.2)])
        outcomes = [(r["routing_outcome"], r["task_id"]) for r in response.json()["results"]]
        assert outcomes == [("auto_action", None), ("auto_clear", None)]
        assert ReviewTask.objects.count() == 0

    def test_audit_sample_goes_to_audit_queue_with_propensity(self, ingest_client, routing_rule, audit_queue) -> None:
        routing_rule.audit_rate_action = 1.0
        routing_rule.save()
        result = post(ingest_client, [row(score=0.97)]).json()["results"][0]
        task = ReviewTask.objects.get(pk=result["task_id"])
        assert (task.queue, task.reason, task.sampling_propensity) == (audit_queue, TaskReason.AUDIT_SAMPLE, 1.0)
        decision = ModelDecision.objects.get(pk=result["decision_id"])
        assert decision.audit_sampled and decision.auto_action_threshold == 0.9

    def test_model_specific_rule_beats_policy_default(self, ingest_client, policy, queue) -> None:
        from tests.factories import RoutingRuleFactory

        RoutingRuleFactory(policy=policy, model_name="strict-model", auto_action=0.4, queue=queue)
        response = post(ingest_client, [row(score=0.5, model_name="strict-model")])
        assert response.json()["results"][0]["routing_outcome"] == "auto_action"

    def test_decision_copies_policy_version_and_thresholds(self, ingest_client, policy) -> None:
        result = post(ingest_client, [row(score=0.5)]).json()["results"][0]
        decision = ModelDecision.objects.get(pk=result["decision_id"])
        assert decision.policy_version == policy.current_version()
        assert (decision.auto_clear_threshold, decision.auto_action_threshold) == (0.2, 0.9)


@pytest.mark.usefixtures("routing_rule")
class TestIdempotency:
    def test_resending_a_batch_creates_nothing_and_returns_same_outcomes(self, ingest_client) -> None:
        batch = [row("a", score=0.5), row("b", score=0.95), row("c", score=0.1)]
        first = post(ingest_client, batch).json()
        counts = (
            ContentItem.objects.count(),
            ModelDecision.objects.count(),
            ReviewTask.objects.count(),
            AuditEvent.objects.count(),
        )
        second = post(ingest_client, batch).json()
        assert counts == (
            ContentItem.objects.count(),
            ModelDecision.objects.count(),
            ReviewTask.objects.count(),
            AuditEvent.objects.count(),
        )
        assert second["created"] == 0 and second["accepted"] == 3
        strip = [{k: v for k, v in r.items() if k != "status"} for r in first["results"]]
        assert strip == [{k: v for k, v in r.items() if k != "status"} for r in second["results"]]
        assert {r["status"] for r in second["results"]} == {"duplicate"}

    def test_same_decision_twice_in_one_batch_is_stored_once(self, ingest_client) -> None:
        body = post(ingest_client, [row("a"), row("a")]).json()
        assert [r["status"] for r in body["results"]] == ["created", "duplicate"]
        assert body["results"][0]["decision_id"] == body["results"][1]["decision_id"]
        assert ModelDecision.objects.count() == 1 and ReviewTask.objects.count() == 1

    def test_resend_with_different_score_is_rejected_not_overwritten(self, ingest_client) -> None:
        post(ingest_client, [row("a", score=0.5)])
        response = post(ingest_client, [row("a", score=0.7)])
        assert response.status_code == 400
        assert "already recorded with score 0.5" in response.json()["errors"][0]["message"]
        assert ModelDecision.objects.get().score == 0.5

    def test_new_model_version_is_a_new_decision_on_the_same_item(self, ingest_client) -> None:
        post(ingest_client, [row("a", model_version="v1")])
        body = post(ingest_client, [row("a", model_version="v2", score=0.95)]).json()
        assert body["created"] == 1
        assert ContentItem.objects.count() == 1 and ModelDecision.objects.count() == 2

    def test_second_review_decision_for_an_open_item_reuses_the_open_task(self, ingest_client) -> None:
        post(ingest_client, [row("a", model_version="v1")])
        post(ingest_client, [row("a", model_version="v2", score=0.6)])
        assert ReviewTask.objects.count() == 1


@pytest.mark.usefixtures("routing_rule")
class TestValidation:
    def test_valid_rows_are_kept_and_invalid_ones_reported_by_index(self, ingest_client) -> None:
        rows = [row("ok-1"), row("bad", score=1.5), row("ok-2"), {"source": "x"}]
        response = post(ingest_client, rows)
        assert response.status_code == 207
        body = response.json()
        assert [r["index"] for r in body["results"]] == [0, 2]
        assert [(e["index"], e["field"]) for e in body["errors"]] == [(1, "score"), (3, "external_id")]
        assert set(ContentItem.objects.values_list("external_id", flat=True)) == {"ok-1", "ok-2"}

    def test_unknown_policy_is_400_naming_it(self, ingest_client) -> None:
        response = post(ingest_client, [row(policy="no-such-policy")])
        assert response.status_code == 400
        assert response.json()["errors"][0]["message"] == "unknown policy 'no-such-policy'"

    def test_policy_without_rule_is_rejected_clearly(self, ingest_client) -> None:
        from tests.factories import PolicyFactory

        PolicyFactory(key="spam")
        response = post(ingest_client, [row(policy="spam")])
        assert "no routing rule for policy 'spam'" in response.json()["errors"][0]["message"]

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"score": "0.5"}, "score"),
            ({"score": True}, "score"),
            ({"modality": "hologram"}, "modality"),
            ({"media_urls": ["javascript:alert(1)"]}, "media_urls"),
            ({"evidence_spans": [{"start": 5, "end": 500}]}, "evidence_spans"),
            ({"reach": -1}, "reach"),
            ({"embedding": [1.0, "x"]}, "embedding"),
            ({"decided_at": "yesterday"}, "decided_at"),
            ({"decided_at": "2026-11-26T10:00:00"}, "decided_at"),
            ({"scroe": 0.5}, "scroe"),
            ({"text": "nul \x00 byte"}, "text"),
            ({"text": "lone \ud800 surrogate"}, "text"),
            ({"context": [{"text": "hi", "role": "x"}]}, "context"),
            ({"external_id": "   "}, "external_id"),
        ],
    )
    def test_bad_fields_are_reported_per_row(self, ingest_client, change: dict, field: str) -> None:
        bad = row(**change)
        body = json.dumps({"decisions": [bad, row("fine")]}, allow_nan=True)
        response = ingest_client.post(URL, body, content_type="application/json")
        assert response.status_code == 207, response.content
        assert response.json()["errors"][0]["field"] == field
        assert ContentItem.objects.count() == 1

    def test_hostile_text_is_stored_verbatim(self, ingest_client) -> None:
        payload = "<script>alert(1)</script>\u202egnp.exe <svg onload=alert(1)> zero\u200dwidth"
        post(ingest_client, [row(text=payload)])
        assert ContentItem.objects.get().text == payload


def post_raw(client: APIClient, rows: list[dict], replace: tuple[str, str] | None = None):  # type: ignore[no-untyped-def]
    """POST rows as JSON text; `replace` swaps a quoted placeholder for raw JSON (a number like 1e400
    that Python's json module cannot write)."""
    body = json.dumps({"decisions": rows})
    if replace is not None:
        placeholder, raw = replace
        assert f'"{placeholder}"' in body
        body = body.replace(f'"{placeholder}"', raw)
    return client.post(URL, body, content_type="application/json")


def nested(depth: int) -> list:
    value: list = [1]
    for _ in range(depth - 1):
        value = [value]
    return value


FIVE_VALID = [row(f"ok-{n}") for n in range(5)]


@pytest.mark.usefixtures("routing_rule")
class TestPoisonedRows:
    """Rows that pass a naive check and then fail in PostgreSQL or Python cost only themselves."""

    @pytest.mark.parametrize(
        ("poisoned", "replace", "field"),
        [
            (row("bad", metadata={"n": "BIG"}), ("BIG", "1e400"), "metadata"),
            (row("bad", metadata={"n": "BIG"}), ("BIG", "-1e400"), "metadata"),
            (row("bad", metadata={"deep": {"list": ["BIG"]}}), ("BIG", "1e999"), "metadata"),
            (row("bad", score="BIG"), ("BIG", "1" + "0" * 400), "score"),
            (row("bad", embedding=[0.5, "BIG"]), ("BIG", "1" + "0" * 400), "embedding"),
            (row("bad", embedding=[0.5, "BIG"]), ("BIG", "1e400"), "embedding"),
            (row("bad", media_urls=["http://[bad/x"]), None, "media_urls"),
            (row("bad", media_urls=["http://example.com:99999/x"]), None, "media_urls"),
            (row("bad", modality=["text"]), None, "modality"),
            (row("bad", modality={"a": 1}), None, "modality"),
            (row("bad", decided_at="9999-12-31T23:59:59-01:00"), None, "decided_at"),
            (row("bad", decided_at="0001-01-01T00:00:00+01:00"), None, "decided_at"),
            (row("bad", metadata={"note": "nul \x00 inside"}), None, "metadata"),
            (row("bad", metadata={"key \x00": 1}), None, "metadata"),
            (row("bad", context=[{"text": "lone \udc00"}]), None, "context"),
            (row("bad", metadata={"k\ud800": 1}), None, "metadata"),
            (row("bad", metadata={"a": nested(40)}), None, "metadata"),
        ],
    )
    def test_five_valid_rows_are_stored_and_the_poisoned_one_reported(
        self, ingest_client, poisoned: dict, replace: tuple[str, str] | None, field: str
    ) -> None:
        response = post_raw(ingest_client, [*FIVE_VALID, poisoned], replace)

        assert response.status_code == 207, response.content
        body = response.json()
        assert [r["index"] for r in body["results"]] == [0, 1, 2, 3, 4]
        assert [(e["index"], e["field"]) for e in body["errors"]] == [(5, field)]
        assert field in body["errors"][0]["message"]
        assert set(ContentItem.objects.values_list("external_id", flat=True)) == {f"ok-{n}" for n in range(5)}
        assert ModelDecision.objects.count() == 5

    def test_a_row_the_database_itself_refuses_costs_only_itself(self, ingest_client) -> None:
        """The last line of defence: a row validation let through but PostgreSQL refuses is found by
        splitting the batch in savepoints; the others are stored. A CHECK constraint, added inside
        the test's transaction, stands in for whatever validation may one day miss."""
        with connection.cursor() as cursor:
            cursor.execute(
                "ALTER TABLE reviewapp_contentitem ADD CONSTRAINT test_refuses_poison CHECK (external_id <> 'poison')"
            )
        rows = [*FIVE_VALID[:3], row("poison"), *FIVE_VALID[3:]]

        response = ingest_client.post("/api/v1/decisions", {"decisions": rows}, format="json")

        assert response.status_code == 207, response.content
        body = response.json()
        assert [r["index"] for r in body["results"]] == [0, 1, 2, 4, 5]
        assert [e["index"] for e in body["errors"]] == [3]
        assert "the database refused this row" in body["errors"][0]["message"]
        assert set(ContentItem.objects.values_list("external_id", flat=True)) == {f"ok-{n}" for n in range(5)}
        assert ModelDecision.objects.count() == 5

    @pytest.mark.parametrize(
        ("decided_at", "utc"),
        [
            ("2026-11-26T10:00:00-23:59", "2026-11-27T09:59:00+00:00"),
            ("2026-11-26T10:00:00+16:00", "2026-11-25T18:00:00+00:00"),
            ("2026-11-26T10:00:00+05:30:15", "2026-11-26T04:29:45+00:00"),
        ],
    )
    def test_offsets_postgresql_cannot_store_are_kept_as_the_same_instant_in_utc(
        self, ingest_client, decided_at: str, utc: str
    ) -> None:
        response = post_raw(ingest_client, [*FIVE_VALID, row("far-offset", decided_at=decided_at)])

        assert response.status_code == 200, response.content
        decision = ModelDecision.objects.get(pk=response.json()["results"][5]["decision_id"])
        assert decision.decided_at.isoformat() == utc
        assert ModelDecision.objects.count() == 6


class TestRequestErrors:
    def test_malformed_json_is_400_with_position(self, ingest_client) -> None:
        response = ingest_client.post(URL, '{"decisions": [', content_type="application/json")
        assert response.status_code == 400
        assert "Malformed JSON" in response.json()["detail"]

    def test_body_must_hold_a_decisions_list(self, ingest_client) -> None:
        response = ingest_client.post(URL, [row()], format="json")
        assert response.status_code == 400
        assert "'decisions' list" in response.json()["detail"]

    def test_empty_batch_is_400(self, ingest_client) -> None:
        assert post(ingest_client, []).status_code == 400

    @override_settings(INGEST_MAX_ROWS=3)
    def test_too_many_rows_is_413(self, ingest_client) -> None:
        response = post(ingest_client, [row(str(i)) for i in range(4)])
        assert response.status_code == 413
        assert "limit is 3" in response.json()["detail"]

    @override_settings(INGEST_MAX_BODY_BYTES=2048)
    def test_oversized_body_is_413(self, ingest_client) -> None:
        response = post(ingest_client, [row(text="x" * 5000)])
        assert response.status_code == 413
        assert ContentItem.objects.count() == 0

    def test_invalid_utf8_is_400(self, ingest_client) -> None:
        response = ingest_client.post(URL, b'{"decisions": ["\xff"]}', content_type="application/json")
        assert response.status_code == 400
        assert "UTF-8" in response.json()["detail"]

    @pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
    def test_non_json_numbers_are_400_not_500(self, ingest_client, constant) -> None:
        body = json.dumps({"decisions": [row(metadata={"y": 1})]})
        body = body.replace('"metadata": {', f'"metadata": {{"x": {constant}, ', 1)
        assert constant in body
        response = ingest_client.post(URL, body, content_type="application/json")
        assert response.status_code == 400
        assert f"{constant} is not a JSON value" in response.json()["detail"]
        assert ContentItem.objects.count() == 0

    def test_deeply_nested_json_is_400(self, ingest_client) -> None:
        response = ingest_client.post(URL, "[" * 100_000 + "]" * 100_000, content_type="application/json")
        assert response.status_code == 400
        assert "nested too deeply" in response.json()["detail"]


class TestAuth:
    def test_anonymous_is_401(self, db) -> None:
        assert post(APIClient(), [row()]).status_code == 401

    def test_unknown_token_is_401(self, db) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION="Bearer rva_not-a-real-token")
        assert post(client, [row()]).status_code == 401

    def test_token_without_scope_is_403(self, make_token) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(['export:read'])}")
        response = post(client, [row()])
        assert response.status_code == 403
        assert "decisions:write" in response.json()["detail"]

    def test_revoked_token_is_401(self, make_token) -> None:
        from reviewapp.audit import SYSTEM
        from reviewapp.models import ServiceToken
        from reviewapp.services.tokens import token_revoke

        secret = make_token(["decisions:write"])
        token_revoke(token_id=ServiceToken.objects.get(key_hash=ServiceToken.hash_secret(secret)).pk, actor=SYSTEM)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        assert post(client, [row()]).status_code == 401

    def test_logged_in_user_without_token_is_403(self, django_user_model) -> None:
        client = APIClient()
        client.force_login(django_user_model.objects.create_user("lead"))
        assert post(client, [row()]).status_code == 403


@pytest.mark.usefixtures("routing_rule")
def test_ingest_writes_audit_events_naming_the_token(ingest_client) -> None:
    result = post(ingest_client, [row(score=0.5)]).json()["results"][0]
    events = AuditEvent.objects.filter(item_id=result["item_id"]).order_by("id")
    assert [(e.action, e.object_type) for e in events] == [("decision.ingested", "decision"), ("task.created", "task")]
    assert events[0].actor_label.startswith("token:test-token-")
    assert events[0].after["score"] == 0.5 and events[0].request_id
