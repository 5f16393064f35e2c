"""Encryption with the installation's keys: secrets we must send again (a judge endpoint's API
key) and, when a key is configured, user content at rest (dataset files, invocation logs, rollouts).

Fernet gives authenticated encryption, so a token that was tampered with, or was made with another
key, is refused instead of decrypting to garbage. MultiFernet allows rotation: the first key
encrypts, every key decrypts.

Keys come from `RFT_ENCRYPTION_KEY` (one or more comma-separated Fernet keys) or
`RFT_ENCRYPTION_KEY_FILE` (one key per line). Either one turns encryption at rest on. With
neither, judge keys are still encrypted, with a key derived from SECRET_KEY, so a default install
needs no setting; that derived key stays a last decryption key once keys are configured, so judge
keys stored before keep working until `rotate_encryption_key` re-encrypts them.

Stored text values carry a marker: `enc:v1:<token>` is encrypted, anything else is plain (stored
before a key was set); plain text that happens to start with `enc:` is stored as `enc:plain:…` so
it can never be mistaken for a token.
"""

from __future__ import annotations

import base64
import hashlib
import os
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# Keeps the derived key distinct from anything else that might hash SECRET_KEY.
_DERIVATION_CONTEXT = b"rftconsole.security.crypto.v1:"
ENCRYPTED_PREFIX = "enc:v1:"
ESCAPED_PREFIX = "enc:plain:"
_MAKE_KEY = (
    "make one with: python -c 'from cryptography.fernet import Fernet; "
    "print(Fernet.generate_key().decode())'"
)


class DecryptionError(ValueError):
    """Stored data that the configured keys cannot decrypt (another key, or altered data)."""


def _check_key(key: str, where: str) -> str:
    try:
        Fernet(key.encode())
    except ValueError:
        # Never echo the value: it may be a real key with a typo.
        raise ImproperlyConfigured(
            f"{where} is not a Fernet key (32 url-safe base64-encoded bytes); {_MAKE_KEY}"
        ) from None
    return key


@lru_cache(maxsize=4)
def _read_key_file(path: str, _mtime_ns: int) -> tuple[str, ...]:
    """Keys of the file, re-read when it changes (the mtime is part of the cache key)."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = [line.strip() for line in handle]
    except UnicodeDecodeError:
        raise ImproperlyConfigured(f"RFT_ENCRYPTION_KEY_FILE ({path}) is not text") from None
    keys = tuple(
        _check_key(line, f"RFT_ENCRYPTION_KEY_FILE ({path}) line {number}")
        for number, line in enumerate(lines, start=1)
        if line and not line.startswith("#")
    )
    if not keys:
        raise ImproperlyConfigured(f"RFT_ENCRYPTION_KEY_FILE ({path}) holds no key; {_MAKE_KEY}")
    return keys


def configured_keys() -> tuple[str, ...]:
    """The configured keys, primary first; empty when encryption at rest is off."""
    inline = getattr(settings, "RFT_ENCRYPTION_KEY", "") or ""
    path = getattr(settings, "RFT_ENCRYPTION_KEY_FILE", "") or ""
    if inline.strip() and path:
        raise ImproperlyConfigured(
            "Set RFT_ENCRYPTION_KEY or RFT_ENCRYPTION_KEY_FILE, not both: both would name the "
            "primary key."
        )
    if path:
        try:
            return _read_key_file(str(path), os.stat(path).st_mtime_ns)
        except OSError as error:
            raise ImproperlyConfigured(
                f"RFT_ENCRYPTION_KEY_FILE ({path}) cannot be read: {error.strerror}"
            ) from None
    return _parse_inline(inline)


@lru_cache(maxsize=4)
def _parse_inline(inline: str) -> tuple[str, ...]:
    parts = [part.strip() for part in inline.split(",") if part.strip()]
    return tuple(
        _check_key(key, f"RFT_ENCRYPTION_KEY key {number}")
        for number, key in enumerate(parts, start=1)
    )


def at_rest_enabled() -> bool:
    """Whether dataset files, invocation logs and rollouts are stored encrypted."""
    return bool(configured_keys())


def check_keys() -> None:
    """Raise ImproperlyConfigured now (at start) rather than at the first upload."""
    configured_keys()


@lru_cache(maxsize=8)
def _multi(keys: tuple[str, ...], secret_key: str) -> MultiFernet:
    digest = hashlib.sha256(_DERIVATION_CONTEXT + secret_key.encode()).digest()
    derived = Fernet(base64.urlsafe_b64encode(digest))
    return MultiFernet([*(Fernet(key.encode()) for key in keys), derived])


def _fernet() -> MultiFernet:
    """Looked up on every call (cached per key set) so that a changed setting takes effect."""
    return _multi(configured_keys(), settings.SECRET_KEY)


def encrypt_bytes(data: bytes) -> bytes:
    return _fernet().encrypt(data)


def decrypt_bytes(token: bytes, what: str) -> bytes:
    """The plain bytes; DecryptionError naming `what` when no configured key fits."""
    try:
        return _fernet().decrypt(token)
    except (InvalidToken, TypeError):
        raise DecryptionError(_cannot_decrypt(what)) from None


def rotate_token(token: bytes, what: str) -> bytes:
    """The same plain data under the primary key (any configured key may have made `token`)."""
    try:
        return _fernet().rotate(token)
    except (InvalidToken, TypeError):
        raise DecryptionError(_cannot_decrypt(what)) from None


def _cannot_decrypt(what: str) -> str:
    return (
        f"{what} cannot be decrypted with the configured encryption keys: it was encrypted "
        "with a key that is not in RFT_ENCRYPTION_KEY / RFT_ENCRYPTION_KEY_FILE, or it was "
        "altered. Put the old key back (after the new one) and run rotate_encryption_key."
    )


def encrypt_text(plain: str) -> str:
    """A printable token that only this installation's keys can turn back into `plain`."""
    return encrypt_bytes(plain.encode()).decode()


def decrypt_text(token: str) -> str:
    """The plain text; a `ValueError` saying what probably happened when the key does not fit."""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except (InvalidToken, TypeError, AttributeError):
        raise DecryptionError(
            "The stored secret cannot be decrypted: was SECRET_KEY or RFT_ENCRYPTION_KEY changed? "
            "Enter the secret again to store it with the current key."
        ) from None


def is_sealed(stored: str) -> bool:
    return stored.startswith(ENCRYPTED_PREFIX)


def seal(text: str) -> str:
    """How `text` is stored: encrypted when encryption at rest is on, else plain (escaped only
    when it could be mistaken for a token)."""
    if at_rest_enabled():
        return ENCRYPTED_PREFIX + encrypt_text(text)
    return ESCAPED_PREFIX + text if text.startswith("enc:") else text


def unseal(stored: str, what: str) -> str:
    """The text `seal` was given, from either form; DecryptionError when no key fits."""
    if stored.startswith(ENCRYPTED_PREFIX):
        token = stored[len(ENCRYPTED_PREFIX) :].encode()
        return decrypt_bytes(token, what).decode()
    return stored.removeprefix(ESCAPED_PREFIX)
