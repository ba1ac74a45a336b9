"""Webhooks: Label Studio itself calls the live test server, which enqueues a pull that a real
Celery worker runs; a retried pull survives the server going away. Plus the endpoint's checks."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from labeling.labelstudio.client import WEBHOOK_SECRET_HEADER
from labeling.labelstudio.labelconfig import choice_results
from labeling.labelstudio.models import Connection, PushedTask, SyncRun
from labeling.labelstudio.services import annotations_pull, tasks_push
from labeling.labelstudio.tasks import pull_connection
from labeling.models import Annotation, AnnotationSource
from tests.worker import wait_for


@pytest.mark.worker
def test_label_studio_webhook_reaches_the_live_server_and_the_worker_pulls(
    transactional_db, celery_worker_process, live_server, make_connection, make_review_task, ls_annotator
) -> None:
    task = make_review_task("delivered by webhook")
    connection = make_connection(callback_base_url=live_server.url)
    tasks_push(connection_id=connection.pk, triggered_by="test")

    ls_annotator.client.annotations.create(
        id=PushedTask.objects.get(task=task).ls_task_id, result=choice_results(["violating"])
    )

    # The pull's own log row is finished last: once it is, its answers are in.
    wait_for(lambda: SyncRun.objects.filter(kind="pull", triggered_by="webhook", ok=True).exists(), timeout=60)
    assert Annotation.objects.get(task=task).source == AnnotationSource.LABEL_STUDIO
    connection.refresh_from_db()
    assert connection.last_webhook_at is not None


@pytest.mark.worker
def test_a_pull_retried_by_celery_succeeds_once_label_studio_is_back(
    transactional_db, celery_worker_process, make_connection, make_review_task, ls_admin, label_studio
) -> None:
    task = make_review_task("retried")
    connection = make_connection()
    tasks_push(connection_id=connection.pk, triggered_by="test")
    ls_admin.client.annotations.create(
        id=PushedTask.objects.get(task=task).ls_task_id, result=choice_results(["violating"])
    )
    label_studio.stop()
    try:
        pull_connection.delay(connection.pk, "test")
        wait_for(lambda: SyncRun.objects.filter(kind="pull", ok=False, error__contains="unreachable").exists())
    finally:
        label_studio.start()

    wait_for(lambda: SyncRun.objects.filter(kind="pull", ok=True).exists(), timeout=90)
    assert Annotation.objects.filter(task=task).count() == 1
    assert annotations_pull(connection_id=connection.pk, triggered_by="test").counts == {"unchanged": 1}


def _post(client, connection: Connection, secret: str, action: str = "ANNOTATION_CREATED"):  # type: ignore[no-untyped-def]
    return client.post(
        reverse("labelstudio-webhook", args=[connection.pk]),
        data=json.dumps({"action": action, "annotation": {"id": 1}}),
        content_type="application/json",
        headers={WEBHOOK_SECRET_HEADER: secret},
    )


@pytest.fixture
def offline_connection(db, ls_policy):  # type: ignore[no-untyped-def]
    from labeling.labelstudio.services import connection_create
    from reviewapp.audit import SYSTEM

    return connection_create(
        name="offline", base_url="http://127.0.0.1:9", token="t" * 40, policy=ls_policy, actor=SYSTEM
    )


def test_webhook_with_a_wrong_secret_is_refused(client, offline_connection) -> None:
    assert _post(client, offline_connection, "wrong").status_code == 403
    assert _post(client, offline_connection, "").status_code == 403


def test_webhook_with_a_non_ascii_secret_is_refused_not_a_server_error(client, offline_connection) -> None:
    # An anonymous caller controls the header; comparing it as str raised TypeError (a 500).
    assert _post(client, offline_connection, "é").status_code == 403
    assert _post(client, offline_connection, offline_connection.webhook_secret() + "é").status_code == 403


def test_webhook_enqueues_a_pull_for_annotation_events_only(
    client, offline_connection, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    queued: list[tuple] = []
    monkeypatch.setattr(pull_connection, "delay", lambda *args: queued.append(args))
    secret = offline_connection.webhook_secret()

    with django_capture_on_commit_callbacks(execute=True):
        created = _post(client, offline_connection, secret)
        ignored = _post(client, offline_connection, secret, action="PROJECT_UPDATED")

    assert (created.status_code, ignored.status_code) == (202, 200)
    assert queued == [(offline_connection.pk, "webhook")]
