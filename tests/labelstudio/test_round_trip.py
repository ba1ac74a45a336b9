"""The whole loop against a real Label Studio: project from a policy version, push with
predictions, two Label Studio users annotate, pull, and the answers count here exactly like
workspace answers (task completion, consensus, adjudication, audit). Re-running creates nothing."""

from __future__ import annotations

import pytest

from labeling.labelstudio.labelconfig import choice_results, label_config_for
from labeling.labelstudio.models import ExternalReviewer, ImportOutcome, Project, PulledAnnotation, PushedTask, SyncRun
from labeling.labelstudio.services import annotations_pull, connection_test, tasks_push
from labeling.models import Adjudication, Annotation, AnnotationSource, GoldLabel
from reviewapp.models import AuditEvent, TaskStatus


@pytest.fixture(autouse=True)
def _consensus_inline(settings):  # type: ignore[no-untyped-def]
    settings.UNDO_WINDOW_SECONDS = 0  # resolve consensus inline instead of after a 60 s window


def _ls_tasks(ls_admin, project: Project) -> list:  # type: ignore[no-untyped-def]
    return list(ls_admin.client.tasks.list(project=project.ls_project_id, fields="all"))


def test_round_trip_reaches_consensus_and_adjudication(
    make_connection, make_review_task, ls_admin, ls_annotator, ls_queue
) -> None:
    agreed = make_review_task("you are a clown")
    disputed = make_review_task("see you at the game", predicted="not_violating", score=0.41)
    connection = make_connection()
    assert connection_test(connection_id=connection.pk, triggered_by="test").ok

    run = tasks_push(connection_id=connection.pk, triggered_by="test")

    assert run.ok and run.counts == {"pushed": 2, "with_prediction": 2}
    project = Project.objects.get(connection=connection)
    remote = ls_admin.client.projects.get(id=project.ls_project_id)
    assert "violating" in remote.label_config and project.policy_version == agreed.policy.current_version()
    ls_tasks = {task.data["reviewapp_task_id"]: task for task in _ls_tasks(ls_admin, project)}
    assert set(ls_tasks) == {agreed.pk, disputed.pk}
    first = ls_tasks[agreed.pk]
    assert first.data["text"] == "you are a clown" and first.data["context"] == "alice: what did you say?"
    assert [(p.model_version, p.result) for p in first.predictions] == [
        ("tox-bert@2026.11", choice_results(["violating"]))
    ]

    for user, labels in ((ls_admin, ["violating"]), (ls_annotator, ["violating"])):
        user.client.annotations.create(id=ls_tasks[agreed.pk].id, result=choice_results(labels, "high"), lead_time=4.5)
    for user, labels in ((ls_admin, ["violating"]), (ls_annotator, ["not_violating"])):
        user.client.annotations.create(id=ls_tasks[disputed.pk].id, result=choice_results(labels, rationale="why"))

    pulled = annotations_pull(connection_id=connection.pk, triggered_by="test")

    assert pulled.ok and pulled.counts == {ImportOutcome.IMPORTED: 4}
    annotations = Annotation.objects.filter(source=AnnotationSource.LABEL_STUDIO)
    assert annotations.count() == 4
    mapped = {m.email: m.reviewer for m in ExternalReviewer.objects.all()}
    assert set(mapped) == {ls_admin.email, ls_annotator.email}
    assert {a.reviewer for a in annotations} == set(mapped.values())
    assert all(a.policy_version_id == project.policy_version_id for a in annotations)
    mine = annotations.get(task=agreed, reviewer=mapped[ls_annotator.email])
    assert (mine.labels, mine.severity, mine.handle_time_ms) == (["violating"], "high", 4500)
    agreed.refresh_from_db()
    disputed.refresh_from_db()
    assert agreed.annotation_count == disputed.annotation_count == 2
    gold = GoldLabel.objects.get(item=agreed.item)
    assert gold.labels == ["violating"] and sorted(gold.annotation_ids) == sorted(
        annotations.filter(task=agreed).values_list("pk", flat=True)
    )
    assert disputed.status == TaskStatus.ESCALATED
    assert Adjudication.objects.get(task=disputed).reason == "disagreement"
    submitted = AuditEvent.objects.filter(action="annotation.submitted")
    assert sorted(submitted.values_list("actor_label", flat=True)) == sorted(
        [user.username for user in mapped.values()] * 2
    )
    assert AuditEvent.objects.filter(action="labelstudio.reviewer_mapped").count() == 2
    assert AuditEvent.objects.filter(action="task.pushed_to_label_studio").count() == 2
    assert AuditEvent.objects.filter(action="task.completed").count() == 2

    # Running everything again creates nothing, here or in Label Studio.
    again = tasks_push(connection_id=connection.pk, triggered_by="test")
    assert again.ok and again.counts == {}
    assert len(_ls_tasks(ls_admin, project)) == 2 and PushedTask.objects.count() == 2
    repull = annotations_pull(connection_id=connection.pk, triggered_by="test")
    assert repull.ok and repull.counts == {"unchanged": 4}
    assert Annotation.objects.count() == 4 and PulledAnnotation.objects.count() == 4


