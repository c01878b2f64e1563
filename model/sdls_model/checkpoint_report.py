"""What sdls will do with a checkpoint directory, found without reading a single weight (`sdls models`).

The report says which family and format config.json describes, how the engine will decode it
(attention, blocks, infill strategy, threshold, logit shift, special tokens), its size, the dtypes
it is stored in and computes in, the memory the worker will need (weights plus the KV cache the
engine allocates for the configured context), and every problem that stops it from loading, each
naming its file and tensor. Plain data (JSON-able), so `sdls models --json` prints it as it is.
"""

from __future__ import annotations

import inspect
from collections import Counter
from pathlib import Path

from .cache import cache_bytes, cache_plan
from .checkpoint import inspect_checkpoint
from .checkpoint_files import FLOAT_DTYPES
from .config import ModelConfig
from .families import FAMILIES, INFILL_DESCRIPTIONS

SAFETENSORS_CODE = {"float32": "F32", "bfloat16": "BF16", "float16": "F16", "float64": "F64"}
ALIGNMENT_TEXT = {
    "context": "middle blocks counted from the end of the context (the context is causal token by token)",
    "sequence": "blocks counted from position 0 of the sequence (the context's tail decodes with the first masks)",
    "generation": "blocks counted from the start of the completion, backwards through the context",
}


def engine_defaults() -> dict:
    """The Engine's own defaults for what the report needs (batch rows, kept sessions, longest middle)."""
    from .engine import Engine

    params = inspect.signature(Engine.__init__).parameters
    return {name: params[name].default for name in ("max_batch", "n_sessions", "max_new_tokens")}


def _token(tokenizer, token_id: int | None) -> dict | None:
    if token_id is None:
        return None
    return {"id": token_id, "text": tokenizer.hf.id_to_token(token_id) if tokenizer is not None else None}


def _tokens(cfg: ModelConfig, tokenizer) -> dict:
    fim = (cfg.fim_prefix_id, cfg.fim_suffix_id, cfg.fim_middle_id)
    return {
        "mask": _token(tokenizer, cfg.mask_id),
        "end": _token(tokenizer, cfg.eos_id),
        "pad": _token(tokenizer, cfg.pad_id),
        "bos": _token(tokenizer, cfg.bos_id),
        "stops": [_token(tokenizer, i) for i in cfg.stop_ids],
        "fim": None if None in fim else dict(zip(("prefix", "suffix", "middle"), (_token(tokenizer, i) for i in fim))),
    }


def _notes(cfg: ModelConfig, raw: dict, stored: Counter, compute: str) -> list[str]:
    notes = []
    family = FAMILIES.get(cfg.family)
    if cfg.family == "a2d-mdlm" and "sdls_objective" not in raw:
        notes.append(
            "config.json does not say whether this Tiny-A2D checkpoint was trained with MDLM or BD3LM: it runs "
            'as MDLM (bidirectional); add "sdls_objective": "bd3lm" to config.json for a block-diffusion one'
        )
    if family is not None and family.unconfirmed:
        notes.append(f"not confirmed against the published files: {family.unconfirmed}")
    if cfg.attention == "block_causal" and cfg.infill_layout == "prefix_only":
        notes.append("completions see the text before the cursor only (block-causal, no fill-in-the-middle tokens)")
    wide = FLOAT_DTYPES[SAFETENSORS_CODE[compute]][1]
    if stored and all(FLOAT_DTYPES.get(code, (None, 0))[1] < wide for code in stored):  # quantised: smaller
        notes.append(
            f"stored in {', '.join(sorted(stored))} but computes in {compute} here: more memory than the files"
        )
    return notes


def describe_checkpoint(
    directory: str | Path,
    *,
    device: str = "cpu",
    dtype: str = "auto",
    max_context: int = 1024,
    max_batch: int | None = None,
    weights: str | None = None,
) -> dict:
    """The report for one directory; "ok" is whether it would load (then "problems" is empty).
    weights: how the engine would store the matrices (packed_weights.resolve_weights; None: its default)."""
    import torch

    from .packed_weights import WEIGHT_LABELS, cache_dtype, resolve_weights, weight_bytes
    from .precision import resolve_dtype

    found = inspect_checkpoint(directory)
    report: dict = {"directory": str(found.directory), "ok": not found.problems, "problems": list(found.problems)}
    if found.fmt is not None:
        report["format"] = found.fmt.name
    cfg = found.cfg
    if cfg is None:
        return report
    defaults = engine_defaults()
    max_batch = defaults["max_batch"] if max_batch is None else max_batch
    compute = str(resolve_dtype(dtype, device)).removeprefix("torch.")
    element = FLOAT_DTYPES[SAFETENSORS_CODE[compute]][1]
    n_slots, slot_len = cache_plan(cfg, max_batch, defaults["n_sessions"], max_context, defaults["max_new_tokens"])
    storage = resolve_weights(weights, device, getattr(torch, compute))
    kv_element = cache_dtype(storage, getattr(torch, compute)).itemsize
    weights_bytes, kv = weight_bytes(cfg, element, storage), cache_bytes(cfg, n_slots, slot_len, kv_element)
    stored = Counter(t.dtype for t in found.tensors.values())
    family = FAMILIES.get(cfg.family)
    report.update(
        family=cfg.family,
        title=family.title if family else cfg.family,
        attention=cfg.attention,
        context_reuse="exact" if cfg.attention == "block_causal" else "none (bidirectional: re-encoded per block)",
        block_size=cfg.block_size,
        block_align=cfg.block_align if cfg.attention == "block_causal" else None,
        block_align_text=ALIGNMENT_TEXT[cfg.block_align] if cfg.attention == "block_causal" else None,
        sub_block_size=cfg.sub_block_size,
        infill=cfg.infill_layout,
        infill_text=INFILL_DESCRIPTIONS[cfg.infill_layout],
        threshold=cfg.threshold,
        logit_shift=cfg.logit_shift,
        tokens=_tokens(cfg, found.tokenizer),
        architecture={
            "layers": cfg.n_layers,
            "d_model": cfg.d_model,
            "heads": cfg.n_heads,
            "kv_heads": cfg.n_kv_heads,
            "head_dim": cfg.head_dim,
            "ffn_size": cfg.ffn_size,
            "vocab_size": cfg.vocab_size,
            "qkv_bias": cfg.qkv_bias,
            "qk_norm": cfg.qk_norm,
            "tied_embeddings": cfg.tie_embeddings,
            "rope_theta": cfg.rope_theta,
            "max_positions": cfg.max_seq_len,
        },
        parameters=cfg.num_parameters(),
        stored_dtypes=dict(sorted(stored.items())),
        compute_dtype=compute,
        weights=WEIGHT_LABELS[storage],
        device=device,
        memory={
            "weights_bytes": weights_bytes,
            "kv_cache_bytes": kv,
            "total_bytes": weights_bytes + kv,
            "kv_cache_slots": n_slots,
            "kv_cache_tokens_per_slot": slot_len,
            "max_context": max_context,
        },
        notes=_notes(cfg, found.raw or {}, stored, compute),
    )
    if max_context + defaults["max_new_tokens"] > cfg.max_seq_len:
        report["notes"].append(
            f"--max-context {max_context} plus a {defaults['max_new_tokens']}-token middle exceeds the "
            f"model's {cfg.max_seq_len} positions"
        )
    return report
