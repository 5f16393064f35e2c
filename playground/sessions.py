"""The playground's sync side: sessions (models, prompt, sampling, reward), their transcripts, the
rows a reward scores an answer with, and validation rows to try. The websocket consumer
(playground/consumers.py) calls these from its async code; views call them directly.
"""

from __future__ import annotations

import math
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import QuerySet

from jobs.datasets.formats import prompt_messages
from jobs.datasets.tools import page_of_rows
from jobs.models import Dataset, Job, ModelEntry, ready_models
from playground.models import InvocationLog, PlaygroundSession
from rewards.models import RewardVersion
from rewards.scoring import score_batch
from rewards.types import RewardResult, Sample
from rftconsole.ownership import owned
from rftconsole.parsers import json_safe

MIN_MODELS, MAX_MODELS = 2, 3
MAX_PROMPT_CHARS = 50_000  # one user turn; longer text is refused before it reaches a tokenizer
MAX_SYSTEM_CHARS = 20_000
TITLE_LENGTH = 60
SOURCE = "playground"  # the `source` metadata of every playground invocation log


class SessionError(ValueError):
    """Settings that cannot be used, in words a user can act on."""


def choosable_models(owner: AbstractBaseUser) -> QuerySet[ModelEntry]:
    """The models a session can compare, by name (the order of the model pickers)."""
    return ready_models(owner).order_by("name", "pk")


def reward_versions(owner: AbstractBaseUser) -> QuerySet[RewardVersion]:
    return (
        RewardVersion.objects.filter(reward__owner=owner)
        .select_related("reward")
        .order_by("reward__name", "-number")
    )


def check_models(owner: AbstractBaseUser, model_ids: list[Any]) -> list[ModelEntry]:
    """2 or 3 distinct ready models of the owner, in the order given."""
    ids: list[int] = []
    for value in model_ids:
        if value in (None, ""):
            continue
        try:
            ids.append(int(value))
        except (TypeError, ValueError):
            raise SessionError(f"{value!r} is not a model id.") from None
    if len(set(ids)) != len(ids):
        raise SessionError("Choose each model once.")
    if not MIN_MODELS <= len(ids) <= MAX_MODELS:
        raise SessionError(f"Choose {MIN_MODELS} or {MAX_MODELS} models to compare.")
    found = {entry.pk: entry for entry in ready_models(owner).filter(pk__in=ids)}
    missing = [i for i in ids if i not in found]
    if missing:
        raise SessionError(f"Model {missing[0]} does not exist, is not yours or is not ready.")
    return [found[i] for i in ids]


def _number(data: dict[str, Any], name: str, low: float, high: float, default: float) -> float:
    value = data.get(name, default)
    if value in (None, ""):
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SessionError(f"{name.replace('_', ' ').capitalize()} must be a number.") from None
    if not math.isfinite(number) or not low <= number <= high:
        raise SessionError(f"{name.replace('_', ' ').capitalize()} must be from {low} to {high}.")
    return number


def clean_settings(owner: AbstractBaseUser, data: dict[str, Any]) -> dict[str, Any]:
    """Checked session fields from a form or a websocket message (missing ones keep defaults)."""
    system = data.get("system_prompt", "") or ""
    if not isinstance(system, str) or len(system) > MAX_SYSTEM_CHARS:
        raise SessionError(f"The system prompt must be text of at most {MAX_SYSTEM_CHARS} chars.")
    cap = settings.RFT_INFERENCE_MAX_TOKENS * 8
    fields: dict[str, Any] = {
        "system_prompt": system,
        "temperature": _number(data, "temperature", 0.0, 2.0, 0.7),
        "top_p": _number(data, "top_p", 0.0, 1.0, 1.0),
        "max_tokens": int(
            _number(data, "max_tokens", 1, cap, min(256, settings.RFT_INFERENCE_MAX_TOKENS))
        ),
    }
    seed = data.get("seed")
    if seed in (None, ""):
        fields["seed"] = None
    else:
        try:
            fields["seed"] = int(seed)
        except (TypeError, ValueError):
            raise SessionError("The seed must be a whole number.") from None
        if not 0 <= fields["seed"] < 2**63:
            raise SessionError("The seed must be from 0 to 2^63 − 1.")
    reward = data.get("reward_version")
    if reward in (None, ""):
        fields["reward_version"] = None
    else:
        try:
            fields["reward_version"] = reward_versions(owner).get(pk=int(reward))
        except (TypeError, ValueError, RewardVersion.DoesNotExist):
            raise SessionError("That reward version does not exist or is not yours.") from None
    return fields


def owned_dataset(owner: AbstractBaseUser, dataset_id: Any) -> Dataset | None:
    if dataset_id in (None, ""):
        return None
    try:
        return owned(Dataset, owner).get(pk=int(dataset_id))
    except (TypeError, ValueError, Dataset.DoesNotExist):
        raise SessionError("That dataset does not exist or is not yours.") from None


