"""The two kinds of judge model: an OpenAI-compatible endpoint, or a registered local model.

Both answer `judge_all(prompts)` with one `JudgeReply` or `JudgeCallError` per prompt, in order,
so `rewards.judge.scoring` handles their replies the same way. Separate from that module because
this one pulls in `openai` (and, for local judges, torch on first use), which only a judge that
runs needs; it imports nothing from `rewards.judge.scoring`, so the judge may import it lazily.
"""

from __future__ import annotations

import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol
from urllib.parse import urlparse

import openai
from django.contrib.auth.models import AbstractBaseUser

from jobs.models import ModelEntry
from jobs.registry.loading import (
    ModelLoadError,
    SamplingSettings,
    chat_prompts,
    generate_answers,
    load_for_inference,
)
from rewards.types import JudgeCallError, JudgeReply, RewardConfigError
from rftconsole.ownership import owned
from rftconsole.security.crypto import decrypt_text
from rftconsole.security.outbound import (
    guarded_client,
    judge_allow_list,
    redirect_target,
    refusal_in,
)

MAX_BACKOFF_SECONDS = 8.0
LOCAL_MODELS_KEPT = 2  # judge models held in memory; a trainer uses one, a bench may compare two


# One user turn of instructions (our judge rewards), or whole chat messages (OpenAI's model
# graders give a conversation with system/user roles).
Prompt = str | list[dict[str, str]]


class Judge(Protocol):
    def judge_all(self, prompts: Sequence[Prompt]) -> list[JudgeReply | JudgeCallError]: ...


def as_messages(prompt: Prompt) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt


def make_judge(config: dict[str, Any], owner: AbstractBaseUser) -> Judge:
    """The judge a validated config describes; `RewardConfigError` when it cannot work at all."""
    if config["judge_type"] == "local":
        return LocalJudge(config, owner)
    return EndpointJudge(config)


def backoff_delay(base: float, retry: int) -> float:
    """Exponential backoff with a little jitter, so parallel rows do not retry in lockstep."""
    delay = min(base * 2**retry, MAX_BACKOFF_SECONDS)
    return delay + random.uniform(0, delay * 0.1)


