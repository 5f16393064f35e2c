"""The inference pool: the models this process keeps in memory to serve deployments.

Where inference runs: in the web (Daphne) process that answers `/v1/`, loaded on deploy (when the
deploy click lands on that process) or on the first request. Training runs in Celery `gpu`
workers, so the pool never shares a process with a training job.

GPU policy (inference must not starve training), chosen with `RFT_INFERENCE_DEVICE`:
- `cpu` (the default): the web process never touches a GPU, whatever the host has. Safe on a
  training host; slow for large models.
- `cuda:N` on a GPU that no `gpu` worker uses (e.g. the console host's own GPU): full speed.
- `cuda:N` shared with a training worker: the web process caps itself with
  `torch.cuda.set_per_process_memory_fraction` at `RFT_INFERENCE_GPU_MEMORY_PERCENT` (default 30)
  of that GPU, so an over-large deployment fails with out-of-memory in the web process instead
  of taking memory the training job needs.
On every device, `RFT_INFERENCE_THREADS` (default 1) generations run at a time per process;
others wait their turn, and `RFT_INFERENCE_TORCH_THREADS` (0: torch's default) bounds the CPU
threads each generation uses, so chat on a laptop cannot take every core from a training job.

Memory: `RFT_INFERENCE_MAX_MODELS` (default 2) sets of full weights stay loaded, least recently
used evicted first. A PEFT adapter is loaded onto its base's weights (several adapters share one
base) and goes when its base is evicted.
"""

from __future__ import annotations

import gc
import threading
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings

from jobs.models import ModelEntry
from jobs.registry.loading import ModelLoadError, load_tokenizer

# torch and transformers are imported on first use (see jobs.registry.loading): the URLconf reaches
# this module, and only a process that serves a model should pay for them.
if TYPE_CHECKING:
    from transformers import PreTrainedModel
    from transformers.tokenization_utils_base import PreTrainedTokenizerBase


@dataclass(eq=False)
class LoadedWeights:
    """One set of full weights in memory, with the adapters loaded onto it."""

    key: str  # the resolved weights directory: two entries with the same files share them
    model: PreTrainedModel  # the same object for as long as it is loaded, adapters or not
    tokenizer: PreTrainedTokenizerBase
    peft: Any = None  # the PeftModel wrapping `model` once an adapter is loaded
    adapters: dict[str, str] = field(default_factory=dict)  # adapter directory → adapter name
    # An adapter saved with its own tokenizer (e.g. another chat template) uses that one.
    adapter_tokenizers: dict[str, PreTrainedTokenizerBase] = field(default_factory=dict)
    # Generation and adapter loading take turns: the active adapter is state of the shared model.
    lock: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def activated(self, adapter: str | None) -> Iterator[Any]:
        """The module to call `generate` on, with exactly `adapter` (or none) active."""
        if self.peft is None:
            yield self.model
        elif adapter is None:
            with self.peft.disable_adapter():
                yield self.peft
        else:
            self.peft.set_adapter(adapter)
            yield self.peft


# A model whose config names no context length (no `max_position_embeddings` / `n_positions`)
# is still held to one: without it, a token-id prompt limited only by the body size could make
# one request run a forward pass over hundreds of thousands of tokens.
UNKNOWN_CONTEXT = 32_768


@dataclass(frozen=True)
class Served:
    """What a deployment's requests need: the weights, which adapter, its tokenizer."""

    name: str
    weights: LoadedWeights
    adapter: str | None
    tokenizer: PreTrainedTokenizerBase
    context_length: int | None


def _check_files(entry: ModelEntry) -> Path:
    if entry.status != ModelEntry.Status.READY:
        raise ModelLoadError(f"Model {entry.name!r} is {entry.get_status_display().lower()}.")
    path = Path(entry.path) if entry.path else None
    if path is None or not path.is_dir():
        raise ModelLoadError(
            f"The files of model {entry.name!r} are gone: {entry.path or '(no path)'} "
            "does not exist. Register the model again."
        )
    return path.resolve()


