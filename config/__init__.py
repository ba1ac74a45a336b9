"""The Django project on top of the apps: settings, URLs and the one API router, Celery, WSGI/ASGI.

The Celery app is created here so that `celery -A config` and every Django process (web,
`manage.py`, tests) share one application that knows the apps' tasks.
"""

from .celery import app as celery_app

__all__ = ["celery_app"]
