"""Token healing (sdls_model/engine/healing.py): a prefix ending in spaces after code is decoded as
if the spaces were not typed, and the text inserted after them does not repeat them."""

from __future__ import annotations

import pytest
import torch
from test_engine import CORPUS, EchoModel

from sdls_model.config import ModelConfig
from sdls_model.engine import DecodeSettings, Engine, InfillJob
from sdls_model.engine.healing import healed_tail, without_tail
from sdls_model.tokenizer import train_tokenizer
from sdls_model.transformer import Transformer


@pytest.mark.parametrize(
    "prefix,tail",
    [
        ("total += ", " "),
        ("x =\t ", "\t "),
        ("def f():\n    ", ""),  # indentation alone is a line start: kept
        ("a = 1\n", ""),
        ("", ""),
        ("   ", ""),
        ("return", ""),
    ],
)
def test_healed_tail(prefix, tail):
    assert healed_tail(prefix) == tail


def test_without_tail_drops_only_a_repeated_tail():
    assert without_tail(" shape.area()", " ") == "shape.area()"
    assert without_tail("(x)", " ") == "(x)"
    assert without_tail(" x", "") == " x"


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(CORPUS, vocab_size=300)


def test_a_trailing_space_leaves_the_decoding_as_without_it(tokenizer):
    torch.manual_seed(0)
    model = Transformer(ModelConfig.from_name("test-tiny")).init_weights(seed=1, std=0.3)
    engine = Engine(model, tokenizer, max_context=256, max_new_tokens=24)
    settings = DecodeSettings(rule="fixed", tokens_per_step=1)
    typed, bare = (engine.run([InfillJob(p, "\n", 16, settings)])[0] for p in ("x = [1, 2] + ", "x = [1, 2] +"))
    assert typed.tokens == bare.tokens  # the same row: the space is not in the context
    assert typed.text == without_tail(tokenizer.decode(typed.tokens), " ")
    assert bare.text == tokenizer.decode(bare.tokens)


def test_the_inserted_text_does_not_repeat_the_users_space(tokenizer):
    cfg = ModelConfig.from_name("test-tiny")
    spaced = [
        i
        for i in range(tokenizer.vocab_size)
        if tokenizer.decode([i]).startswith(" ") and tokenizer.decode([i]).strip()
    ]
    word = spaced[0]  # a token that carries its leading space, as byte-level BPE makes them
    engine = Engine(EchoModel(cfg, {cfg.mask_id: word}), tokenizer, max_context=64, max_new_tokens=16)
    streamed: list[str] = []
    job = InfillJob("total += ", "", 8, DecodeSettings(threshold=0.9), on_block=streamed.append)
    result = engine.run([job])[0]
    assert tokenizer.decode(result.tokens).startswith(" ")
    assert result.text == tokenizer.decode(result.tokens)[1:] and not result.text.startswith(" ")
    assert streamed and all(not text.startswith(" ") for text in streamed)
