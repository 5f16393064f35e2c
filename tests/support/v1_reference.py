"""What the /v1 tests compare with: the starter served by a real console, and the same model run
by transformers alone in the test process (its greedy tokens, its own log-probabilities)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
import torch
from django.contrib.auth.models import User
from transformers import AutoModelForCausalLM, AutoTokenizer

from jobs.models import ModelEntry
from jobs.registry.services import register_model
from playground.deployments import deploy
from playground.models import Deployment
from rftconsole.services import create_api_key
from tests.support.stack import serving_v1

MODEL = "starter-chat"


@pytest.fixture(scope="module")
def server(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # A generous rate limit: these tests send many small requests with one key.
    with serving_v1(tmp_path_factory.mktemp("daphne"), RFT_RATE_LIMIT_PER_MINUTE="1000") as url:
        yield url


@pytest.fixture
def starter(alice: User, starter_artifacts: Path) -> ModelEntry:
    return register_model(alice, str(starter_artifacts / "models" / "starter"), "starter")


@pytest.fixture
def deployment(alice: User, starter: ModelEntry) -> Deployment:
    deployment = deploy(alice, starter, MODEL, background=False)
    assert deployment.status == Deployment.Status.ACTIVE, deployment.status_reason
    return deployment


@pytest.fixture
def alice_openai(server: str, alice: User, deployment: Deployment) -> openai.OpenAI:
    _, raw_key = create_api_key(alice, "test")
    return openai.OpenAI(base_url=server, api_key=raw_key, max_retries=0, timeout=120)


@dataclass
class Reference:
    """The starter in this process, in float32 like the console's CPU pool."""

    tokenizer: Any
    model: Any

    def ids(self, text: str) -> list[int]:
        """A raw prompt's ids, as /v1/completions tokenizes a string prompt."""
        return list(self.tokenizer(text)["input_ids"])

    @torch.inference_mode()
    def greedy(self, ids: list[int], max_new_tokens: int) -> list[int]:
        """The greedy continuation's ids (the end-of-turn token included, when it comes)."""
        input_ids = torch.tensor([ids])
        output = self.model.generate(
            input_ids=input_ids, attention_mask=torch.ones_like(input_ids), do_sample=False,
            max_new_tokens=max_new_tokens, temperature=None, top_p=None, top_k=None,
            pad_token_id=self.tokenizer.pad_token_id,
        )  # fmt: skip
        return output[0, len(ids) :].tolist()

    @torch.inference_mode()
    def log_softmax(self, ids: list[int]) -> torch.Tensor:
        """Row i: the model's log-probabilities for the token after ids[: i + 1]."""
        logits = self.model(input_ids=torch.tensor([ids])).logits[0]
        return torch.log_softmax(logits.float(), dim=-1)

    def logprobs(self, ids: list[int]) -> list[float]:
        """Each token's log-probability after those before it (from the second token on)."""
        table = self.log_softmax(ids)
        return [float(table[i - 1, token]) for i, token in enumerate(ids) if i > 0]

    def text(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)


@pytest.fixture(scope="module")
def reference(starter_artifacts: Path) -> Reference:
    path = starter_artifacts / "models" / "starter"
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    return Reference(AutoTokenizer.from_pretrained(path), model)
