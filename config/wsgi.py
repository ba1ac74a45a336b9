"""WSGI entry point (gunicorn config.wsgi:application)."""

import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()
# Import every view now (the model pages bring in torch and scikit-learn, several seconds on a
# busy machine), so a new worker process pays at start-up, not in its first reviewer's request.
_views = get_resolver().url_patterns
