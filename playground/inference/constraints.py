"""Constrained decoding with llguidance (the grammar engine vLLM uses): at every step the logits of
tokens the grammar does not allow next are set to -inf, so the answer always matches it.

Two halves. Grammars (llguidance only, no torch) are built and checked when a request is read, so
a bad schema is a 400 before any model is touched. The logits processor (torch, imported on first
use like the rest of the generating side) runs in a pool thread, one fresh matcher per choice:
it masks the logits, and on the next step consumes the token that was sampled. The end of turn
is allowed only where the grammar accepts (llguidance's mask includes EOS exactly then); a
`max_tokens` cut can still leave the answer unfinished, as with OpenAI (finish_reason "length").
"""

from __future__ import annotations

import json
import threading
import weakref
from typing import TYPE_CHECKING, Any

import llguidance

if TYPE_CHECKING:
    import torch

# One JSON layout, json.dumps' own: no free whitespace (a small model could spend its whole
# budget on newlines), ", " and ": " between items and keys, which models have seen most.
JSON_LAYOUT: dict[str, Any] = {
    "whitespace_flexible": False,
    "item_separator": ", ",
    "key_separator": ": ",
}


class GrammarError(ValueError):
    """A grammar (or the JSON schema it came from) that llguidance refuses; the message says why."""


def json_schema_grammar(schema: dict[str, Any]) -> str:
    """The llguidance grammar for JSON that validates against `schema`. Raises GrammarError with
    llguidance's reason for a schema it cannot enforce (unknown types, unsupported keywords)."""
    _Depth(schema).check()  # before llguidance, which a deep enough schema crashes
    try:
        grammar = llguidance.LLMatcher.grammar_from_json_schema(schema, defaults=JSON_LAYOUT)
    except ValueError as error:
        raise GrammarError(str(error)) from None
    if _RefLoops(schema).empty(schema):
        raise GrammarError("it admits no JSON value: a '$ref' leads back to itself")
    return checked(grammar)


# llguidance compiles a schema recursively: a chain of $refs (`a` refers to `b`, to `c`...) of a
# thousand links, within the size limit, overflows its stack and kills the process (a segfault,
# no exception). The body's nesting is capped at 100 levels already; this caps the depth counting
# each $ref followed as a level too (a $ref back to one being followed is recursion, which
# llguidance expands lazily, so it does not count).
MAX_SCHEMA_DEPTH = 256


class _Depth:
    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.below: dict[str, int] = {}  # a $ref target's depth
        self.following: set[str] = set()

    def check(self) -> None:
        self.depth(self.root, 0)

    def depth(self, node: Any, level: int) -> int:
        """The depth below `node` (at `level`), or GrammarError past MAX_SCHEMA_DEPTH."""
        if level > MAX_SCHEMA_DEPTH:
            raise self.too_deep()
        values = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        best = 0
        target = node.get("$ref") if isinstance(node, dict) else None
        if isinstance(target, str) and target.startswith("#"):
            best = 1 + self.ref_depth(target, level + 1)
        for value in values:
            if isinstance(value, dict | list):
                best = max(best, 1 + self.depth(value, level + 1))
        if level + best > MAX_SCHEMA_DEPTH:  # a $ref target's depth, known from before
            raise self.too_deep()
        return best

    @staticmethod
    def too_deep() -> GrammarError:
        return GrammarError(
            f"it nests too deeply: more than {MAX_SCHEMA_DEPTH} levels, counting each '$ref' "
            "followed as one"
        )

    def ref_depth(self, target: str, level: int) -> int:
        if target in self.following:
            return 0
        if target not in self.below:
            self.following.add(target)
            self.below[target] = self.depth(_resolve(self.root, target), level)
            self.following.discard(target)
        return self.below[target]


# A `$ref` that leads back to itself before any JSON is written (`{"$ref": "#"}`, two $defs that
# name each other, a required property that is such a loop) admits no value. llguidance then
# allows only the end of turn, and the answer would be an empty or cut-off "success". Checked
# here in pure Python with memory and a bound on the work (compiling the schema would cost the
# web process up to a second; a schema past the bound is left to llguidance).
MAX_VISITS = 20_000
MAX_DEPTH = 200  # nested schemas and $refs followed: well inside Python's recursion limit


