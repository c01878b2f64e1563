"""What one job needs in memory, estimated before it runs from the model's config and the job's
lengths, so a worker can refuse a job over its budget alone instead of allocating until the
process dies (issue 16: `block_size: 100000` took a worker to 2.5 GB before anything stopped it).

An upper bound from lengths alone, without tokenizing: a token covers at least one byte of UTF-8
(byte-level tokenizers), the engine keeps at most `max_context` tokens of context, writes at most
its `max_new_tokens`, and lays the middle out in whole blocks. Counted, for that canvas:
- its KV cache: 2 · layers · kv_heads · head_dim · tokens, at the engine's element size;
- the hidden states of a forward over it: tokens · (3 · d_model + 2 · ffn_size) (the residual, the
  normed input and the attention output; SwiGLU's gate and up projections);
- one block step: the block's attention scores (n_heads · block · tokens) and its logits three times
  over (logits, probabilities, the confidence pass: block · vocab), in float32.
"""

from __future__ import annotations

from typing import Any

from .config import ModelConfig
from .jobs import EditJob

# A job of the shipped model at the default context needs a few tens of MB by this estimate, one of a
# 1.5B-parameter model a few hundred: 4 GB is far above legitimate jobs at usual contexts.
DEFAULT_BUDGET_MB = 4096.0
EDIT_SPARE_TOKENS = 9  # an edit's middle: the region, an end token and 8 spare ones (engine._edit_row)
F32 = 4


def _tokens_at_most(text: str, cap: int) -> int:
    """An upper bound on the tokens of `text`, no larger than `cap` (encodes only short texts)."""
    return cap if len(text) >= cap else min(cap, len(text.encode("utf-8", "surrogatepass")))


def job_lengths(cfg: ModelConfig, job: Any, max_context: int, max_new_tokens: int) -> tuple[int, int]:
    """(canvas tokens, block size) of `job` at most, as the engine would lay it out."""
    block = getattr(job.settings, "block_size", None) or cfg.block_size
    if isinstance(job, EditJob):
        context = _tokens_at_most(job.text[: job.start] + job.text[job.end :], max_context)
        middle = _tokens_at_most(job.text[job.start : job.end], max_new_tokens) + EDIT_SPARE_TOKENS
    else:
        context = _tokens_at_most(job.prefix + job.suffix, max_context)
        middle = min(job.max_new_tokens, max_new_tokens)
    middle = -(-middle // block) * block + block  # whole blocks, and one of alignment
    return context + middle, block


def job_need_bytes(cfg: ModelConfig, job: Any, max_context: int, max_new_tokens: int, element_size: int) -> int:
    tokens, block = job_lengths(cfg, job, max_context, max_new_tokens)
    kv = 2 * cfg.n_layers * cfg.n_kv_heads * cfg.head_dim * tokens * element_size
    hidden = tokens * (3 * cfg.d_model + 2 * cfg.ffn_size) * element_size
    step = (cfg.n_heads * block * tokens + 3 * block * cfg.vocab_size) * F32
    return kv + hidden + step


def budget_problem(need: int, budget: int, setting: str = "sdls worker --memory-budget-mb") -> str | None:
    """Why a job needing `need` bytes is refused under `budget` (None: it fits); `setting` says where
    the budget is set."""
    if need <= budget:
        return None
    mb = 1024 * 1024
    return (
        f"the job needs about {need / mb:.0f} MB (its context, middle and block size on this model), "
        f"over the memory budget of {budget / mb:.0f} MB per job ({setting})"
    )
