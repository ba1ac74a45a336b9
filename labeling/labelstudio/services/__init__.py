"""Label Studio transitions: connect, keep the project in step with the policy, push, pull.

Network calls to Label Studio never run inside a database transaction: each service reads what
it needs, talks to Label Studio, then records the outcome in short transactions. Every run is
written to the sync log (`SyncRun`, `sync_log.py`) with its counts or its error, and the
connection's status follows the last run. Re-running any of them is safe: pushes are recorded
per (connection, task), pulled annotations per (project, Label Studio annotation id), and every
answer goes through `annotation_submit` with a deterministic submission id.

One module per topic — connections, projects, push, pull — re-exported here for callers.
"""

from .connections import connection_create, connection_test, webhook_accept
from .projects import project_sync, webhook_url
from .pull import PULL_OVERLAP_SECONDS, SUBMISSION_NAMESPACE, annotations_pull, submission_id_for
from .push import PUSH_CHUNK, TASK_MARKER, task_payload, tasks_push

__all__ = [
    "PULL_OVERLAP_SECONDS",
    "PUSH_CHUNK",
    "SUBMISSION_NAMESPACE",
    "TASK_MARKER",
    "annotations_pull",
    "connection_create",
    "connection_test",
    "project_sync",
    "submission_id_for",
    "task_payload",
    "tasks_push",
    "webhook_accept",
    "webhook_url",
]
