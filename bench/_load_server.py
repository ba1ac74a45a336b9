"""gunicorn configuration for bench/load.py: production settings, with the bench's side effects fenced off.

Used as `gunicorn -c bench/_load_server.py config.wsgi:application …`. Every setting of the
server (workers, bind address, access log) is on bench/load.py's command line; this file only
adds a hook that runs in each worker once the application is loaded:

- Celery messages that submissions enqueue (consensus after the undo window) go to a queue of
  their own that no worker consumes: task ids from the bench database must never reach a worker
  of a real deployment that shares the broker. bench/load.py deletes the queue at the end.
- Cache keys (metrics counters, login throttling) get a prefix of their own, deleted at the end,
  so the bench never adds to the counters of a real deployment.
- Each worker leaves a file in BENCH_LOAD_READY_DIR once it can serve, so the bench starts
  timing only when every worker has loaded the application (tens of seconds on a busy machine).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

CELERY_QUEUE = os.environ.get("BENCH_LOAD_CELERY_QUEUE", "bench_load")
CACHE_PREFIX = os.environ.get("BENCH_LOAD_CACHE_PREFIX", "reviewapp-bench-load")


def post_worker_init(worker: Any) -> None:
    from django.conf import settings

    from config.celery import app

    # Caches are created lazily per thread from these settings, after this hook has run.
    settings.CACHES["default"]["KEY_PREFIX"] = CACHE_PREFIX
    app.conf.task_routes = {"*": {"queue": CELERY_QUEUE}}
    ready = os.environ.get("BENCH_LOAD_READY_DIR")
    if ready:
        Path(ready, f"worker-{os.getpid()}").touch()
