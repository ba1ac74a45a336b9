"""The Celery application (`celery -A config`). Settings come from Django settings under the CELERY_ namespace."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# The main name stays "reviewapp": tasks carry explicit stable names ("reviewapp.…", "labeling.…"), and
# the main name only prefixes unnamed ones, so moving the project package renames nothing on the broker.
app = Celery("reviewapp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
