"""Web processes and management commands start without torch or scikit-learn.

Loading them costs seconds and hundreds of MB in every gunicorn worker, and almost no web request
computes with them: training, scoring and evaluation run in Celery workers, and the pages draw
charts from metrics stored on the model version. The two serving endpoints (a model's bundle,
predict) load torch on their first request, in the processes that serve them. Each check runs in
a fresh interpreter, since this test process has usually imported torch already for other tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WSGI_MODULE = "config.wsgi"  # the module serving `application` to gunicorn
HEAVY = ("torch", "sklearn")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def _heavy_imports(importtime_log: str) -> list[str]:
    """Modules of HEAVY named in a `-X importtime` log (its last column is the dotted module name)."""
    names = (line.rsplit("|", 1)[-1].strip() for line in importtime_log.splitlines() if line.startswith("import time:"))
    return sorted({name for name in names if name.split(".")[0] in HEAVY})


def test_manage_py_check_imports_no_torch_or_sklearn() -> None:
    result = _run("-X", "importtime", "manage.py", "check")
    assert result.returncode == 0, result.stderr[-2000:]
    assert _heavy_imports(result.stderr) == []


_RESOLVE_EVERY_VIEW = f"""
import sys
from importlib import import_module

import_module({WSGI_MODULE!r}).application
import_module("activelearning.tasks")  # a web process imports the tasks to enqueue a round
from django.urls import URLResolver, get_resolver

def views(resolver):
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            yield from views(pattern)
        else:
            yield pattern.callback

count = sum(1 for _ in views(get_resolver()))
print(count, *sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r}))
"""


def test_wsgi_application_every_view_and_the_tasks_import_no_torch_or_sklearn() -> None:
    result = _run("-c", _RESOLVE_EVERY_VIEW)
    assert result.returncode == 0, result.stderr[-2000:]
    count, *heavy = result.stdout.split()
    assert int(count) > 50  # the walk reached the apps' URLconfs, not just the root
    assert heavy == []
