"""The decoding engine: block-wise semi-autoregressive diffusion for infill and edit jobs.

A job's middle is decoded in blocks, left to right; inside a block every masked position is
predicted in parallel and the sampling rule decides which predictions to commit, until the block
has no masks left. How earlier tokens are seen is the cache policy:
- "exact" (block-causal models): the context and each committed block are encoded once into a
  static KV cache; a step feeds only the tokens not yet cached plus the current block. A document's
  encoded context survives between jobs (`session`), so a keystroke re-encodes only what changed.
- "approx" (bidirectional models): the whole canvas is encoded at the start of each block and the
  block then attends to that cache (Fast-dLLM's dual cache): cheap, not exact.
- "none": every step re-encodes everything (LLaDA's reference; slow, the quality baseline).

The parts, one job each:
- engine.py: `Engine`, the public API (`run`, `doubt`, `describe`, `idle_slots`) and the one step loop;
- rows.py: a job's row and its canvas layout (windowing, middle in whole blocks, open positions);
- slots.py: cache slots, session reuse;
- batch.py: one padded forward over a batch of rows (plain or FastDecoder);
- commit.py: the commit rule and the status a step reads back, on the device;
- kinds.py: what a step means for an infill, an edit or a doubt pass.
"""

from ..jobs import CancelToken, DecodeSettings, EditJob, InfillJob, JobResult, JobStats, TextEdit
from .engine import DecodeCounters, Engine, StepEvent

__all__ = [
    "CancelToken",
    "DecodeCounters",
    "DecodeSettings",
    "EditJob",
    "Engine",
    "InfillJob",
    "JobResult",
    "JobStats",
    "StepEvent",
    "TextEdit",
]
