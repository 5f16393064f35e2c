"""Model fields whose content is encrypted at rest when an encryption key is configured.

The column type stays what it was (text, JSON), so no data has to move when a key is set: values
stored before read as they are, new and re-saved values are `enc:v1:<token>` (see crypto.py).
Encrypted values cannot be searched or filtered in SQL; callers filter these fields in Python.
"""

from __future__ import annotations

import json
from typing import Any

from django.db import models

from rftconsole.security import crypto


def _what(field: models.Field) -> str:
    return f"{field.model.__name__}.{field.name}"


class EncryptedTextField(models.TextField):
    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        # Empty stays empty: lookups like `exclude(text="")` keep working and reveal nothing.
        return crypto.seal(value) if isinstance(value, str) and value else value

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        return crypto.unseal(value, _what(self)) if isinstance(value, str) else value


class EncryptedJSONField(models.JSONField):
    """JSON encrypted as a whole: the column then holds one JSON string, `"enc:v1:<token>"`."""

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if value is None:
            return None  # SQL NULL, as JSONField stores it
        if crypto.at_rest_enabled():
            return crypto.seal(json.dumps(value, cls=self.encoder, ensure_ascii=False))
        # A plain JSON string that looks like a token is escaped by seal().
        return crypto.seal(value) if isinstance(value, str) else value

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        value = super().from_db_value(value, expression, connection)
        if not isinstance(value, str):
            return value
        if crypto.is_sealed(value):
            return json.loads(crypto.unseal(value, _what(self)), cls=self.decoder)
        return crypto.unseal(value, _what(self))
