"""Turning a pretrained autoregressive (AR) model into an sdls block-diffusion model.

What changes; everything else keeps the pretrained weights:
- attention: block-causal in sdls's own layout (layout.py). The context stays causal token by token,
  which is exactly the AR model's attention; only the middle's blocks are bidirectional inside.
- logit shift: the prediction for position i is read from row i - 1, so the AR head keeps its meaning
  (row i predicts token i + 1). A block's first token is then predicted by the clean token before
  the block, exactly as the AR model would predict it; the masks only serve the later positions.
- infill layout "fim": [<fim_suffix> suffix <fim_prefix> prefix <fim_middle>]: the prefix comes
  last, so the middle continues it as AR text would, and the suffix is earlier context.
- tokens: a mask token and the three fill-in-the-middle markers are added to the tokenizer when it
  lacks them, each with a new embedding row (and output row) started at the mean of the existing
  rows, a neutral point of the embedding space.
`ar_baseline_config` is the other use of the same pieces: the unchanged backbone run through the
engine as a plain AR model (blocks of one token, prefix only), the speed anchor of the benchmarks.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from tokenizers import AddedToken

from .config import ModelConfig
from .tokenizer import Tokenizer
from .transformer import Transformer

# The tokens an adapted model needs, by ModelConfig field, with the texts sdls's own tokenizer uses.
ADDED_TOKENS = {
    "mask_id": "<|mask|>",
    "fim_prefix_id": "<|fim_prefix|>",
    "fim_suffix_id": "<|fim_suffix|>",
    "fim_middle_id": "<|fim_middle|>",
}
END_OF_TEXT = "<|endoftext|>"  # ends the middle when the tokenizer has it (a document's end for an AR model)
DEFAULT_BLOCK_SIZE = 4  # small blocks stay close to the AR model (Stable-DiffCoder and SDAR use 4)


@dataclass(frozen=True)
class AddedRows:
    """What adaptation added to a backbone: token texts by id, and the vocabulary it started from."""

    tokens: dict[int, str]
    base_vocab_size: int  # rows of the base embedding (ids at or beyond it are new rows)

    def to_dict(self) -> dict:
        return {"tokens": {str(k): v for k, v in self.tokens.items()}, "base_vocab_size": self.base_vocab_size}

    @classmethod
    def from_dict(cls, data: dict) -> AddedRows:
        return cls({int(k): str(v) for k, v in data["tokens"].items()}, int(data["base_vocab_size"]))


def add_tokens(tok: Tokenizer, texts: list[str]) -> tuple[Tokenizer, dict[int, str]]:
    """A copy of `tok` with each missing text added as a special token; returns it and the new ids."""
    hf = type(tok.hf).from_str(tok.hf.to_str())
    missing = [t for t in texts if hf.token_to_id(t) is None]
    hf.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in missing])
    added = {hf.token_to_id(t): t for t in missing}
    return Tokenizer(hf), added


def adapted_config(cfg: ModelConfig, tok: Tokenizer, block_size: int = DEFAULT_BLOCK_SIZE) -> ModelConfig:
    """The block-diffusion config of an AR backbone whose tokenizer already holds ADDED_TOKENS."""
    ids = {name: tok.token_to_id(text) for name, text in ADDED_TOKENS.items()}
    missing = [ADDED_TOKENS[n] for n, i in ids.items() if i is None]
    if missing:
        raise ValueError(f"the tokenizer lacks {', '.join(missing)}: run add_tokens first")
    eos = tok.token_to_id(END_OF_TEXT)
    eos = cfg.eos_id if eos is None else eos
    stops = [i for i in dict.fromkeys([cfg.eos_id, *cfg.extra_stop_ids]) if i != eos]
    return replace(
        cfg,
        vocab_size=max(cfg.vocab_size, tok.vocab_size),
        attention="block_causal",
        block_size=block_size,
        block_align="context",
        sub_block_size=None,
        infill_layout="fim",
        logit_shift=True,
        family="sdls",
        eos_id=eos,
        pad_id=eos,
        extra_stop_ids=stops,
        **ids,
    )


def ar_baseline_config(cfg: ModelConfig) -> ModelConfig:
    """The backbone as a plain AR model through the engine: blocks of one token (one token per
    forward, causal), the prediction read from the row before, the prefix alone as context."""
    return replace(
        cfg,
        attention="block_causal",
        block_size=1,
        block_align="context",
        sub_block_size=None,
        infill_layout="prefix_only",
        logit_shift=True,
        threshold=0.9,
    )


def grow_vocabulary(model: Transformer, cfg: ModelConfig, new_ids: list[int]) -> Transformer:
    """A model for `cfg` (a vocabulary at least the model's) holding the model's weights, with the
    rows of `new_ids` (and any rows beyond the old vocabulary) set to the mean of the old rows."""
    old = model.cfg.vocab_size
    state = dict(model.state_dict().items())
    for name in ("embed_tokens.weight", "lm_head.weight"):
        if name == "lm_head.weight" and cfg.tie_embeddings:
            state.pop(name, None)
            continue
        weight = state[name]
        mean = weight[:old].float().mean(0).to(weight.dtype)
        grown = torch.cat([weight, mean.expand(cfg.vocab_size - old, -1)]) if cfg.vocab_size > old else weight.clone()
        for i in new_ids:
            grown[i] = mean
        state[name] = grown
    out = Transformer.skeleton(cfg)
    if cfg.tie_embeddings:
        state["lm_head.weight"] = state["embed_tokens.weight"]
    out.load_state_dict(state, strict=True, assign=True)
    if cfg.tie_embeddings:
        out.lm_head.weight = out.embed_tokens.weight
    return out


def adapt_backbone(
    cfg: ModelConfig, model: Transformer, tok: Tokenizer, block_size: int = DEFAULT_BLOCK_SIZE
) -> tuple[ModelConfig, Transformer, Tokenizer, AddedRows]:
    """An AR backbone (cfg, model, tok) -> the untrained block-diffusion model, its tokenizer and what was added."""
    new_tok, added = add_tokens(tok, list(ADDED_TOKENS.values()))
    new_cfg = adapted_config(cfg, new_tok, block_size)
    new_model = grow_vocabulary(model, new_cfg, list(added))
    return new_cfg, new_model, new_tok, AddedRows(added, cfg.vocab_size)


def reapply_additions(tok: Tokenizer, rows: AddedRows) -> Tokenizer:
    """The base tokenizer with a shipped model's additions, checked to land on the same ids."""
    new_tok, added = add_tokens(tok, list(rows.tokens.values()))
    if added != rows.tokens:
        raise ValueError(f"the base tokenizer gives the added tokens ids {added}, the adapter expects {rows.tokens}")
    return new_tok