class InferencePool:
    """Loads models on demand and keeps at most `max_models` sets of weights (LRU)."""

    def __init__(self, max_models: int = 2, device: str = "cpu", threads: int = 1) -> None:
        import torch

        self.max_models = max(1, max_models)
        self.device = torch.device(device)
        self.executor = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="infer")
        self._weights: OrderedDict[str, LoadedWeights] = OrderedDict()
        self._lock = threading.Lock()  # guards the dict: held only for quick lookups
        self._load_lock = threading.Lock()  # one load at a time: two at once double peak memory

    def loaded(self) -> list[str]:
        """Weights directories in memory, least recently used first."""
        with self._lock:
            return list(self._weights)

    def get(self, entry: ModelEntry) -> Served:
        """The entry ready to generate, loading its weights (and adapter) if needed."""
        if entry.is_adapter:
            path = _check_files(entry)
            if entry.base is None or entry.base.is_adapter:
                raise ModelLoadError(f"Adapter {entry.name!r} has no registered full-weight base.")
            weights = self._weights_for(entry.base)
            adapter = self._attach(weights, path)
            tokenizer = weights.adapter_tokenizers.get(str(path), weights.tokenizer)
            context = entry.base.context_length
            return Served(entry.name, weights, adapter, tokenizer, context or UNKNOWN_CONTEXT)
        weights = self._weights_for(entry)
        context = entry.context_length or UNKNOWN_CONTEXT
        return Served(entry.name, weights, None, weights.tokenizer, context)

    def unload(self, entry: ModelEntry) -> None:
        """Free an entry's memory now (its adapter only, for an adapter)."""
        if not entry.path:
            return
        key = str(Path(entry.path).resolve())
        with self._lock:
            if not entry.is_adapter:
                self._weights.pop(key, None)
            holders = [w for w in self._weights.values() if key in w.adapters]
        for weights in holders:
            with weights.lock:  # not while one of its generations runs
                name = weights.adapters.pop(key, None)
                weights.adapter_tokenizers.pop(key, None)
                if name is not None and weights.adapters:
                    weights.peft.delete_adapter(name)
                elif name is not None:  # the last one: take the adapter layers out altogether
                    weights.model = weights.peft.unload()
                    weights.peft = None
        _release_memory()

    def _weights_for(self, entry: ModelEntry) -> LoadedWeights:
        key = str(_check_files(entry))
        with self._lock:
            if key in self._weights:
                self._weights.move_to_end(key)
                return self._weights[key]
        with self._load_lock:
            with self._lock:  # loaded by another thread while this one waited
                if key in self._weights:
                    return self._weights[key]
            weights = self._load(entry, key)
            with self._lock:
                self._weights[key] = weights
                evicted = 0
                while len(self._weights) > self.max_models:
                    self._weights.popitem(last=False)
                    evicted += 1
        if evicted:
            _release_memory()
        return weights

    def _load(self, entry: ModelEntry, key: str) -> LoadedWeights:
        import torch
        from transformers import AutoModelForCausalLM

        dtype = torch.float32
        if self.device.type == "cuda":
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        try:
            model = AutoModelForCausalLM.from_pretrained(key, dtype=dtype).to(self.device)
            tokenizer = load_tokenizer(key)
        except (OSError, ValueError) as error:
            raise ModelLoadError(f"Cannot load model {entry.name!r} from {key}: {error}") from None
        model.eval()
        return LoadedWeights(key, model, tokenizer)

    def _attach(self, weights: LoadedWeights, path: Path) -> str:
        key = str(path)
        with weights.lock:
            if key in weights.adapters:
                return weights.adapters[key]
            from peft import PeftModel

            name = f"adapter{len(weights.adapters) + 1}"
            while name in weights.adapters.values():
                name += "_"
            try:
                if weights.peft is None:
                    weights.peft = PeftModel.from_pretrained(weights.model, key, adapter_name=name)
                    weights.peft.eval()
                else:
                    weights.peft.load_adapter(key, adapter_name=name)
                if (path / "tokenizer_config.json").exists():
                    weights.adapter_tokenizers[key] = load_tokenizer(path)
            except (OSError, ValueError, RuntimeError) as error:
                raise ModelLoadError(f"Cannot load the adapter in {key}: {error}") from None
            weights.adapters[key] = name
            return name


def _release_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


_pool: InferencePool | None = None
_pool_lock = threading.Lock()


def get_pool() -> InferencePool:
    """This process's pool, made on first use from the RFT_INFERENCE_* settings."""
    global _pool
    with _pool_lock:
        if _pool is None:
            import torch

            device = settings.RFT_INFERENCE_DEVICE
            if device.startswith("cuda"):
                fraction = settings.RFT_INFERENCE_GPU_MEMORY_PERCENT / 100
                torch.cuda.set_per_process_memory_fraction(fraction, torch.device(device))
            if settings.RFT_INFERENCE_TORCH_THREADS:
                torch.set_num_threads(settings.RFT_INFERENCE_TORCH_THREADS)
            _pool = InferencePool(
                settings.RFT_INFERENCE_MAX_MODELS, device, settings.RFT_INFERENCE_THREADS
            )
        return _pool
