"""Encrypt secrets we must store and later use ourselves, such as a judge endpoint's API key.

Such a secret cannot be hashed like a password: the console has to send it again. Fernet gives
authenticated encryption, so a token that was tampered with, or was made with another key, is
refused instead of decrypting to garbage. The key is `RFT_ENCRYPTION_KEY` when set (so it can be
rotated apart from SECRET_KEY), otherwise derived from SECRET_KEY so that a default install needs
no extra setting.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# Keeps the derived key distinct from anything else that might hash SECRET_KEY.
_DERIVATION_CONTEXT = b"rftconsole.crypto.v1:"


def _fernet() -> Fernet:
    """Built on every call (it is cheap) so that a changed setting takes effect at once."""
    configured = getattr(settings, "RFT_ENCRYPTION_KEY", "")
    if configured:
        try:
            return Fernet(configured.encode())
        except ValueError:
            raise ImproperlyConfigured(
                "RFT_ENCRYPTION_KEY must be a Fernet key (32 url-safe base64-encoded bytes); "
                "make one with: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'"
            ) from None
    digest = hashlib.sha256(_DERIVATION_CONTEXT + settings.SECRET_KEY.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def encrypt_text(plain: str) -> str:
    """A printable token that only this installation's key can turn back into `plain`."""
    return _fernet().encrypt(plain.encode()).decode()


def decrypt_text(token: str) -> str:
    """The plain text; a `ValueError` saying what probably happened when the key does not fit."""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except (InvalidToken, TypeError, AttributeError):
        raise ValueError(
            "The stored secret cannot be decrypted: was SECRET_KEY or RFT_ENCRYPTION_KEY changed? "
            "Enter the secret again to store it with the current key."
        ) from None
