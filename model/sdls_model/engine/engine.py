"""The Engine: jobs in, results out, through one step loop.

Each `run` leases cache slots for a batch of jobs (slots.py), lays each job out as a row
(rows.py), and then loops: check cancels, one forward for every unfinished row (batch.py), the
commit rule on the device (commit.py), one read of every row's status, and the rows' kinds
(kinds.py: infill, edit, doubt) decide on the host what comes next. See __init__.py for the
cache policies.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..cache import KVCache, cache_plan
from ..config import ModelConfig
from ..families import INFILL_DESCRIPTIONS
from ..job_memory import job_need_bytes
from ..jobs import EditJob, InfillJob, JobResult
from ..packed_weights import (
    PACKED_CHOICES,
    WEIGHT_LABELS,
    cache_dtype,
    pack_model,
    packed_weight_bytes,
    resolve_weights,
)
from ..tokenizer import Tokenizer
from ..transformer import Transformer
from .batch import BatchForward
from .commit import FLAGS, CommitRule, Status
from .healing import healed_tail, without_tail
from .kinds import DoubtKind, EditKind, InfillKind
from .rows import DENOISE, Row, RowBuilder
from .slots import SlotPool


@dataclass(frozen=True)
class StepEvent:
    """What one denoising step did to one job (`Engine.run(..., on_step=...)`).

    kind "denoise": `committed` holds the (canvas position, token id) pairs the step committed, in
    position order; kind "score": an edit/doubt pass rated the block (committed is empty)."""

    job: InfillJob | EditJob
    kind: str
    block_start: int  # canvas position of the block's first token
    middle_start: int  # canvas position of the middle's first token
    predicted: tuple[int, ...]  # block offsets the forward predicted
    committed: tuple[tuple[int, int], ...]


@dataclass
class DecodeCounters:
    """Engine-wide step counters (the worker's stats show them)."""

    steps: int = 0  # batched denoising steps (forwards)
    host_reads: int = 0  # device-to-host reads the step loop made
    # steps per forward path (all keys present from the start: another thread may copy it any time)
    by_path: dict[str, int] = field(default_factory=lambda: dict.fromkeys(("plain", "fast", "static", "graph"), 0))


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
        graph: bool | None = None,
        weights: str | None = "plain",
    ):
        """weights: "plain" (the model's matrices in `dtype`), "float16" (packed for FBGEMM: a CPU
        computing in float32) or "bfloat16" (packed for oneDNN: a CPU computing in bfloat16 natively),
        see packed_weights.py (packing changes the model in place, and it can then only decode); "auto"
        (the packing that applies, if any) or None (SDLS_CPU_WEIGHTS, default auto: what `from_dir`
        passes). Beside float16 weights the KV cache is stored as bfloat16 (packed_weights.cache_dtype)."""
        from ..heap import release_freed_memory

        self.cfg: ModelConfig = model.cfg
        self.device = torch.device(device)
        self.dtype = dtype or (torch.bfloat16 if self.device.type == "cuda" else torch.float32)
        self.model = model.to(device=self.device, dtype=self.dtype).eval()
        self.weights = resolve_weights(weights, self.device, self.dtype)
        if self.weights in PACKED_CHOICES:
            if fast_path:
                raise ValueError(
                    f"the fast path fuses the model's matrices, which packed {self.weights} weights do not expose"
                )
            fast_path = False
            pack_model(self.model, self.weights)
            release_freed_memory()  # the plain matrices just dropped (heap.py)
        self.tokenizer = tokenizer
        self.name = name
        self.max_batch, self.max_context, self.max_new_tokens = max_batch, max_context, max_new_tokens
        cfg = self.cfg
        if tokenizer.vocab_size > cfg.vocab_size:
            raise ValueError(f"tokenizer has {tokenizer.vocab_size} tokens but the model only {cfg.vocab_size}")
        n_slots, self.cache_len = cache_plan(cfg, max_batch, n_sessions, max_context, max_new_tokens)
        self.cache = KVCache(cfg, n_slots, self.cache_len, cache_dtype(self.weights, self.dtype), self.device)
        self.pool = SlotPool(cfg, n_slots)
        self.builder = RowBuilder(cfg, tokenizer, self.device, max_context)
        never = {cfg.mask_id, cfg.bos_id, cfg.fim_prefix_id, cfg.fim_suffix_id, cfg.fim_middle_id}
        # Padded vocabularies (Dream, Qwen: 152k rows, ~151.7k tokens) must not sample ids the
        # tokenizer cannot decode.
        never |= set(range(tokenizer.vocab_size, cfg.vocab_size))
        banned = torch.tensor(sorted(i for i in never if i is not None), device=self.device)
        # Which ids end a middle, by a row's stop kind: 0 end tokens; 1 also line breaks (built on first use).
        self.stop_table = torch.zeros((2, cfg.vocab_size), dtype=torch.bool, device=self.device)
        self.stop_table[:, cfg.stop_ids] = True
        self._line_stops_built = False
        self.batch = BatchForward(self.model, self.cache, banned, self._fast_decoder(fast_path))
        self.rule = CommitRule(cfg, self.stop_table)
        # Greedy threshold steps over the cache run whole on static buffers, as CUDA graphs on a GPU
        # (graph_step.py). On wherever the fast decoder is, unless graph=False; without CUDA the
        # buffers are used uncaptured (the same code, for tests).
        self.graph = None
        if self.batch.fast is not None and (graph if graph is not None else self.device.type == "cuda"):
            from .graph_step import GraphSteps

            self.graph = GraphSteps(self.batch.fast, self.cache, banned, self.stop_table, capture=True)
        self.counters = DecodeCounters()
        self.infill_kind, self.edit_kind = InfillKind(self), EditKind(self)

    def _fast_decoder(self, fast_path: bool | None):
        """Steps that are a pure block over the cache (most of them) can run on FastDecoder: fused
        weights, device-side lengths, Triton kernels on CUDA. On by default on CUDA only."""
        if not (fast_path if fast_path is not None else self.device.type == "cuda"):
            return None
        from ..fast_path import FastDecoder, unsupported_reason

        # Qwen3's q/k norms are not fused, and a shifted model's block is predicted from the row
        # before it, which the fast step does not feed: those models take the plain path.
        if unsupported_reason(self.cfg) is None and not self.cfg.logit_shift:
            return FastDecoder(self.model)
        return None

    @classmethod
    def from_dir(
        cls,
        path: str | Path | None = None,
        *,
        device: str = "cpu",
        dtype: torch.dtype | str | None = None,
        weights: str | None = None,
        **kwargs,
    ) -> Engine:
        """dtype: a torch dtype, a name ("auto" picks per device, see precision.py) or None (float32
        on a CPU, bfloat16 on a GPU). weights: as in Engine; None reads SDLS_CPU_WEIGHTS (default
        auto: packed float16 on a CPU computing in float32)."""
        from ..checkpoint import default_model_dir, load_checkpoint
        from ..precision import resolve_dtype

        if isinstance(dtype, str):
            dtype = resolve_dtype(dtype, device)
        path = Path(path) if path is not None else default_model_dir()
        _cfg, model, tokenizer = load_checkpoint(path, device=device, dtype=dtype)
        return cls(model, tokenizer, device=device, dtype=dtype, name=str(path), weights=weights, **kwargs)

    # -- what the engine holds ----------------------------------------------------------------
    @property
    def fast(self):
        return self.batch.fast

    @property
    def slots(self):
        return self.pool.slots

    @property
    def busy(self) -> set[int]:
        return self.pool.busy

    @property
    def sessions(self):
        return self.pool.sessions

    def idle_slots(self) -> int:
        """How many more jobs fit beside the rows being decoded now."""
        return self.pool.idle()

    def weight_bytes(self) -> int:
        """Bytes the model's weights take here: its parameters and any packed matrices."""
        params = sum(p.numel() * p.element_size() for p in self.model.parameters())
        return params + packed_weight_bytes(self.model)

    def memory_need(self, job: InfillJob | EditJob) -> int:
        """Bytes `job` may need on this engine, estimated from its lengths (job_memory.py)."""
        element = torch.empty((), dtype=self.dtype).element_size()
        return job_need_bytes(self.cfg, job, self.max_context, self.max_new_tokens, element)

    def describe(self) -> dict:
        cfg = self.cfg
        return {
            "model": self.name,
            "family": cfg.family,
            "parameters": cfg.num_parameters(),
            "device": str(self.device),
            "dtype": str(self.dtype).replace("torch.", ""),
            "weights": WEIGHT_LABELS[self.weights],
            "cache_dtype": str(self.cache.k.dtype).replace("torch.", ""),
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

    def decode_stats(self) -> dict:
        """Step counters since start-up: steps, host reads, steps per forward path, and the graph
        path's state (captured shapes, replays, and why it fell back to eager, if it did)."""
        c = self.counters
        graph = self.graph.stats() if self.graph is not None else {"mode": "off", "reason": self._graph_off_reason()}
        return {"steps": c.steps, "host_reads": c.host_reads, "paths": dict(c.by_path), "graph": graph}

    def _graph_off_reason(self) -> str:
        if self.batch.fast is None:
            return "no fast decoder (a CPU engine, a shifted model, or q/k norms)"
        return "turned off (graph=False, or not on CUDA)"

    # -- public entry points ------------------------------------------------------------------
    @torch.inference_mode()
    def run(
        self,
        jobs: list[InfillJob | EditJob],
        between_steps: Callable[[], None] | None = None,
        on_step: Callable[[StepEvent], None] | None = None,
    ) -> list[JobResult]:
        """Run jobs, in batches of up to max_batch sharing every forward; results in job order.

        between_steps, if given, is called after every denoising step. It may run other jobs on
        this engine (`run` again, without a hook): that is how a long rewrite lets an inline
        completion through. The nested jobs take other cache slots, so neither changes the other's
        tokens; `idle_slots` says how many jobs fit beside the running ones.
        on_step, if given, gets a StepEvent per job per step (what the step committed, in order)."""
        for i, job in enumerate(jobs):
            if not isinstance(job, (InfillJob, EditJob)):
                raise TypeError(f"job {i} is a {type(job).__name__}, expected InfillJob or EditJob")
        results: list[JobResult] = []
        for lo in range(0, len(jobs), self.max_batch):
            results += self._run_batch(jobs[lo : lo + self.max_batch], between_steps, on_step)
        return results

    @torch.inference_mode()
    def doubt(self, text: str, start: int, end: int, threshold: float = 0.1) -> list[tuple[int, int, float]]:
        """Character spans inside text[start:end] whose tokens the model finds unlikely (p < threshold)."""
        job = EditJob(text, start, end, edit_threshold=threshold, max_rounds=0)
        with self.pool.leased([job]) as (slot,):
            region = self.tokenizer.encode(text[start:end])
            kind = DoubtKind(self, threshold, self._token_offsets(region), start)
            row = self._edit_row(job, slot, kind)
            try:
                self._drive([row], None, None)
            finally:
                self.pool.release(row)
        return row.spans

    # -- set-up -------------------------------------------------------------------------------
    def _run_batch(self, jobs: list, between_steps, on_step) -> list[JobResult]:
        started = time.perf_counter()
        rows: list[Row] = []
        with self.pool.leased(jobs) as slots:
            try:
                for job, slot in zip(jobs, slots):
                    rows.append(
                        self._infill_row(job, slot) if isinstance(job, InfillJob) else self._edit_row(job, slot)
                    )
                self._drive(rows, between_steps, on_step)
            finally:
                for row in rows:
                    self.pool.release(row)
        ms = (time.perf_counter() - started) * 1000
        return [row.kind.result(row, ms) for row in rows]  # type: ignore[attr-defined]

    def _infill_row(self, job: InfillJob, slot: int) -> Row:
        blk = self.builder.block_size(job.settings)
        max_new = min(job.max_new_tokens, self.max_new_tokens)
        if max_new < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {job.max_new_tokens}")
        policy = self.builder.policy(job.settings)
        mask = self.cfg.mask_id
        heal = healed_tail(job.prefix)
        prefix = job.prefix[: len(job.prefix) - len(heal)]
        row = self.builder.row(job, self.infill_kind, policy, blk, prefix, job.suffix, ([mask] * max_new, mask), slot)
        row.heal = heal
        if job.single_line:
            self._build_line_stops()
            row.stop_kind = 1
        self.pool.reuse_context(row, job.session)
        self.infill_kind.begin(row)
        return row

    def _edit_row(self, job: EditJob, slot: int, kind=None) -> Row:
        cfg = self.cfg
        if not 0 <= job.start <= job.end <= len(job.text):
            raise ValueError(f"edit region {job.start}..{job.end} is outside the text (length {len(job.text)})")
        blk = self.builder.block_size(job.settings)
        region = self.tokenizer.encode(job.text[job.start : job.end])
        if len(region) > self.max_new_tokens:
            raise ValueError(
                f"edit region is {len(region)} tokens; at most {self.max_new_tokens} can be revised at once"
            )
        # Room to grow: the region, an end token, and at least 8 spare end tokens, in whole blocks.
        middle = list(region) if cfg.infill_layout == "in_place" else region + [cfg.eos_id] * (1 + 8)
        policy = "exact" if self.builder.policy(job.settings) == "exact" else "none"
        kind = kind or self.edit_kind
        prefix, suffix = job.text[: job.start], job.text[job.end :]
        row = self.builder.row(job, kind, policy, blk, prefix, suffix, (middle, cfg.eos_id), slot)
        row.region = region
        row.marked = self._marked_tokens(job, region)
        self.pool.reuse_context(row, job.session)
        kind.begin(row)
        return row

    def _build_line_stops(self) -> None:
        """End tokens plus every token whose text holds a line break (computed once)."""
        if not self._line_stops_built:
            decode = self.tokenizer.decode
            breaks = [i for i in range(self.tokenizer.vocab_size) if "\n" in decode([i])]
            self.stop_table[1, breaks] = True
            self._line_stops_built = True

    def _marked_tokens(self, job: EditJob, region: list[int]) -> set[int]:
        """Indices of the region tokens that overlap a marked character span."""
        offsets = self._token_offsets(region)
        spans = [(s - job.start, e - job.start) for s, e in job.marked]
        return {k for k in range(len(region)) for s, e in spans if offsets[k] < e and offsets[k + 1] > s}

    def _token_offsets(self, tokens: list[int]) -> list[int]:
        """Character offset where each token starts (and the total length at the end)."""
        return [len(self.tokenizer.decode(tokens[:k])) for k in range(len(tokens) + 1)]

    # -- the step loop ------------------------------------------------------------------------
    def _drive(self, rows: list[Row], between_steps, on_step) -> None:
        """Step every unfinished row until all are done: infill, edit and doubt rows alike."""
        while True:
            self._check_cancels(rows)
            active = [r for r in rows if not r.done]
            if not active:
                return
            wanted = [self._predicted_offsets(r) for r in active]
            statuses = self._step(active, wanted)
            for row, at, st in zip(active, wanted, statuses):
                before = row.block_tokens()
                bs, phase = row.bs, row.phase
                row.kind.after_step(row, st)  # type: ignore[attr-defined]
                if on_step is not None:
                    committed = tuple(
                        (bs + j, t) for j, (a, t) in enumerate(zip(before, st.tokens)) if a == self.cfg.mask_id != t
                    )
                    on_step(StepEvent(row.job, phase, bs, row.ctx_len, tuple(at), committed))
            if between_steps is not None:
                between_steps()

    def _check_cancels(self, rows: list[Row]) -> None:
        """The one cancel check: a cancelled row stops before its next forward."""
        for row in rows:
            cancel = row.job.cancel
            if not row.done and cancel is not None and cancel.cancelled:
                row.done = row.cancelled = True

    def _predicted_offsets(self, row: Row) -> list[int]:
        """Block offsets the next forward predicts: the open masks, or the whole block to score it."""
        return row.open if row.phase == DENOISE else list(range(row.blk))

    def _step(self, rows: list[Row], wanted: list[list[int]]) -> list[Status]:
        """One forward for the rows, the commit rule on the device, and the step's one read."""
        if self.graph is not None and self.graph.serves(rows):
            for row in rows:
                row.stats.forwards += 1
            values = self.graph(rows).flatten().tolist()  # the step's one read
            self.counters.host_reads += 1
            self._count("graph" if self.graph.capture and self.graph.counters.fallback is None else "static")
            w = rows[0].blk + FLAGS
            return [Status.parse(values[b * w : (b + 1) * w], row) for b, row in enumerate(rows)]
        self._count("fast" if self.batch.fast_eligible(rows) else "plain")
        logits = self.batch(rows, wanted)
        vectors = []
        for row, row_logits, at in zip(rows, logits, wanted):
            probs = None
            if row.phase == DENOISE:
                self.rule.denoise(row, row_logits, at)
            else:
                probs = self.rule.score(row, row_logits, row.kind.remask_below(row))  # type: ignore[attr-defined]
            vectors.append(self.rule.status(row, probs))
        widths = [Status.width(r) for r in rows]
        values = torch.cat(vectors).tolist()  # the step's one device-to-host read, for the whole batch
        self.counters.host_reads += 1
        statuses, offset = [], 0
        for row, width in zip(rows, widths):
            statuses.append(Status.parse(values[offset : offset + width], row))
            offset += width
        return statuses

    def _count(self, path: str) -> None:
        self.counters.steps += 1
        self.counters.by_path[path] += 1

    # -- what the kinds ask of the engine ------------------------------------------------------
    def block_committed(self, row: Row) -> None:
        """Streaming hook: hand the job's `on_block` (if any) the text of its middle committed so far,
        in whole blocks. It runs on the engine thread between steps, so it must be quick."""
        hook = row.job.on_block
        if hook is None:
            return
        end = row.stop_at if row.stop_at is not None else min(row.be, row.mid_end)
        never = {self.cfg.mask_id, *self.cfg.stop_ids}
        tokens = [t for t in row.tokens[row.ctx_len : end] if t not in never]
        if isinstance(row.job, InfillJob):
            tokens = tokens[: row.job.max_new_tokens]
        hook(without_tail(self.tokenizer.decode(tokens), row.heal))

    def answer_tokens(self, row: Row, end: int) -> list[int]:
        never = {self.cfg.mask_id, *self.cfg.stop_ids}
        return [t for t in row.tokens[row.ctx_len : end] if t not in never]
