"""Cache slots: which slot a job decodes in, which document's context a slot keeps warm.

A slot is leased for the rows of one `run`; slots in use are `busy`, so a job run between another
job's steps (the scheduler's inline lane) takes others. A document (`session`) keeps its slot,
least recently used first out, and a later job of the same document reuses the longest exact
prefix of its encoded context.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

from ..cache import SlotState
from ..config import ModelConfig
from ..layout import block_origin, reusable_length
from .rows import Row


class SlotPool:
    def __init__(self, cfg: ModelConfig, n_slots: int):
        self.cfg = cfg
        self.slots = [SlotState() for _ in range(n_slots)]
        self.busy: set[int] = set()  # slots of rows being decoded (a nested run must not take them)
        self.sessions: OrderedDict[str, int] = OrderedDict()  # LRU: session key -> slot

    def idle(self) -> int:
        return len(self.slots) - len(self.busy)

    @contextmanager
    def leased(self, jobs: list) -> Iterator[list[int]]:
        """Cache slots for `jobs`, marked busy until the `with` block ends (so a job run between their
        steps cannot take them), whether it ends normally or not."""
        slots = self._lease(jobs)
        try:
            yield slots
        finally:
            self.busy.difference_update(slots)

    def _lease(self, jobs: list) -> list[int]:
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

    def reuse_context(self, row: Row, session: str | None) -> None:
        """Start the row's cache at the longest exact prefix of its context the slot already holds."""
        state = self.slots[row.slot]
        context = row.tokens[: row.ctx_len]
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

    def release(self, row: Row) -> None:
        """Record what the row left in its slot (from the host canvas: no read)."""
        state = self.slots[row.slot]
        if row.policy == "exact" and state.owner is not None:
            state.tokens = row.tokens[: row.written]
            state.exact_len = min(row.written, row.ctx_len)
            state.block_origin = block_origin(self.cfg, row.ctx_len)
        else:
            state.tokens, state.exact_len = [], 0
