"""Tiny random Hugging Face models built locally: no download, any architecture."""

from __future__ import annotations

from pathlib import Path

from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from jobs.starter.tasks import make_warmup_pairs
from jobs.starter.tokenizer import build_tokenizer


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    pairs = make_warmup_pairs("arithmetic", 200, seed=0)
    corpus = [m["content"] for messages, _ in pairs for m in messages] + [a for _, a in pairs]
    return build_tokenizer(corpus, vocab_size=300)


def save_tiny_model(directory: Path, architecture: str = "llama") -> Path:
    tokenizer = tiny_tokenizer()
    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    if architecture == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**common))
    else:
        model = LlamaForCausalLM(LlamaConfig(**common))
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