class _RefLoops:
    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.visits = 0
        self.known: dict[tuple[int, frozenset[str]], bool] = {}
        self.depth = 0

    def empty(self, node: Any, path: frozenset[str] = frozenset()) -> bool:
        """Whether `node` admits no value because of a $ref loop (`path`: the $refs followed
        since the last JSON written)."""
        self.visits += 1
        if not isinstance(node, dict) or self.visits > MAX_VISITS or self.depth > MAX_DEPTH:
            return False
        key = (id(node), path)
        if key not in self.known:
            self.known[key] = False  # while it is being worked out
            self.depth += 1
            try:
                self.known[key] = self._empty(node, path)
            finally:
                self.depth -= 1
        return self.known[key]

    def _empty(self, node: dict[str, Any], path: frozenset[str]) -> bool:
        target = node.get("$ref")
        if isinstance(target, str) and target.startswith("#"):  # a pointer into this schema
            resolved = _resolve(self.root, target)
            if target in path or self.empty(resolved, path | {target}):
                return True
        if any(self.empty(part, path) for part in _parts(node, "allOf")):
            return True
        for key in ("anyOf", "oneOf"):
            parts = _parts(node, key)
            if parts and all(self.empty(part, path) for part in parts):
                return True
        properties, required = node.get("properties"), node.get("required")
        if isinstance(properties, dict) and isinstance(required, list):
            inner = [properties.get(name) for name in required if isinstance(name, str)]
            return any(self.empty(child) for child in inner)  # JSON written: a fresh path
        return False


def _parts(node: dict[str, Any], key: str) -> list[Any]:
    parts = node.get(key)
    return parts if isinstance(parts, list) else []


def _resolve(root: dict[str, Any], target: str) -> Any:
    """The JSON pointer `target` ("#/$defs/a") in `root`, or None."""
    node: Any = root
    for step in target[1:].split("/")[1:] if target != "#" else []:
        step = step.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict):
            node = node.get(step)
        elif isinstance(node, list) and step.isdigit() and int(step) < len(node):
            node = node[int(step)]
        else:
            return None
    return node


def lark_grammar(lark: str) -> str:
    """A Lark grammar (with `%json {schema}` rules for embedded JSON), checked."""
    return checked(llguidance.LLMatcher.grammar_from_lark(lark))


def json_rule(schema: dict[str, Any]) -> str:
    """A Lark rule body for JSON validating against `schema`, in the same layout as above."""
    return "%json " + json.dumps({**schema, "x-guidance": JSON_LAYOUT})


def checked(grammar: str) -> str:
    error = llguidance.LLMatcher.validate_grammar(grammar)
    if error:
        raise GrammarError(error)
    return grammar


# --- the generating side ------------------------------------------------------------------------

# llguidance's view of a tokenizer takes about a second to build: one per tokenizer (and EOS set),
# kept for as long as the tokenizer is (the pool drops evicted models' tokenizers).
_tokenizers: weakref.WeakKeyDictionary[Any, dict[tuple[int, ...], llguidance.LLTokenizer]] = (
    weakref.WeakKeyDictionary()
)
_tokenizers_lock = threading.Lock()


def ll_tokenizer(tokenizer: Any, eos: set[int]) -> llguidance.LLTokenizer:
    import llguidance.hf

    key = tuple(sorted(eos))
    with _tokenizers_lock:
        known = _tokenizers.setdefault(tokenizer, {})
        if key not in known:
            known[key] = llguidance.hf.from_tokenizer(tokenizer, eos_token=list(key) or None)
        return known[key]


class GrammarLogitsProcessor:
    """A transformers logits processor (any callable `(input_ids, scores) -> scores` is one) for a
    batch of one sequence. Put it after processors that add to logits (penalties, bias) and
    before temperature and top-p, which `generate` does for every processor passed to it: top-p
    over the allowed tokens only, so sampling never runs out of tokens to pick."""

    def __init__(self, tokenizer: Any, grammar: str, eos: set[int]) -> None:
        self.lltok = ll_tokenizer(tokenizer, eos)
        self.matcher = llguidance.LLMatcher(self.lltok, grammar, log_level=0)
        if self.matcher.is_error():
            raise GrammarError(self.matcher.get_error())
        self.started = False

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.started:  # the token sampled after the previous call
            token = int(input_ids[0, -1])
            if not self.matcher.consume_token(token):
                raise GrammarError(f"the grammar refused token {token}: {self.matcher.get_error()}")
        self.started = True
        allowed = self._allowed(scores.shape[-1], scores.device)
        return scores.masked_fill(~allowed, float("-inf"))

    def _allowed(self, width: int, device: torch.device) -> torch.Tensor:
        import torch

        if self.matcher.is_error():
            raise GrammarError(self.matcher.get_error())
        packed = torch.frombuffer(bytearray(self.matcher.compute_bitmask()), dtype=torch.uint8)
        bits = (packed.unsqueeze(1) >> torch.arange(8, dtype=torch.uint8)) & 1  # little-endian
        flags = bits.reshape(-1).bool()
        allowed = torch.zeros(width, dtype=torch.bool)
        size = min(width, self.lltok.vocab_size, flags.numel())
        allowed[:size] = flags[:size]  # ids past the tokenizer's (padded embeddings): never
        return allowed.to(device).unsqueeze(0)


def grammar_processors(tokenizer: Any, grammar: str | None, eos: set[int]) -> list[Any]:
    """The processors for one choice: a fresh matcher each, or none without a grammar."""
    return [GrammarLogitsProcessor(tokenizer, grammar, eos)] if grammar else []