class EndpointJudge:
    """Any OpenAI-compatible chat endpoint: our deployments, vLLM, Ollama, OpenAI, Bedrock."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        host = urlparse(config["base_url"]).hostname or ""
        if not judge_allow_list().name_allowed(host):  # again: the setting may have changed
            raise RewardConfigError(f"The judge may not call {host} (RFT_JUDGE_ALLOWED_HOSTS).")
        # The name check above is not enough: this client checks every connection's resolved
        # address and follows no redirects (the name could point anywhere by the time we call).
        http_client = guarded_client(judge_allow_list(), timeout=config["timeout_seconds"])
        encrypted = config.get("api_key_encrypted")
        try:
            api_key = decrypt_text(encrypted) if encrypted else ""
        except ValueError as error:
            raise RewardConfigError(f"The judge's API key: {error}") from None
        self.client = openai.OpenAI(
            base_url=config["base_url"],
            api_key=api_key or "not-needed",  # local servers take any key; the client wants one
            max_retries=0,  # we retry ourselves, and count the attempts
            timeout=config["timeout_seconds"],
            http_client=http_client,
        )

    def judge_all(self, prompts: Sequence[Prompt]) -> list[JudgeReply | JudgeCallError]:
        """Ask about every prompt with at most `concurrency` requests in flight."""
        with self.client, ThreadPoolExecutor(self.config["concurrency"]) as pool:
            return list(pool.map(self._ask_safely, prompts))

    def _ask_safely(self, prompt: Prompt) -> JudgeReply | JudgeCallError:
        try:
            return self.ask(prompt)
        except JudgeCallError as error:
            return error
        except Exception as error:  # noqa: BLE001 - one row's surprise must not end the batch
            return JudgeCallError(f"asking the judge failed: {type(error).__name__}: {error}", 1)

    def ask(self, prompt: Prompt) -> JudgeReply:
        """One reply, retrying what a retry can fix: no connection, timeouts, 429 and 5xx."""
        tries = self.config["max_retries"] + 1
        reason = ""
        for attempt in range(1, tries + 1):
            started = time.monotonic()
            try:
                response = self._create(prompt)
            except openai.APIError as error:
                reason = self._retryable_reason(error, attempt)
            else:
                return _endpoint_reply(response, attempt, started)
            if attempt < tries:
                time.sleep(backoff_delay(float(self.config["backoff_seconds"]), attempt - 1))
        raise JudgeCallError(f"the judge endpoint failed {tries} time(s): {reason}", tries)

    def _create(self, prompt: Prompt) -> Any:
        # top_p and seed only when set (OpenAI graders' sampling_params): some servers refuse them.
        extra = {key: self.config[key] for key in ("top_p", "seed") if key in self.config}
        return self.client.chat.completions.create(
            model=self.config["model"],
            messages=as_messages(prompt),  # type: ignore[arg-type]
            temperature=self.config["temperature"],
            max_tokens=self.config["max_tokens"],
            **extra,
        )

    def _retryable_reason(self, error: openai.APIError, attempt: int) -> str:
        """Why this attempt failed, when a retry may help; raises `JudgeCallError` when not."""
        if isinstance(error, openai.APITimeoutError):
            return f"no reply within {self.config['timeout_seconds']} s"
        refused = refusal_in(error)
        if refused is not None:  # the allow-list's answer will not change on a retry
            raise JudgeCallError(f"the judge may not connect: {refused}", attempt)
        if isinstance(error, openai.APIConnectionError):
            return f"cannot connect to {self.config['base_url']}"
        if isinstance(error, openai.AuthenticationError):
            raise JudgeCallError("the judge endpoint refused the API key (401)", attempt)
        if isinstance(error, openai.APIStatusError):
            code = error.status_code
            detail = _short(error.message)
            target = redirect_target(error.response)
            if target is not None:  # following it would reach a host nobody checked
                raise JudgeCallError(
                    f"the judge endpoint answered a redirect to {target}; "
                    "redirects are not followed",
                    attempt,
                )
            if code == 429 or code >= 500:
                return f"HTTP {code} ({detail})"
            raise JudgeCallError(f"the judge endpoint answered HTTP {code}: {detail}", attempt)
        raise JudgeCallError(
            f"the judge endpoint's reply is not usable: {_short(str(error))}", attempt
        )


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _endpoint_reply(response: Any, attempt: int, started: float) -> JudgeReply:
    if not response.choices:
        raise JudgeCallError("the judge endpoint returned no choices", attempt)
    usage = response.usage
    return JudgeReply(
        text=response.choices[0].message.content or "",
        attempts=attempt,
        latency_ms=(time.monotonic() - started) * 1000,
        prompt_tokens=getattr(usage, "prompt_tokens", None),
        completion_tokens=getattr(usage, "completion_tokens", None),
    )


_loaded: OrderedDict[str, tuple[Any, Any]] = OrderedDict()
_load_lock = threading.Lock()
_generate_lock = threading.Lock()  # one generation at a time per process: it uses every core


def _load_cached(entry: Any, load: Callable[[Any], tuple[Any, Any]]) -> tuple[Any, Any]:
    """Load once per path: the trainer scores a batch every step, loading is the slow part."""
    with _load_lock:
        if entry.path in _loaded:
            _loaded.move_to_end(entry.path)
            return _loaded[entry.path]
        _loaded[entry.path] = load(entry)
        while len(_loaded) > LOCAL_MODELS_KEPT:
            _loaded.popitem(last=False)
        return _loaded[entry.path]


class LocalJudge:
    """A model from the owner's registry, run in this process (greedy unless told otherwise)."""

    def __init__(self, config: dict[str, Any], owner: AbstractBaseUser) -> None:
        self.config = config
        name = config["local_model"]
        entry = owned(ModelEntry, owner).filter(name=name).first()
        if entry is None:
            raise RewardConfigError(f"The judge model {name!r} is not one of your models.")
        try:
            self.model, self.tokenizer = _load_cached(entry, load_for_inference)
        except ModelLoadError as error:
            raise RewardConfigError(f"The judge model cannot be used: {error}") from None

    def judge_all(self, prompts: Sequence[Prompt]) -> list[JudgeReply | JudgeCallError]:
        """Generate every reply in batches; a generation failure is every row's error."""
        conversations = [as_messages(prompt) for prompt in prompts]
        sampling = SamplingSettings(
            temperature=float(self.config["temperature"]),
            max_new_tokens=self.config["max_tokens"],
        )
        started = time.monotonic()
        try:
            with _generate_lock:
                answers = generate_answers(self.model, self.tokenizer, conversations, sampling)
        except (RuntimeError, ValueError, IndexError) as error:
            failure = JudgeCallError(f"the local judge model failed: {_short(str(error))}", 1)
            return [failure] * len(prompts)
        per_row_ms = (time.monotonic() - started) * 1000 / max(len(prompts), 1)
        prompt_ids = self.tokenizer(
            chat_prompts(self.tokenizer, conversations), add_special_tokens=False
        )["input_ids"]
        answer_ids = self.tokenizer(answers, add_special_tokens=False)["input_ids"]
        most = self.config["max_tokens"]  # re-encoding broken UTF-8 can count more than made
        return [
            JudgeReply(answer, 1, per_row_ms, len(prompt_tokens), min(len(answer_tokens), most))
            for answer, prompt_tokens, answer_tokens in zip(
                answers, prompt_ids, answer_ids, strict=True
            )
        ]