def create_session(
    owner: AbstractBaseUser, model_ids: list[Any], data: dict[str, Any], job: Job | None = None
) -> PlaygroundSession:
    entries = check_models(owner, model_ids)
    fields = clean_settings(owner, data)
    dataset = owned_dataset(owner, data.get("dataset"))
    title = str(data.get("title", "") or "").strip()[:200]
    return PlaygroundSession.objects.create(
        owner=owner,
        title=title,
        model_ids=[entry.pk for entry in entries],
        job=job,
        dataset=dataset,
        transcript={str(entry.pk): [] for entry in entries},
        **fields,
    )


def update_settings(session: PlaygroundSession, data: dict[str, Any]) -> PlaygroundSession:
    fields = clean_settings(session.owner, data)
    if "dataset" in data:
        fields["dataset"] = owned_dataset(session.owner, data.get("dataset"))
    for name, value in fields.items():
        setattr(session, name, value)
    session.save(update_fields=[*fields, "updated_at"])
    return session


def session_models(session: PlaygroundSession) -> list[ModelEntry]:
    """The session's models in column order; removed ones are left out."""
    found = {
        entry.pk: entry
        for entry in owned(ModelEntry, session.owner)
        .filter(pk__in=session.model_ids)
        .select_related("base")
    }
    return [found[i] for i in session.model_ids if i in found]


def chat_messages(session: PlaygroundSession, model_id: int, text: str) -> list[dict[str, str]]:
    """What the model is sent: the system prompt, its chat so far, and the new user turn.

    A chat started from a validation row carries the row's own system turn (an empty one when the
    row has none): then the session's system prompt is left out, so the model sees exactly what
    validation sends it."""
    chat = session.transcript.get(str(model_id), [])
    messages = [{"role": "system", "content": session.system_prompt}]
    if not session.system_prompt.strip() or any(t.get("role") == "system" for t in chat):
        messages = []
    for turn in chat:
        if turn.get("content") is None or turn.get("role") not in ("system", "user", "assistant"):
            continue
        if turn["role"] == "system" and not str(turn["content"]):
            continue  # the marker of a row without a system prompt
        messages.append({"role": turn["role"], "content": turn["content"]})
    messages.append({"role": "user", "content": text})
    return messages


def row_prompt(row: Any, text: str) -> list[dict[str, str]]:
    """A validation row's prompt exactly as validation sends it (every turn up to the last user
    turn, jobs.datasets.formats.prompt_messages), the last user turn being `text` when the user
    edited it after loading the row."""
    messages = row.get("messages") if isinstance(row, dict) else None
    if not isinstance(messages, list) or not messages:
        raise SessionError("The loaded row has no messages: load it again.")
    if not all(isinstance(m, dict) for m in messages):
        raise SessionError("The row's messages must be objects with a role and content.")
    prompt = prompt_messages({"messages": messages})
    checked: list[dict[str, str]] = []
    for message in prompt:
        if (
            not isinstance(message, dict)
            or message.get("role") not in ("system", "user", "assistant")
            or not isinstance(message.get("content"), str)
        ):
            raise SessionError(
                "The row's messages must be system, user or assistant turns with text content."
            )
        checked.append({"role": message["role"], "content": message["content"]})
    if checked[-1]["role"] != "user":
        raise SessionError("The row's prompt has no user turn to answer.")
    checked[-1]["content"] = text
    return checked


def start_fresh(session: PlaygroundSession, prompt: list[dict[str, str]] | None = None) -> None:
    """Empty every model's chat (Clear chat, or a loaded row's new conversation). With a row's
    prompt, each chat starts with its turns before the last user turn, always with a system turn
    (empty when the row has none) so the session's system prompt does not join the chat."""
    prefix: list[dict[str, Any]] = []
    if prompt is not None:
        earlier = prompt[:-1]
        if not earlier or earlier[0]["role"] != "system":
            earlier = [{"role": "system", "content": ""}, *earlier]
        prefix = [{**turn, "from_row": True} for turn in earlier]
    with transaction.atomic():
        locked = PlaygroundSession.objects.select_for_update().get(pk=session.pk)
        locked.transcript = {str(i): [dict(t) for t in prefix] for i in locked.model_ids}
        locked.save(update_fields=["transcript", "updated_at"])
    session.transcript = locked.transcript


def sampling_body(session: PlaygroundSession) -> dict[str, Any]:
    body: dict[str, Any] = {
        "temperature": session.temperature,
        "top_p": session.top_p,
        "max_tokens": session.max_tokens,
    }
    if session.seed is not None:
        body["seed"] = session.seed
    return body


def log_metadata(session: PlaygroundSession, entry: ModelEntry) -> dict[str, str]:
    return {"source": SOURCE, "session": str(session.pk), "model_id": str(entry.pk)}


