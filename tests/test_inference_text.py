"""What the streamer passes on is text every database can store."""

from __future__ import annotations

import torch

from playground.inference.generate import _ChoiceStreamer


class ByteTokenizer:
    """Each id is one character: id 0 decodes to NUL, as a byte-level model's output can."""

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return "".join(chr(i) for i in ids)


def test_a_decoded_nul_is_passed_on_as_the_replacement_character_and_the_rest_is_kept() -> None:
    sent: list[str] = []
    streamer = _ChoiceStreamer(
        ByteTokenizer(), lambda text, _tokens, _logprobs: sent.append(text), eos=set()
    )
    for ids in ([104], [104, 105], [0], [33]):  # the prompt, then "hi", NUL, "!"
        streamer.put(torch.tensor(ids))
    streamer.end()
    assert "".join(sent) == "hi\ufffd!"
    assert all("\x00" not in piece for piece in sent)


def test_ordinary_text_passes_unchanged() -> None:  # the control
    sent: list[str] = []
    streamer = _ChoiceStreamer(
        ByteTokenizer(), lambda text, _tokens, _logprobs: sent.append(text), eos=set()
    )
    for ids in ([104], [79, 75]):
        streamer.put(torch.tensor(ids))
    streamer.end()
    assert "".join(sent) == "OK"
