"""Tokenizers: a thin wrapper over a `tokenizers` tokenizer.json, and byte-level BPE training.

User text is never allowed to produce special tokens: a file that happens to contain
"<|endoftext|>" is encoded as ordinary bytes, so it cannot end an infill or inject markers.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, trainers

# sdls's own special tokens, in id order (ModelConfig's defaults point at these ids).
SPECIAL_TOKENS = ["<|mask|>", "<|endoftext|>", "<|bos|>", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"]


class Tokenizer:
    def __init__(self, hf: HFTokenizer):
        self.hf = hf
        self.specials = sorted(
            {t.content for t in hf.get_added_tokens_decoder().values() if t.special}, key=len, reverse=True
        )

    @classmethod
    def from_file(cls, path: str | Path) -> Tokenizer:
        path = Path(path)
        try:
            return cls(HFTokenizer.from_file(str(path)))
        except Exception as exc:  # tokenizers raises a bare Exception on malformed JSON
            raise ValueError(f"{path}: cannot load tokenizer: {exc}") from exc

    @property
    def vocab_size(self) -> int:
        return self.hf.get_vocab_size(with_added_tokens=True)

    def token_to_id(self, token: str) -> int | None:
        return self.hf.token_to_id(token)

    def encode(self, text: str) -> list[int]:
        if not text:
            return []
        for special in self.specials:
            if special in text:
                # Encode the literal in two halves so it can never match the special token.
                half = len(special) // 2
                pieces = text.split(special)
                out: list[int] = []
                for i, piece in enumerate(pieces):
                    if i:
                        out += self.encode(special[:half]) + self.encode(special[half:])
                    out += self.encode(piece)
                return out
        return self.hf.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def decode(self, ids: Iterable[int]) -> str:
        return self.hf.decode(list(ids), skip_special_tokens=False)

    def save(self, path: str | Path) -> None:
        self.hf.save(str(path))


def new_bpe_tokenizer() -> HFTokenizer:
    """An untrained byte-level BPE with sdls's pre-tokenizer and decoder."""
    tok = HFTokenizer(models.BPE())
    # GPT-2 style splitting keeps a run of spaces together (`\s+(?!\S)`), so BPE learns
    # indentation as single tokens; newlines stay separate pieces.
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    return tok


def train_tokenizer(texts: Iterable[str], vocab_size: int = 16384, min_frequency: int = 2) -> Tokenizer:
    """Train a byte-level BPE on `texts`; the special tokens take ids 0..5 in SPECIAL_TOKENS order."""
    tok = new_bpe_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    for i, name in enumerate(SPECIAL_TOKENS):
        assert tok.token_to_id(name) == i, f"special token {name} got id {tok.token_to_id(name)}, expected {i}"
    return Tokenizer(tok)
