"""Supervised warm-up of a tiny Llama-architecture model on the synthetic demo tasks.

A plain PyTorch loop (loss on the answer tokens only), deterministic for a given seed on a given
machine: the data order, the initial weights and dropout all come from the seed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

IGNORE = -100


@dataclass(frozen=True)
class WarmupConfig:
    # Sized so the whole bootstrap fits in ~4 minutes on 2 CPU cores (measured: see README).
    hidden_size: int = 96
    layers: int = 3
    heads: int = 4
    intermediate_size: int = 288
    context_length: int = 512
    steps: int = 2400
    batch_size: int = 32
    learning_rate: float = 6e-3
    warmup_steps: int = 60


def new_model(tokenizer: PreTrainedTokenizerFast, config: WarmupConfig) -> LlamaForCausalLM:
    llama = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.layers,
        num_attention_heads=config.heads,
        num_key_value_heads=config.heads,
        max_position_embeddings=config.context_length,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(llama)


def encode_pair(
    tokenizer: PreTrainedTokenizerFast, messages: list[dict[str, str]], answer: str
) -> tuple[list[int], list[int]]:
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(answer + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
    return prompt_ids + answer_ids, [IGNORE] * len(prompt_ids) + answer_ids


def _batch(
    encoded: list[tuple[list[int], list[int]]], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    width = max(len(ids) for ids, _ in encoded)
    input_ids = torch.full((len(encoded), width), pad_id)
    labels = torch.full((len(encoded), width), IGNORE)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for row, (ids, target) in enumerate(encoded):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(target)] = torch.tensor(target)
        mask[row, : len(ids)] = 1
    return input_ids, labels, mask


def _learning_rate(step: int, config: WarmupConfig) -> float:
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(
    model: LlamaForCausalLM,
    tokenizer: PreTrainedTokenizerFast,
    encoded: list[tuple[list[int], list[int]]],
    config: WarmupConfig,
    seed: int,
    on_step: Callable[[int, float], None] = lambda step, loss: None,
) -> None:
    rng = random.Random(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=0.01)
    model.train()
    order: list[int] = []
    for step in range(config.steps):
        if len(order) < config.batch_size:
            order = list(range(len(encoded)))
            rng.shuffle(order)
        batch = [encoded[order.pop()] for _ in range(config.batch_size)]
        input_ids, labels, mask = _batch(batch, tokenizer.pad_token_id)
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(step, config)
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        on_step(step, loss.item())
    model.eval()
