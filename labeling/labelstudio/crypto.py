"""Encryption at rest for connection secrets (Fernet: AES-128-CBC + HMAC-SHA256).

Keys come from `settings.FIELD_ENCRYPTION_KEYS` (REVIEWAPP_FIELD_ENCRYPTION_KEY, comma-separated
Fernet keys, newest first: decrypting tries each, encrypting uses the first, so keys can be
rotated). When none is set, one key is derived from SECRET_KEY; rotating SECRET_KEY then makes
stored tokens unreadable, which `decrypt` reports clearly instead of returning garbage.
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class SecretUnreadable(Exception):
    """A stored secret cannot be decrypted with the configured keys."""


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...], secret_key: str) -> MultiFernet:
    if not keys:
        digest = hashlib.sha256(b"reviewapp.labelstudio.field-encryption\0" + secret_key.encode()).digest()
        keys = (base64.urlsafe_b64encode(digest).decode(),)
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except ValueError:
        raise ImproperlyConfigured(
            "REVIEWAPP_FIELD_ENCRYPTION_KEY must be comma-separated Fernet keys "
            "(python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
        ) from None


def _current() -> MultiFernet:
    return _fernet(tuple(settings.FIELD_ENCRYPTION_KEYS), settings.SECRET_KEY)


def encrypt(plain: str) -> str:
    return _current().encrypt(plain.encode()).decode()


def decrypt(ciphertext: str) -> str:
    if not ciphertext:
        return ""
    try:
        return _current().decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable(
            "A stored Label Studio secret cannot be decrypted: the encryption key changed "
            "(REVIEWAPP_FIELD_ENCRYPTION_KEY or DJANGO_SECRET_KEY). Enter the token again."
        ) from None
