"""Clear errors against a real Label Studio: wrong token, deleted project, edited config, server
down. Each is written to the sync log and the connection's status; nothing is lost or doubled."""

from __future__ import annotations

import pytest

from labeling.labelstudio.client import ConfigMismatch, ProjectMissing, Unauthorized, Unavailable
from labeling.labelstudio.labelconfig import choice_results
from labeling.labelstudio.models import ConnectionStatus, Project, PushedTask, SyncRun
from labeling.labelstudio.services import annotations_pull, connection_test, project_sync, tasks_push
from labeling.models import Annotation, PolicyVersion
from tests.factories import BINARY_SCHEMA


def test_a_wrong_token_is_reported_on_the_connection(make_connection, label_studio) -> None:
    connection = make_connection(token="0" * 40)

    with pytest.raises(Unauthorized, match="refused the API token"):
        connection_test(connection_id=connection.pk, triggered_by="lead")

    connection.refresh_from_db()
    run = SyncRun.objects.get()
    assert connection.status == ConnectionStatus.UNAUTHORIZED and run.ok is False
    assert "refused the API token" in connection.status_detail == run.error
    assert "0" * 40 not in run.error


def test_a_token_from_the_environment_is_used(make_connection, label_studio, monkeypatch) -> None:
    monkeypatch.setenv("LABEL_STUDIO_TOKEN_TEST", label_studio.token)
    connection = make_connection(token="", token_env_var="LABEL_STUDIO_TOKEN_TEST")
    assert connection.token_ciphertext == ""
    assert connection_test(connection_id=connection.pk, triggered_by="lead").ok


def test_a_project_deleted_in_label_studio_is_reported_and_can_be_recreated(
    make_connection, make_review_task, ls_admin
) -> None:
    task = make_review_task("pushed before the project vanished")
    connection = make_connection()
    tasks_push(connection_id=connection.pk, triggered_by="test")
    first = Project.objects.get()
    ls_admin.client.projects.delete(id=first.ls_project_id)

    with pytest.raises(ProjectMissing, match=f"project {first.ls_project_id} no longer exists"):
        annotations_pull(connection_id=connection.pk, triggered_by="test")
    connection.refresh_from_db()
    assert connection.status == ConnectionStatus.PROJECT_MISSING

    project_sync(connection_id=connection.pk, triggered_by="lead", recreate=True)
    run = tasks_push(connection_id=connection.pk, triggered_by="lead")

    second = Project.objects.get(is_current=True)
    assert second.ls_project_id != first.ls_project_id and run.counts["pushed"] == 1
    assert PushedTask.objects.get(task=task, is_live=True).project == second
    assert annotations_pull(connection_id=connection.pk, triggered_by="test").ok


def test_a_config_edited_in_label_studio_stops_pulls_until_synced(make_connection, make_review_task, ls_admin) -> None:
    task = make_review_task("config drift")
    connection = make_connection()
    tasks_push(connection_id=connection.pk, triggered_by="test")
    project = Project.objects.get()
    edited = project.label_config.replace('<Choice value="low"/>', '<Choice value="low"/><Choice value="extreme"/>')
    ls_admin.client.projects.update(id=project.ls_project_id, label_config=edited)
    ls_admin.client.annotations.create(
        id=PushedTask.objects.get(task=task).ls_task_id, result=choice_results(["violating"])
    )

    with pytest.raises(ConfigMismatch, match="no longer matches"):
        annotations_pull(connection_id=connection.pk, triggered_by="test")
    assert not Annotation.objects.exists()

    project_sync(connection_id=connection.pk, triggered_by="lead")
    assert annotations_pull(connection_id=connection.pk, triggered_by="test").counts == {"imported": 1}


def test_a_new_policy_version_updates_an_unannotated_project_and_replaces_an_annotated_one(
    make_connection, make_review_task, ls_policy, ls_admin
) -> None:
    task = make_review_task("before the new version")
    connection = make_connection()
    tasks_push(connection_id=connection.pk, triggered_by="test")
    project = Project.objects.get()
    schema = {**BINARY_SCHEMA, "labels": [*BINARY_SCHEMA["labels"], {"value": "borderline", "title": "Borderline"}]}
    v2 = PolicyVersion.objects.create(policy=ls_policy, number=2, guideline="v2", label_schema=schema)

    project_sync(connection_id=connection.pk, triggered_by="lead")

    project.refresh_from_db()
    assert (
        project.policy_version == v2
        and "borderline" in ls_admin.client.projects.get(id=project.ls_project_id).label_config
    )
    ls_admin.client.annotations.create(
        id=PushedTask.objects.get(task=task).ls_task_id, result=choice_results(["borderline"])
    )
    PolicyVersion.objects.create(policy=ls_policy, number=3, guideline="v3", label_schema=BINARY_SCHEMA)

    project_sync(connection_id=connection.pk, triggered_by="lead")

    newest = Project.objects.get(is_current=True)
    assert newest.pk != project.pk and newest.policy_version.number == 3
    pulled = annotations_pull(connection_id=connection.pk, triggered_by="test")
    assert pulled.counts == {"imported": 1}
    assert Annotation.objects.get().policy_version == v2  # the version the annotator was shown


def test_server_down_is_a_clear_error_and_the_next_pull_recovers(
    make_connection, make_review_task, ls_admin, label_studio
) -> None:
    task = make_review_task("while the server was down")
    connection = make_connection()
    tasks_push(connection_id=connection.pk, triggered_by="test")
    ls_admin.client.annotations.create(
        id=PushedTask.objects.get(task=task).ls_task_id, result=choice_results(["violating"])
    )
    label_studio.stop()
    try:
        with pytest.raises(Unavailable, match="unreachable"):
            annotations_pull(connection_id=connection.pk, triggered_by="test")
        with pytest.raises(Unavailable):
            tasks_push(connection_id=connection.pk, triggered_by="test", task_ids=[make_review_task("new").pk])
        connection.refresh_from_db()
        assert connection.status == ConnectionStatus.UNREACHABLE
    finally:
        label_studio.start()

    assert annotations_pull(connection_id=connection.pk, triggered_by="test").counts == {"imported": 1}
    assert tasks_push(connection_id=connection.pk, triggered_by="test").counts["pushed"] == 1
    connection.refresh_from_db()
    assert connection.status == ConnectionStatus.OK and Annotation.objects.count() == 1
    assert PushedTask.objects.filter(ls_task_id__isnull=True).count() == 0