def test_an_edit_in_label_studio_after_import_is_audited_and_the_first_answer_kept(
    make_connection, make_review_task, ls_admin
) -> None:
    task = make_review_task("edited later")
    connection = make_connection()
    tasks_push(connection_id=connection.pk, triggered_by="test")
    ls_task_id = PushedTask.objects.get(task=task).ls_task_id
    annotation = ls_admin.client.annotations.create(id=ls_task_id, result=choice_results(["violating"]))
    annotations_pull(connection_id=connection.pk, triggered_by="test")

    ls_admin.client.annotations.update(id=annotation.id, result=choice_results(["not_violating"]))
    run = annotations_pull(connection_id=connection.pk, triggered_by="test")

    assert run.counts == {"changed_after_import": 1}
    assert list(Annotation.objects.values_list("labels", flat=True)) == [["violating"]]
    change = AuditEvent.objects.get(action="labelstudio.annotation_changed")
    assert change.after["result"] == choice_results(["not_violating"]) and change.item_id == task.item_id
    assert annotations_pull(connection_id=connection.pk, triggered_by="test").counts == {"unchanged": 1}


def test_skipped_in_label_studio_is_recorded_but_not_an_answer(make_connection, make_review_task, ls_admin) -> None:
    task = make_review_task("skipped")
    connection = make_connection()
    tasks_push(connection_id=connection.pk, triggered_by="test")
    ls_admin.client.annotations.create(id=PushedTask.objects.get(task=task).ls_task_id, result=[], was_cancelled=True)

    run = annotations_pull(connection_id=connection.pk, triggered_by="test")

    assert run.counts == {ImportOutcome.CANCELLED: 1}
    assert not Annotation.objects.exists()


def test_exported_rows_import_into_a_label_studio_project(ls_admin, ls_policy) -> None:
    from labeling.labelstudio.labelconfig import ExportRow, ls_json_tasks

    version = ls_policy.current_version()
    rows = [
        ExportRow(text="gold one", labels=["violating"], policy_version=version, severity="high", external_id="g1"),
        ExportRow(text="gold two", labels=["not_violating"], policy_version=version, context=[{"text": "hi"}]),
    ]
    project = ls_admin.client.projects.create(title="export check", label_config=label_config_for(version))

    ls_admin.client.projects.import_tasks(id=project.id, request=ls_json_tasks(rows))

    imported = list(ls_admin.client.tasks.list(project=project.id, fields="all"))
    assert sorted(t.data["text"] for t in imported) == ["gold one", "gold two"]
    results = sorted(
        (t.annotations[0]["result"][0]["value"]["choices"], t.annotations[0]["ground_truth"]) for t in imported
    )
    assert results == [(["not_violating"], True), (["violating"], True)]
    assert SyncRun.objects.count() == 0
