"""Label Studio interop: this app is the quality-and-learning layer behind a team's Label Studio.

A `Connection` points at one Label Studio server and a policy. Its labeling config is generated
from the policy version's label schema (`labelconfig.py`); review tasks are pushed there as
Label Studio tasks with the model's prediction as a pre-annotation; finished Label Studio
annotations are pulled back through `labeling.services.annotation_submit`, so everything that
applies to workspace answers (audit, task completion, later consensus and adjudication) applies
to them unchanged. `services/` holds the transitions (connections, projects, push, pull, the
sync log), `tasks.py` the Celery wrappers,
`client.py` the only code that talks to Label Studio.
"""
