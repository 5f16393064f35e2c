"""An OpenAI grader stored as a reward version's config: `{"grader": <normalised grader>}`.

A model grader's `api_key` is stored only encrypted (`api_key_encrypted`, as a judge reward's
key) and shown only as `has_api_key`. Editing without a key keeps the stored one, but only for
the same `base_url`: a key must never follow a grader to another host.
"""

from __future__ import annotations

from typing import Any

from rewards.openai_graders.model_graders import SECRET_KEY_FIELD
from rewards.openai_graders.validation import Checking, GraderProblem, validate_grader
from rftconsole.security.crypto import encrypt_text

SHOWN_KEY_FIELD = "has_api_key"
NOT_A_GRADER = 'must be {"grader": {...}}, an OpenAI grader object such as {"type": "python", …}.'


def stored_config(
    config: dict[str, Any], how: Checking, previous: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The config to store, validated strictly; `GraderProblem` naming the first wrong field."""
    strays = sorted(set(config) - {"grader"})
    if strays or "grader" not in config:
        raise GraderProblem(strays[0] if strays else "grader", NOT_A_GRADER)
    grader = validate_grader(_unmasked(config["grader"]), how)
    old = (previous or {}).get("grader")
    return {"grader": _sealed(grader, old if isinstance(old, dict) else None)}


def shown_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config for pages and the API: each stored key replaced by `has_api_key`."""
    grader = config.get("grader")
    return {**config, "grader": _masked(grader)} if isinstance(grader, dict) else config


def _unmasked(grader: Any) -> Any:
    """A grader as edited: the fields we add when showing it are not the user's to set."""
    if not isinstance(grader, dict):
        return grader
    found = {k: v for k, v in grader.items() if k not in (SECRET_KEY_FIELD, SHOWN_KEY_FIELD)}
    if isinstance(found.get("graders"), dict):
        found["graders"] = {name: _unmasked(g) for name, g in found["graders"].items()}
    return found


def _sealed(grader: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
    if grader["type"] == "multi":
        before = (previous or {}).get("graders") or {}
        parts = {name: _sealed(g, before.get(name)) for name, g in grader["graders"].items()}
        return {**grader, "graders": parts}
    sealed = {key: value for key, value in grader.items() if key != "api_key"}
    if "base_url" not in grader:
        return sealed  # a registry model: no key to keep
    key = grader.get("api_key")
    kept = (previous or {}).get(SECRET_KEY_FIELD)
    if key:
        sealed[SECRET_KEY_FIELD] = encrypt_text(key)
    elif key is None and kept and previous and previous.get("base_url") == grader["base_url"]:
        sealed[SECRET_KEY_FIELD] = kept
    return sealed  # `"api_key": ""` removes a stored key


def _masked(grader: dict[str, Any]) -> dict[str, Any]:
    shown = {key: value for key, value in grader.items() if key != SECRET_KEY_FIELD}
    if "base_url" in grader:
        shown[SHOWN_KEY_FIELD] = bool(grader.get(SECRET_KEY_FIELD))
    if isinstance(grader.get("graders"), dict):
        shown["graders"] = {name: _masked(g) for name, g in grader["graders"].items()}
    return shown
