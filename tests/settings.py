"""Settings for the test suite: production settings with the few changes tests need.

Tests run with DEBUG off, like production; only the HTTPS redirect (tests speak plain HTTP to
the test client and live server) and password hashing cost (speed) differ.
"""

from config.settings import *  # noqa: F403

SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# No collectstatic before tests: serve static files from the app folders, unhashed.
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
# Rate-limit counters must not leak between test runs through the shared Redis.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# The real Label Studio server of tests/labelstudio/ listens on loopback over plain http (a port
# chosen per session), so loopback is allowed the way an operator allows an internal server. The
# address-policy tests (tests/labelstudio/test_address_policy.py) put the production default back.
LABEL_STUDIO_ALLOWED_HOSTS = ["127.0.0.1"]
