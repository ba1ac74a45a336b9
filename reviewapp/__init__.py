"""reviewapp: the Django project and the review workflow (intake, routing, queues, claims)."""

from .celery import app as celery_app

__all__ = ["celery_app"]