def reward_row(messages: list[dict[str, str]], row: dict[str, Any] | None) -> dict[str, Any]:
    """The row the reward scores with: the chat up to the user turn, the loaded row's reference
    answer and its other fields (its own messages are replaced by the chat's)."""
    extra = {k: v for k, v in (row or {}).items() if k != "messages"}
    return {**extra, "messages": messages}


def score_answer(version: RewardVersion, text: str, row: dict[str, Any]) -> RewardResult:
    """Score one answer (custom code runs in the sandbox: call from a thread, never the loop)."""
    try:
        return score_batch(version, [Sample("answer", text, row)])[0]
    except Exception as error:  # noqa: BLE001 - a reward that cannot run is shown, not raised
        return RewardResult("answer", 0.0, error=f"{type(error).__name__}: {error}")


def append_turn(session_id: int, text: str, answers: dict[int, dict[str, Any]]) -> None:
    """Add the user turn and each model's answer to its chat (models that failed get neither,
    so every chat keeps alternating user / assistant)."""
    with transaction.atomic():
        session = PlaygroundSession.objects.select_for_update().get(pk=session_id)
        transcript = dict(session.transcript or {})
        ids = [answer.get("log_id") for answer in answers.values()]
        # Thumbs given while another model was still answering are already on the logs.
        rated = dict(InvocationLog.objects.filter(pk__in=ids).values_list("pk", "feedback"))
        for model_id, answer in answers.items():
            answer = {**answer, "feedback": rated.get(answer.get("log_id"), "")}
            chat = list(transcript.get(str(model_id), []))
            chat += [{"role": "user", "content": text}, {"role": "assistant", **answer}]
            transcript[str(model_id)] = chat
        session.transcript = transcript
        if not session.title:
            session.title = " ".join(text.split())[:TITLE_LENGTH]
        session.save(update_fields=["transcript", "title", "updated_at"])


def set_feedback(
    owner: AbstractBaseUser, session: PlaygroundSession, log_id: Any, value: Any
) -> str:
    """Thumbs up/down ("" clears) on one of the session's answers: on its log and transcript."""
    if value not in InvocationLog.Feedback.values:
        raise SessionError("Feedback is 'up', 'down' or '' (none).")
    try:
        log_id = int(log_id)
    except (TypeError, ValueError):
        raise SessionError("Feedback needs the answer's log id.") from None
    logs = owned(InvocationLog, owner).filter(pk=log_id, request_metadata__session=str(session.pk))
    if not logs.update(feedback=value):
        raise SessionError(f"Answer {log_id} is not part of this session.")
    _update_answer(session.pk, log_id, {"feedback": value})
    return value


def _update_answer(session_id: int, log_id: int, changes: dict[str, Any]) -> None:
    with transaction.atomic():
        session = PlaygroundSession.objects.select_for_update().get(pk=session_id)
        for chat in session.transcript.values():
            for turn in chat:
                if turn.get("log_id") == log_id:
                    turn.update(changes)
        session.save(update_fields=["transcript", "updated_at"])


def columns(session: PlaygroundSession) -> list[dict[str, Any]]:
    """Each model with its chat, for the page (a removed model shows as removed)."""
    entries = {entry.pk: entry for entry in session_models(session)}
    return [
        {
            "id": model_id,
            "entry": entries.get(model_id),
            "turns": session.transcript.get(str(model_id), []),
        }
        for model_id in session.model_ids
    ]


def validation_row(owner: AbstractBaseUser, dataset_id: Any, index: Any) -> dict[str, Any]:
    """One row of an owned dataset, with the prompt to type and the reference answer to show."""
    dataset = owned_dataset(owner, dataset_id)
    if dataset is None:
        raise SessionError("Choose a dataset.")
    try:
        index = int(index)
    except (TypeError, ValueError):
        raise SessionError("The row number must be a whole number.") from None
    if not 0 <= index < max(dataset.row_count, 1):
        raise SessionError(f"{dataset.name} has rows 0 to {dataset.row_count - 1}.")
    try:
        rows = page_of_rows(dataset, index, 1)
    except (OSError, ValueError) as error:
        raise SessionError(f"Cannot read {dataset.name}: {error}") from None
    if not rows:
        raise SessionError(f"{dataset.name} has no row {index}.")
    row = json_safe(rows[0])  # a NaN stored before imports refused it: null, valid JSON
    messages = row.get("messages") if isinstance(row.get("messages"), list) else []
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    systems = [m for m in messages if isinstance(m, dict) and m.get("role") == "system"]
    return {
        "index": index,
        "rows": dataset.row_count,
        "dataset": dataset.name,
        "prompt": str(users[-1].get("content", "")) if users else "",
        "system_prompt": str(systems[0].get("content", "")) if systems else None,
        "reference_answer": row.get("reference_answer"),
        # the prompt as validation sends it: the conversation a loaded row starts
        "messages": prompt_messages({"messages": [m for m in messages if isinstance(m, dict)]}),
        "row": row,
    }
