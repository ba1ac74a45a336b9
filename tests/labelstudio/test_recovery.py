"""Nothing lost, nothing doubled: a push that died after sending, and an answer that met
another reviewer's lease (real Label Studio server)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from labeling.labelstudio.labelconfig import choice_results
from labeling.labelstudio.models import ImportOutcome, Project, PulledAnnotation, PushedTask
from labeling.labelstudio.services import TASK_MARKER, annotations_pull, tasks_push
from labeling.models import Annotation
from reviewapp.models import ReviewTask
from tests.factories import UserFactory


def test_a_push_that_died_after_sending_is_adopted_not_sent_again(make_connection, make_review_task, ls_admin) -> None:
    sent, unsent = make_review_task("sent before the crash"), make_review_task("never sent")
    connection = make_connection()
    tasks_push(connection_id=connection.pk, triggered_by="test", task_ids=[])  # creates the project only
    project = Project.objects.get()
    ls_admin.client.projects.import_tasks(
        id=project.ls_project_id, request=[{"data": {"text": "x", "context": "", TASK_MARKER: sent.pk}}]
    )
    for task in (sent, unsent):  # what a worker killed between import and bookkeeping leaves behind
        PushedTask.objects.create(connection=connection, project=project, task=task, ls_task_id=None)

    run = tasks_push(connection_id=connection.pk, triggered_by="test")

    assert run.counts["pushed"] == 1  # only the task Label Studio never received
    ls_ids = [t.id for t in ls_admin.client.tasks.list(project=project.ls_project_id, fields="task_only")]
    assert len(ls_ids) == 2 and sorted(PushedTask.objects.values_list("ls_task_id", flat=True)) == sorted(ls_ids)


def test_an_answer_given_while_an_in_app_reviewer_holds_the_task_is_recorded_at_once(
    make_connection, make_review_task, ls_admin
) -> None:
    """A Label Studio annotator never held a lease here: their answer neither waits for nor
    disturbs the in-app reviewer's lease."""
    task = make_review_task("leased here")
    connection = make_connection()
    tasks_push(connection_id=connection.pk, triggered_by="test")
    in_app = UserFactory(username="in-app-reviewer")
    ReviewTask.objects.filter(pk=task.pk).update(
        leased_by=in_app, lease_expires_at=timezone.now() + timedelta(minutes=5)
    )
    ls_admin.client.annotations.create(
        id=PushedTask.objects.get(task=task).ls_task_id, result=choice_results(["violating"])
    )

    first = annotations_pull(connection_id=connection.pk, triggered_by="test")

    assert first.counts == {ImportOutcome.IMPORTED: 1}
    annotation = Annotation.objects.get()
    assert not annotation.late and PulledAnnotation.objects.get().annotation == annotation
    assert ReviewTask.objects.get(pk=task.pk).leased_by == in_app
