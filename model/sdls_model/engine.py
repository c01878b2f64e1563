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
Every row of a batch builds its own inputs (`_RowInputs`); rows are padded into one forward, and
masks keep each row to itself, so a job's tokens do not depend on its batch mates.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import sampling
from .cache import KVCache, SlotState, cache_plan
from .config import ModelConfig
from .families import INFILL_DESCRIPTIONS
from .jobs import CancelToken, DecodeSettings, EditJob, InfillJob, JobResult, JobStats, TextEdit, minimal_edits
from .layout import (
    CACHE_BID,
    attention_mask,
    block_origin,
    canvas_block_id,
    first_block_start,
    infill_context,
    middle_length,
    reusable_length,
)
from .tokenizer import Tokenizer
from .transformer import CacheIO, Transformer

__all__ = ["CancelToken", "DecodeSettings", "EditJob", "Engine", "InfillJob", "JobResult", "JobStats", "TextEdit"]

PAD_BID = 1 << 40  # block id of padding queries: they see every valid clean key, nobody sees them


@dataclass
class _Row:
    """One job being decoded: its canvas and where decoding stands."""

    job: object
    settings: DecodeSettings
    policy: str
    blk: int
    seq: torch.Tensor  # (S,) the whole canvas: context, middle (masks at first), in-place suffix
    ctx_len: int  # tokens before the middle
    mid_end: int  # end of the middle (exclusive)
    slot: int
    written: int = 0  # exact policy: cache holds seq[:written]
    bs: int = 0  # current block start
    step: int = 0  # steps taken in the current block
    schedule: list[int] = field(default_factory=list)
    open: list[int] = field(default_factory=list)  # block offsets still masked (known on the host)
    stops: torch.Tensor | None = None  # token ids that end the middle (set by _new_row)
    stop_at: int | None = None  # position of the first end token of the middle
    done: bool = False
    cancelled: bool = False
    stats: JobStats = field(default_factory=JobStats)
    generator: torch.Generator | None = None

    @property
    def be(self) -> int:
        return self.bs + self.blk


@dataclass
class _RowInputs:
    positions: list[int]  # canvas positions fed in this forward
    block_ids: list[int]
    noisy: list[bool]
    cache_valid: torch.Tensor | None  # (read_len,) bool over this row's cache slot, None: reads nothing
    writes: list[tuple[int, int, int]]  # (cache_start, token_start, count)
    logit_rows: list[int]  # which fed tokens predict the current block's positions


