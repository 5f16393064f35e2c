"""Load a registered model for inference and sample chat answers in batches.

One loader for every caller (evaluation, jobs, deployments): a base model from its directory, or a
tuned model as its base plus the PEFT adapter on top. Never `trust_remote_code`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.models import ModelEntry

# torch and transformers are imported where they are used: this module is reachable from the
# URLconf, and every process that loads the URLconf (Celery's main processes run Django's system
# checks) would otherwise carry them (~160 MiB) without ever generating a token.
if TYPE_CHECKING:
    from transformers import PreTrainedModel
    from transformers.tokenization_utils_base import PreTrainedTokenizerBase


@dataclass(frozen=True)
class SamplingSettings:
    """How answers are sampled; the defaults are the job defaults (see the training engine)."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 64
    seed: int = 0


class ModelLoadError(RuntimeError):
    """The model's files cannot be loaded; the message says which and why."""


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"  # generation continues from the right edge
    return tokenizer


def tokenizer_dir(entry: ModelEntry) -> str:
    """An adapter without its own tokenizer files uses its base model's."""
    if entry.is_adapter and not Path(entry.path, "tokenizer_config.json").exists():
        assert entry.base is not None, "a tuned adapter always points at its base"
        return entry.base.path
    return entry.path


def load_for_inference(entry: ModelEntry) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    if entry.status != ModelEntry.Status.READY:
        raise ModelLoadError(f"Model {entry.name!r} is {entry.get_status_display().lower()}.")
    import torch
    from transformers import AutoModelForCausalLM

    try:
        if entry.is_adapter:
            return _load_adapter(entry)
        model = AutoModelForCausalLM.from_pretrained(entry.path, dtype=torch.float32)
        tokenizer = load_tokenizer(entry.path)
    except OSError as error:
        raise ModelLoadError(
            f"Cannot load model {entry.name!r} from {entry.path}: {error}"
        ) from None
    model.eval()
    return model, tokenizer


def _load_adapter(entry: ModelEntry) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    from peft import PeftModel

    assert entry.base is not None, "a tuned adapter always points at its base"
    base, _ = load_for_inference(entry.base)
    model = PeftModel.from_pretrained(base, entry.path)
    model.eval()
    return model, load_tokenizer(tokenizer_dir(entry))


def chat_prompts(
    tokenizer: PreTrainedTokenizerBase, conversations: list[list[dict[str, Any]]]
) -> list[str]:
    return [
        tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        for messages in conversations
    ]


def generate_answers(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    conversations: list[list[dict[str, Any]]],
    sampling: SamplingSettings,
    batch_size: int = 32,
) -> list[str]:
    """One sampled answer per conversation, seeded so that a rerun gives the same answers."""
    import torch

    torch.manual_seed(sampling.seed)
    prompts = chat_prompts(tokenizer, conversations)
    answers: list[str] = []
    for start in range(0, len(prompts), batch_size):
        batch = tokenizer(
            prompts[start : start + batch_size],
            return_tensors="pt",
            padding=True,
            add_special_tokens=False,
        ).to(model.device)
        with torch.inference_mode():
            output = model.generate(
                **batch,
                do_sample=sampling.temperature > 0,
                temperature=sampling.temperature if sampling.temperature > 0 else None,
                top_p=sampling.top_p,
                max_new_tokens=sampling.max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
        completions = output[:, batch["input_ids"].shape[1] :]
        answers += tokenizer.batch_decode(completions, skip_special_tokens=True)
    return [answer.strip() for answer in answers]
