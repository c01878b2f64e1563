"""Job kinds: what a step means for an infill, an edit or a doubt pass, decided on the host from the
row's status after the step (no device reads here).

Every kind drives its rows through the same loop (engine.py): a row's next forward either denoises
the open positions of its block (`DENOISE`) or scores the block's tokens (`SCORE`); after it the
kind updates the row (next block, next round, done) from the `Status` the step read.
- infill: denoise block by block; the middle ends at its first end token once everything before it
  is committed, or at its last block.
- edit: per block, denoise its masks (the marked spans), score every token, re-mask the doubted
  ones, and repeat until the block stops changing or the rounds run out.
- doubt: score each block once and report the region's unlikely tokens.
"""

from __future__ import annotations

from typing import Protocol

from ..jobs import EditJob, InfillJob, JobResult, minimal_edits
from .commit import Status
from .healing import without_tail
from .rows import DENOISE, SCORE, Row, RowBuilder


class Host(Protocol):
    """What a kind needs from the engine."""

    builder: RowBuilder

    def block_committed(self, row: Row) -> None: ...

    def answer_tokens(self, row: Row, end: int) -> list[int]: ...


class InfillKind:
    def __init__(self, host: Host):
        self.host = host

    def remask_below(self, row: Row) -> float | None:
        return None  # infills never score

    def begin(self, row: Row) -> None:
        self.host.builder.start_block(row)

    def after_step(self, row: Row, st: Status) -> None:
        row.tokens[row.bs : row.be] = st.tokens
        row.step += 1
        if st.ended:
            row.stop_at, row.done = row.bs + st.first_stop, True
            self.host.block_committed(row)
            return
        if st.first_open < row.blk:
            row.open = self.host.builder.open_offsets(row)
            return
        self.host.block_committed(row)
        if row.be >= row.mid_end:
            row.done = True
            return
        row.bs = row.be
        self.host.builder.start_block(row)

    def result(self, row: Row, ms: float) -> JobResult:
        assert isinstance(row.job, InfillJob)
        end = row.stop_at if row.stop_at is not None else row.mid_end
        tokens = [t for t in row.tokens[row.ctx_len : end] if t != self.host.builder.cfg.mask_id]
        tokens = tokens[: row.job.max_new_tokens]
        row.stats.tokens_committed = len(tokens) + (row.stop_at is not None)
        row.stats.ms = ms
        text = without_tail(self.host.builder.tokenizer.decode(tokens), row.heal)
        return JobResult(text, tokens, row.stats, row.cancelled)


class EditKind:
    def __init__(self, host: Host):
        self.host = host

    def remask_below(self, row: Row) -> float | None:
        assert isinstance(row.job, EditJob)
        return row.job.edit_threshold

    @property
    def cfg(self):
        return self.host.builder.cfg

    def begin(self, row: Row) -> None:
        """Start the row's current block: re-mask the marked tokens, first round."""
        mask = self.cfg.mask_id
        forced = [j for j in range(row.blk) if row.bs - row.ctx_len + j in row.marked]
        if forced:
            for j in forced:
                row.tokens[row.bs + j] = mask
            block = row.seq[row.bs : row.be]
            block[forced] = mask  # a host index list: no read
        row.round, row.before = 0, None
        self._start_round(row)

    def _start_round(self, row: Row) -> None:
        self.host.builder.start_block(row)
        row.phase = DENOISE
        if not row.open:
            self._denoised(row, unchanged=False)

    def after_step(self, row: Row, st: Status) -> None:
        row.tokens[row.bs : row.be] = st.tokens
        if row.phase == DENOISE:
            row.step += 1
            row.open = self.host.builder.open_offsets(row)
            if not row.open:
                self._denoised(row, st.unchanged)
            return
        # A score step re-masked the doubted tokens on the device; st.tokens shows which.
        if st.first_open >= row.blk:  # nothing doubted
            self._finish_block(row)
            return
        row.stats.rounds += 1
        row.round += 1
        self._start_round(row)

    def _denoised(self, row: Row, unchanged: bool) -> None:
        """The block has no masks left: score it for another round, or finish it."""
        job = row.job
        assert isinstance(job, EditJob)
        if row.round == job.max_rounds or (row.before is not None and unchanged):
            self._finish_block(row)
        else:
            row.phase = SCORE

    def _finish_block(self, row: Row) -> None:
        stops = set(self.cfg.stop_ids)
        first = next((j for j, t in enumerate(row.block_tokens()) if t in stops), None)
        if first is not None:
            row.stop_at, row.done = row.bs + first, True
        self.host.block_committed(row)
        if row.done:
            return
        row.bs = row.be
        row.done = row.bs >= row.mid_end
        if not row.done:
            self.begin(row)

    def result(self, row: Row, ms: float) -> JobResult:
        job = row.job
        assert isinstance(job, EditJob)
        end = row.stop_at if row.stop_at is not None else row.mid_end
        tokens = self.host.answer_tokens(row, end)
        new_region = self.host.builder.tokenizer.decode(tokens)
        old_region = job.text[job.start : job.end]
        if row.cancelled:
            new_region, tokens = old_region, row.region
        row.stats.tokens_committed = len(tokens)
        row.stats.ms = ms
        return JobResult(new_region, tokens, row.stats, row.cancelled, minimal_edits(old_region, new_region, job.start))


class DoubtKind:
    def __init__(self, host: Host, threshold: float, offsets: list[int], start: int):
        self.host, self.threshold, self.offsets, self.start = host, threshold, offsets, start

    def remask_below(self, row: Row) -> float | None:
        return None  # a doubt pass only reports

    def begin(self, row: Row) -> None:
        row.phase = SCORE
        row.done = row.bs >= row.ctx_len + len(row.region)

    def after_step(self, row: Row, st: Status) -> None:
        for j in range(row.blk):
            k = row.bs - row.ctx_len + j
            if 0 <= k < len(row.region) and st.probs[j] < self.threshold:
                row.spans.append((self.start + self.offsets[k], self.start + self.offsets[k + 1], st.probs[j]))
        row.bs = row.be
        self.begin(row)