class Engine:
    def __init__(
        self,
        model: Transformer,
        tokenizer: Tokenizer,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
        max_batch: int = 8,
        max_context: int = 1024,
        max_new_tokens: int = 512,
        n_sessions: int = 8,
        name: str = "",
        fast_path: bool | None = None,
    ):
        self.cfg: ModelConfig = model.cfg
        self.device = torch.device(device)
        self.dtype = dtype or (torch.bfloat16 if self.device.type == "cuda" else torch.float32)
        self.model = model.to(device=self.device, dtype=self.dtype).eval()
        self.tokenizer = tokenizer
        self.name = name
        self.max_batch, self.max_context, self.max_new_tokens = max_batch, max_context, max_new_tokens
        cfg = self.cfg
        if tokenizer.vocab_size > cfg.vocab_size:
            raise ValueError(f"tokenizer has {tokenizer.vocab_size} tokens but the model only {cfg.vocab_size}")
        n_slots, self.cache_len = cache_plan(cfg, max_batch, n_sessions, max_context, max_new_tokens)
        self.cache = KVCache(cfg, n_slots, self.cache_len, self.dtype, self.device)
        self.slots = [SlotState() for _ in range(n_slots)]
        self.busy: set[int] = set()  # slots of rows being decoded (a nested run must not take them)
        self.sessions: OrderedDict[str, int] = OrderedDict()  # LRU: session key -> slot
        never = {cfg.mask_id, cfg.bos_id, cfg.fim_prefix_id, cfg.fim_suffix_id, cfg.fim_middle_id}
        # Padded vocabularies (Dream, Qwen: 152k rows, ~151.7k tokens) must not sample ids the
        # tokenizer cannot decode.
        never |= set(range(tokenizer.vocab_size, cfg.vocab_size))
        self.banned = torch.tensor(sorted(i for i in never if i is not None), device=self.device)
        self.stop_ids = torch.tensor(cfg.stop_ids, device=self.device)
        self._line_stops: torch.Tensor | None = None  # stop_ids plus line breaks, built on first use
        # Steps that are a pure block over the cache (most of them) can run on FastDecoder: fused
        # weights, device-side lengths, Triton kernels on CUDA. On by default on CUDA only.
        self.fast = None
        if fast_path if fast_path is not None else self.device.type == "cuda":
            from .fast_path import FastDecoder, unsupported_reason

            # Qwen3's q/k norms are not fused, and a shifted model's block is predicted from the row
            # before it, which the fast step does not feed: those models take the plain path.
            if unsupported_reason(cfg) is None and not cfg.logit_shift:
                self.fast = FastDecoder(self.model)

    @classmethod
    def from_dir(
        cls, path: str | Path | None = None, *, device: str = "cpu", dtype: torch.dtype | str | None = None, **kwargs
    ) -> Engine:
        """dtype: a torch dtype, a name ("auto" picks per device, see precision.py) or None (float32
        on a CPU, bfloat16 on a GPU)."""
        from .checkpoint import default_model_dir, load_checkpoint
        from .precision import resolve_dtype

        if isinstance(dtype, str):
            dtype = resolve_dtype(dtype, device)
        path = Path(path) if path is not None else default_model_dir()
        _cfg, model, tokenizer = load_checkpoint(path, device=device, dtype=dtype)
        return cls(model, tokenizer, device=device, dtype=dtype, name=str(path), **kwargs)

    def describe(self) -> dict:
        cfg = self.cfg
        return {
            "model": self.name,
            "family": cfg.family,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "device": str(self.device),
            "dtype": str(self.dtype).replace("torch.", ""),
            "attention": cfg.attention,
            "infill_layout": cfg.infill_layout,
            "infill": INFILL_DESCRIPTIONS[cfg.infill_layout],
            "context_reuse": "exact" if cfg.attention == "block_causal" else "none (bidirectional)",
            "block_size": cfg.block_size,
            "block_align": cfg.block_align,
            "logit_shift": cfg.logit_shift,
            "threshold": cfg.threshold,
            "vocab_size": cfg.vocab_size,
            "layers": cfg.n_layers,
            "d_model": cfg.d_model,
        }

    # -- public entry points ------------------------------------------------------------------
    @torch.inference_mode()
    def run(self, jobs: list[InfillJob | EditJob], between_steps=None) -> list[JobResult]:
        """Run jobs; infill jobs share forwards in batches of up to max_batch.

        between_steps, if given, is called after every denoising step. It may run other jobs on
        this engine (`run` again, without a hook): that is how a long rewrite lets an inline
        completion through. The nested jobs take other cache slots, so neither changes the other's
        tokens; `idle_slots` says how many jobs fit beside the running ones."""
        results: list[JobResult | None] = [None] * len(jobs)
        infills = [i for i, job in enumerate(jobs) if isinstance(job, InfillJob)]
        for lo in range(0, len(infills), self.max_batch):
            chunk = infills[lo : lo + self.max_batch]
            for i, result in zip(chunk, self._run_infills([jobs[i] for i in chunk], between_steps)):
                results[i] = result
        for i, job in enumerate(jobs):
            if isinstance(job, EditJob):
                results[i] = self._run_edit(job, between_steps)
            elif not isinstance(job, InfillJob):
                raise TypeError(f"job {i} is a {type(job).__name__}, expected InfillJob or EditJob")
        return results  # type: ignore[return-value]

    @torch.inference_mode()
    def doubt(self, text: str, start: int, end: int, threshold: float = 0.1) -> list[tuple[int, int, float]]:
        """Character spans inside text[start:end] whose tokens the model finds unlikely (p < threshold)."""
        job = EditJob(text, start, end, edit_threshold=threshold, max_rounds=0)
        with self._leased([job]) as (slot,):
            row, region = self._edit_row(job, slot)
            spans = []
            offsets = self._token_offsets(region)
            while row.bs < row.ctx_len + len(region):
                probs = self._block_probs(row)
                current = row.seq[row.bs : row.be]
                p_current = probs.gather(-1, current[:, None]).squeeze(-1)
                for j in range(row.blk):
                    k = row.bs - row.ctx_len + j
                    if 0 <= k < len(region) and p_current[j] < threshold:
                        spans.append((start + offsets[k], start + offsets[k + 1], float(p_current[j])))
                self._advance_block(row)
            self._release(row)
        return spans

    def idle_slots(self) -> int:
        """How many more jobs fit beside the rows being decoded now."""
        return len(self.slots) - len(self.busy)

    # -- infill -------------------------------------------------------------------------------
    def _run_infills(self, jobs: list[InfillJob], between_steps=None) -> list[JobResult]:
        started = time.perf_counter()
        with self._leased(jobs) as slots:
            rows = [self._infill_row(job, slot) for job, slot in zip(jobs, slots)]
            self._denoise_infills(rows, between_steps)
            for row in rows:
                self._release(row)
        results = []
        for row in rows:
            end = row.stop_at if row.stop_at is not None else row.mid_end
            tokens = row.seq[row.ctx_len : end].tolist()
            tokens = [t for t in tokens if t != self.cfg.mask_id][: row.job.max_new_tokens]
            row.stats.tokens_committed = len(tokens) + (row.stop_at is not None)
            row.stats.ms = (time.perf_counter() - started) * 1000
            results.append(JobResult(self.tokenizer.decode(tokens), tokens, row.stats, row.cancelled))
        return results

    def _denoise_infills(self, rows: list[_Row], between_steps) -> None:
        while True:
            for row in rows:
                if not row.done and row.job.cancel is not None and row.job.cancel.cancelled:
                    row.done = row.cancelled = True
            active = [r for r in rows if not r.done]
            if not active:
                return
            logits = self._forward(active, [r.open for r in active])
            for row, row_logits in zip(active, logits):
                self._commit(row, row_logits)
            if between_steps is not None:
                between_steps()

    def _block_size(self, settings: DecodeSettings) -> int:
        """A job may pick its block size, except where blocks are part of the model's attention as
        trained (sequence- or generation-aligned checkpoints): those keep the checkpoint's."""
        if self.cfg.block_align != "context" and self.cfg.attention == "block_causal":
            return self.cfg.block_size
        return settings.block_size or self.cfg.block_size

    def _infill_row(self, job: InfillJob, slot: int) -> _Row:
        blk = self._block_size(job.settings)
        max_new = min(job.max_new_tokens, self.max_new_tokens)
        if max_new < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {job.max_new_tokens}")

        def middle(ctx_len: int) -> list[int]:  # masks up to a block boundary, wherever the blocks start
            return [self.cfg.mask_id] * middle_length(self.cfg, ctx_len, max_new, blk)

        row = self._new_row(job, self._policy(job.settings), blk, job.prefix, job.suffix, middle, slot)
        if job.single_line:
            row.stops = self._line_stop_ids()
        self._start_block(row)
        return row

    def _new_row(self, job, policy: str, blk: int, prefix_text: str, suffix_text: str, middle, slot: int) -> _Row:
        """Lay out context, middle and (in place) suffix for a job and set its row up in its slot.
        middle: the middle's tokens, or a function of the context length that returns them."""
        cfg = self.cfg
        prefix, suffix = self._window(self.tokenizer.encode(prefix_text), self.tokenizer.encode(suffix_text))
        context, tail = infill_context(cfg, prefix, suffix)
        middle = middle(len(context)) if callable(middle) else middle
        seq = torch.tensor(context + middle + tail, device=self.device)
        row = _Row(job, job.settings, policy, blk, seq, len(context), len(context) + len(middle), slot)
        row.bs = first_block_start(cfg, row.ctx_len, blk)
        row.stops = self.stop_ids
        row.stats.context_tokens = len(context) + len(tail)
        self._reuse_context(row, job.session, context)
        if job.settings.temperature > 0:
            row.generator = torch.Generator(device=self.device).manual_seed(job.settings.seed)
        return row

    def _line_stop_ids(self) -> torch.Tensor:
        """End tokens plus every token whose text holds a line break (computed once)."""
        if self._line_stops is None:
            decode = self.tokenizer.decode
            breaks = [i for i in range(self.tokenizer.vocab_size) if "\n" in decode([i])]
            self._line_stops = torch.tensor(sorted({*self.cfg.stop_ids, *breaks}), device=self.device)
        return self._line_stops

    def _window(self, prefix: list[int], suffix: list[int]) -> tuple[list[int], list[int]]:
        """Fit prefix + suffix into the context budget: the suffix keeps its start (at most a
        quarter of the budget unless the prefix is short), the prefix keeps its end. The prefix is
        cut at a multiple of 64 tokens so its start stays put while the user types."""
        budget = self.max_context - 4
        if len(prefix) + len(suffix) <= budget:
            return prefix, suffix
        keep_suffix = min(len(suffix), max(budget // 4, budget - len(prefix)))
        keep_prefix = budget - keep_suffix
        cut = len(prefix) - keep_prefix
        cut = min(len(prefix), math.ceil(cut / 64) * 64) if cut > 0 else 0
        return prefix[cut:], suffix[:keep_suffix]

    def _policy(self, settings: DecodeSettings) -> str:
        causal = self.cfg.attention == "block_causal"
        if settings.cache == "auto":
            return "exact" if causal else "approx"
        if settings.cache == "exact" and not causal:
            raise ValueError("cache 'exact' needs a block-causal model; this one is bidirectional (use 'approx')")
        if settings.cache == "approx" and causal:
            return "exact"  # a block-causal model's cache is exact: nothing to approximate
        return settings.cache

    def _start_block(self, row: _Row) -> None:
        row.step = 0
        row.open = self._open_offsets(row)
        masks = int((row.seq[row.bs : row.be] == self.cfg.mask_id).sum())  # the whole block, sub-blocks too
        per_step = row.settings.tokens_per_step
        row.schedule = sampling.transfer_schedule(masks, max(1, math.ceil(masks / per_step)))

    def _open_offsets(self, row: _Row) -> list[int]:
        """Block offsets of the row's current block that are still masked, in order; with sub-blocks
        (Fast-dLLM v2) only those of the first sub-block that has any."""
        open_ = (row.seq[row.bs : row.be] == self.cfg.mask_id).nonzero().flatten().tolist()
        sub = self.cfg.sub_block_size
        if sub and open_:
            open_ = [j for j in open_ if j // sub == open_[0] // sub]
        return open_

    # -- one forward over a batch of rows -----------------------------------------------------
    def _forward(self, rows: list[_Row], wanted: list[list[int]] | None = None) -> list[torch.Tensor]:
        """Build every row's inputs, pad them into one forward, return each row's logits at the
        wanted block offsets (default: the whole block), shape (len(wanted[b]), V).

        Asking only for the positions still masked skips most of the output projection, the
        largest matmul of a small model's step, and the softmax over the vocabulary after it."""
        if wanted is None:
            wanted = [list(range(r.blk)) for r in rows]
        if self.fast is not None and all(r.policy == "exact" and r.written == r.bs for r in rows):
            return self._fast_forward(rows, wanted)
        inputs = [self._row_inputs(r) for r in rows]
        T = max(len(x.positions) for x in inputs)
        read_len = max((len(x.cache_valid) for x in inputs if x.cache_valid is not None), default=0)
        R, dev = len(rows), self.device
        tokens = torch.full((R, T), self.cfg.pad_id, dtype=torch.long, device=dev)
        positions = torch.zeros((R, T), dtype=torch.long, device=dev)
        q_bid = torch.full((R, T), PAD_BID, dtype=torch.long, device=dev)
        q_noisy = torch.zeros((R, T), dtype=torch.bool, device=dev)
        new_valid = torch.zeros((R, T), dtype=torch.bool, device=dev)
        cache_valid = torch.zeros((R, read_len), dtype=torch.bool, device=dev)
        writes = []
        for b, (row, x) in enumerate(zip(rows, inputs)):
            n = len(x.positions)
            pos = torch.tensor(x.positions, device=dev)
            tokens[b, :n] = row.seq[pos]
            positions[b, :n] = pos
            q_bid[b, :n] = torch.tensor(x.block_ids, device=dev)
            q_noisy[b, :n] = torch.tensor(x.noisy, device=dev)
            new_valid[b, :n] = True
            if x.cache_valid is not None:
                cache_valid[b, : len(x.cache_valid)] = x.cache_valid
            writes += [(b, dst, src, count) for dst, src, count in x.writes]
            row.stats.forwards += 1
        k_bid = torch.cat([torch.full((R, read_len), CACHE_BID, dtype=torch.long, device=dev), q_bid], 1)
        k_noisy = torch.cat([torch.zeros((R, read_len), dtype=torch.bool, device=dev), q_noisy], 1)
        k_valid = torch.cat([cache_valid, new_valid], 1)
        mask = attention_mask(
            q_bid, q_noisy, k_bid, k_noisy, k_valid, self.cfg.attention == "bidirectional"
        ).contiguous()
        mask[:, 0, torch.arange(T), read_len + torch.arange(T)] = True  # padding sees itself: no empty rows
        needs_cache = read_len > 0 or writes
        cache_io = CacheIO(self.cache, [r.slot for r in rows], read_len, writes) if needs_cache else None
        hidden = self.model(tokens, positions, mask, cache_io)  # (R, T, D)
        for row in rows:
            if row.policy == "exact":
                row.written = row.bs
        return self._logits_at(hidden, [[x.logit_rows[j] for j in w] for x, w in zip(inputs, wanted)])

    def _logits_at(self, hidden: torch.Tensor, rows_index: list[list[int]]) -> list[torch.Tensor]:
        """Output logits of the given hidden rows of each batch row, banned tokens at -inf."""
        width = max(1, max(len(ix) for ix in rows_index))
        index = torch.tensor([ix + [0] * (width - len(ix)) for ix in rows_index], device=self.device)
        picked = hidden.gather(1, index[..., None].expand(-1, -1, hidden.shape[-1]))
        logits = self.model.logits(picked).float()  # (R, width, V)
        logits[..., self.banned] = float("-inf")
        return [logits[b, : len(ix)] for b, ix in enumerate(rows_index)]

    def _fast_forward(self, rows: list[_Row], wanted: list[list[int]]) -> list[torch.Tensor]:
        """A block step over the cache alone (nothing pending to encode) on the FastDecoder."""
        from .fast_path import length_bucket

        dev = self.device
        tokens = torch.stack([r.seq[r.bs : r.be] for r in rows])  # (R, blk)
        positions = torch.stack([torch.arange(r.bs, r.be, device=dev) for r in rows])
        cache_lens = torch.tensor([r.written for r in rows], device=dev)
        read_len = min(length_bucket(max(r.written for r in rows)), self.cache.max_len)
        slots = torch.tensor([r.slot for r in rows], device=dev)
        hidden = self.fast(tokens, positions, self.cache, cache_lens, read_len, slots=slots)
        for row in rows:
            row.stats.forwards += 1
        return self._logits_at(hidden, wanted)

    def _row_inputs(self, row: _Row) -> _RowInputs:
        shift = int(self.cfg.logit_shift)
        bs, be = row.bs, row.be
        if row.policy == "exact":
            # A shifted model predicts the block's first position from the token before it: feed that
            # (cached) token again, reading the cache only up to it.
            first = max(0, min(row.written, bs - shift))
            cache_valid = torch.ones(first, dtype=torch.bool, device=self.device) if first else None
            positions = list(range(first, be))
            writes = [(first, 0, bs - first)] if bs > first else []
        elif row.policy == "none":
            first = 0
            end = be if self.cfg.attention == "block_causal" else len(row.seq)
            positions, cache_valid, writes = list(range(end)), None, []
        elif row.step == 0:  # approx, first step of a block: re-encode the whole canvas into the cache
            first = 0
            positions, cache_valid = list(range(len(row.seq))), None
            writes = [(0, 0, len(row.seq))]
        else:  # approx: the block (and the token predicting its first position) over the cache
            first = bs - shift
            positions, writes = list(range(first, be)), []
            cache_valid = torch.ones(len(row.seq), dtype=torch.bool, device=self.device)
            cache_valid[first:be] = False
        block_ids = [self._block_id(row, p) for p in positions]
        noisy = [bs <= p < be for p in positions]
        logit_rows = [max(0, p - shift) - first for p in range(bs, be)]
        return _RowInputs(positions, block_ids, noisy, cache_valid, writes, logit_rows)

    def _block_id(self, row: _Row, position: int) -> int:
        return canvas_block_id(self.cfg, position, row.ctx_len, row.mid_end, row.blk)

    # -- committing predictions ---------------------------------------------------------------
    def _commit(self, row: _Row, logits: torch.Tensor) -> None:
        """Apply the sampling rule to one row's logits at its open positions and advance the row."""
        self._apply_rule(row, logits, row.open)
        self._after_step(row)

    def _apply_rule(self, row: _Row, logits: torch.Tensor, at: list[int]) -> None:
        """Fill the masked positions of the row's block that the rule commits this step; logits
        (len(at), V) predict the block offsets `at`."""
        s = row.settings
        block = row.seq[row.bs : row.be]
        at_t = torch.tensor(at, dtype=torch.long, device=self.device)
        masked = block[at_t] == self.cfg.mask_id
        generators = [row.generator] if row.generator is not None else None
        candidates, conf = sampling.propose(logits[None], s.temperature, s.top_p, s.confidence, generators)
        if s.rule == "threshold":
            threshold = s.threshold if s.threshold is not None else self.cfg.threshold
            chosen = sampling.select_threshold(conf, masked[None], threshold)[0]
        else:
            k = row.schedule[min(row.step, len(row.schedule) - 1)]
            chosen = sampling.select_fixed(conf, masked[None], torch.tensor([k], device=self.device))[0]
        block[at_t[chosen]] = candidates[0][chosen]
        if s.rule == "threshold" and isinstance(row.job, InfillJob):
            self._pad_after_end(row, block)
        row.step += 1

    def _pad_after_end(self, row: _Row, block: torch.Tensor) -> None:
        """Once an end token is committed, the masks after it become end tokens too: the answer
        stops there, and a middle is trained padded with end tokens, so this is what the model
        was taught to expect. (A confident model commits the padding first; filling it at once
        saves the forwards a block would otherwise spend on it.)"""
        lo = max(0, row.ctx_len - row.bs)  # a sequence-aligned first block starts with context
        stops = torch.isin(block[lo:], row.stops)
        if bool(stops.any()):
            first = lo + int(stops.nonzero()[0])
            tail = block[first:]
            tail[tail == self.cfg.mask_id] = self.cfg.eos_id

    def _after_step(self, row: _Row) -> None:
        block = row.seq[row.bs : row.be]
        masked = (block == self.cfg.mask_id).tolist()
        row.open = self._open_offsets(row)
        is_stop = torch.isin(block, row.stops).tolist()
        # The middle ends at its first end token; once everything before it is committed the
        # rest of the block cannot change the answer, so the job is done.
        for j in range(max(0, row.ctx_len - row.bs), row.blk):
            if masked[j]:
                return
            if is_stop[j]:
                row.stop_at, row.done = row.bs + j, True
                self._block_committed(row)
                return
        self._block_committed(row)
        if row.be >= row.mid_end:
            row.done = True
            return
        row.bs = row.be
        self._start_block(row)

    def _block_committed(self, row: _Row) -> None:
        """Streaming hook: hand the job's `on_block` (if any) the text of its middle committed so far,
        in whole blocks. It runs on the engine thread between steps, so it must be quick."""
        hook = row.job.on_block
        if hook is None:
            return
        end = row.stop_at if row.stop_at is not None else min(row.be, row.mid_end)
        never = {self.cfg.mask_id, *self.cfg.stop_ids}
        tokens = [t for t in row.seq[row.ctx_len : end].tolist() if t not in never]
        if isinstance(row.job, InfillJob):
            tokens = tokens[: row.job.max_new_tokens]
        hook(self.tokenizer.decode(tokens))

    # -- sessions and cache slots -------------------------------------------------------------
    @contextmanager
    def _leased(self, jobs: list):
        """Cache slots for `jobs`, marked busy until the `with` block ends (so a job run between their
        steps cannot take them), whether it ends normally or not."""
        slots = self._lease_slots(jobs)
        try:
            yield slots
        finally:
            self.busy.difference_update(slots)

    def _lease_slots(self, jobs: list) -> list[int]:
        """A cache slot per job: the session's own slot when it has one, else a free or LRU one."""
        taken: set[int] = set(self.busy)
        leased = []
        for job in jobs:
            session = getattr(job, "session", None)
            slot = self.sessions.get(session) if session is not None else None
            if slot is None or slot in taken:
                slot = self._free_slot(taken)
                if session is not None and session not in self.sessions:
                    self.sessions[session] = slot
                    self.slots[slot] = SlotState(owner=session)
                elif self.slots[slot].owner is not None and self.slots[slot].owner != session:
                    self.slots[slot] = SlotState()
            if session is not None and self.sessions.get(session) == slot:
                self.sessions.move_to_end(session)
            taken.add(slot)
            leased.append(slot)
        self.busy.update(leased)
        return leased

    def _free_slot(self, taken: set[int]) -> int:
        owned = set(self.sessions.values())
        for i in range(len(self.slots)):
            if i not in taken and i not in owned:
                return i
        for session, slot in self.sessions.items():  # evict the least recently used session
            if slot not in taken:
                del self.sessions[session]
                self.slots[slot] = SlotState()
                return slot
        raise RuntimeError("no free cache slot: more jobs in one batch than slots")

    def _reuse_context(self, row: _Row, session: str | None, context: list[int]) -> None:
        state = self.slots[row.slot]
        reused = 0
        if row.policy == "exact" and session is not None and state.owner == session:
            cached = state.tokens[: state.exact_len]
            while reused < min(len(cached), len(context)) and cached[reused] == context[reused]:
                reused += 1
            origin = block_origin(self.cfg, len(context))
            reused = reusable_length(self.cfg, reused, row.blk, origin, state.block_origin)
        row.written = reused
        row.stats.reused_tokens = reused
        row.stats.encoded_tokens = len(context) - reused

    def _release(self, row: _Row) -> None:
        state = self.slots[row.slot]
        if row.policy == "exact" and state.owner is not None:
            state.tokens = row.seq[: row.written].tolist()
            state.exact_len = min(row.written, row.ctx_len)
            state.block_origin = block_origin(self.cfg, row.ctx_len)
        else:
            state.tokens, state.exact_len = [], 0

    # -- edit jobs ----------------------------------------------------------------------------
    def _run_edit(self, job: EditJob, between_steps=None) -> JobResult:
        """Score the region under the model, re-mask what it doubts (and the marked spans),
        denoise, and repeat until stable or out of rounds; block by block for block-causal models."""
        started = time.perf_counter()
        if not 0 <= job.start <= job.end <= len(job.text):
            raise ValueError(f"edit region {job.start}..{job.end} is outside the text (length {len(job.text)})")
        with self._leased([job]) as (slot,):
            row, region = self._edit_row(job, slot)
            marked = self._marked_tokens(job, region)
            while not row.done:
                if job.cancel is not None and job.cancel.cancelled:
                    row.cancelled = True
                    break
                remask = [k in marked for k in range(row.bs - row.ctx_len, row.be - row.ctx_len)]
                self._edit_block(row, torch.tensor(remask, device=self.device), between_steps)
                if not row.cancelled:
                    self._block_committed(row)
                if row.done or row.cancelled:
                    break
                self._advance_block(row)
                row.done = row.bs >= row.mid_end
            self._release(row)
        end = row.stop_at if row.stop_at is not None else row.mid_end
        tokens = [
            t for t in row.seq[row.ctx_len : end].tolist() if t not in self.cfg.stop_ids and t != self.cfg.mask_id
        ]
        new_region = self.tokenizer.decode(tokens)
        old_region = job.text[job.start : job.end]
        if row.cancelled:
            new_region, tokens = old_region, region
        row.stats.tokens_committed = len(tokens)
        row.stats.ms = (time.perf_counter() - started) * 1000
        edits = minimal_edits(old_region, new_region, job.start)
        return JobResult(new_region, tokens, row.stats, row.cancelled, edits)

    def _edit_row(self, job: EditJob, slot: int) -> tuple[_Row, list[int]]:
        cfg = self.cfg
        blk = self._block_size(job.settings)
        region = self.tokenizer.encode(job.text[job.start : job.end])
        if len(region) > self.max_new_tokens:
            raise ValueError(
                f"edit region is {len(region)} tokens; at most {self.max_new_tokens} can be revised at once"
            )
        if cfg.infill_layout == "in_place":
            middle = list(region)
        else:
            # Room to grow: the region, an end token, and at least 8 spare end tokens, in whole blocks.
            middle = region + [cfg.eos_id] * (1 + 8)

        def padded(ctx_len: int) -> list[int]:  # to a block boundary, wherever the blocks start
            return middle + [cfg.eos_id] * (middle_length(cfg, ctx_len, len(middle), blk) - len(middle))

        policy = "exact" if self._policy(job.settings) == "exact" else "none"
        row = self._new_row(job, policy, blk, job.text[: job.start], job.text[job.end :], padded, slot)
        return row, region

    def _marked_tokens(self, job: EditJob, region: list[int]) -> set[int]:
        """Indices of the region tokens that overlap a marked character span."""
        offsets = self._token_offsets(region)
        spans = [(s - job.start, e - job.start) for s, e in job.marked]
        return {k for k in range(len(region)) for s, e in spans if offsets[k] < e and offsets[k + 1] > s}

    def _token_offsets(self, tokens: list[int]) -> list[int]:
        """Character offset where each token starts (and the total length at the end)."""
        return [len(self.tokenizer.decode(tokens[:k])) for k in range(len(tokens) + 1)]

    def _block_probs(self, row: _Row) -> torch.Tensor:
        logits = self._forward([row])[0]
        return logits.softmax(-1)

    def _edit_block(self, row: _Row, forced: torch.Tensor, between_steps=None) -> None:
        """Revise one block: denoise its masks, re-score every token, re-mask the doubted ones,
        and repeat until the block stops changing or the rounds run out."""
        cfg, job = self.cfg, row.job
        block = row.seq[row.bs : row.be]
        block[forced] = cfg.mask_id
        before = None
        for round_ in range(job.max_rounds + 1):
            self._start_block(row)
            while row.open:
                if job.cancel is not None and job.cancel.cancelled:
                    row.cancelled = True
                    return
                self._apply_rule(row, self._forward([row], [row.open])[0], row.open)
                row.open = self._open_offsets(row)
                if between_steps is not None:
                    between_steps()
            if round_ == job.max_rounds or (before is not None and torch.equal(before, block)):
                break
            p_current = self._block_probs(row).gather(-1, block[:, None]).squeeze(-1)
            doubted = p_current < job.edit_threshold
            doubted[: max(0, row.ctx_len - row.bs)] = False  # context sharing the block is not revised
            if not bool(doubted.any()):
                break
            before = block.clone()
            block[doubted] = cfg.mask_id
            row.stats.rounds += 1
        stops = torch.isin(block, self.stop_ids).nonzero()
        if len(stops):
            row.stop_at, row.done = row.bs + int(stops[0]), True

    def _advance_block(self, row: _Row) -> None:
        row.bs = row.be
        self._start_block(row)
