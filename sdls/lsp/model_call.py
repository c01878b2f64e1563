"""One model call, the core's unit of work: who runs it, how it decodes, how much it may send and
write, whether its result is checked; and the rule that a result belongs to the text it was computed for.

Every core feature (`complete_at`, `resolve_offer`, `propose_fixup`, `sdls complete` / `sdls fix`)
takes one `ModelCall`, built from the server's settings by `ModelCall.from_settings`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from sdls.syntax import SyntaxDocument
from sdls_model.jobs import DecodeSettings, JobResult

from .settings import Settings


class Backend(Protocol):
    """What runs jobs: WorkerClient (a worker process) or InProcessBackend (the engine in this process)."""

    async def run(self, job: Any, lane: str = "inline") -> JobResult: ...
    async def doubt(self, text: str, start: int, end: int) -> list[tuple[int, int, float]]: ...


@dataclass(frozen=True)
class Budget:
    before: int = 3000  # characters of context sent before the cursor or region
    after: int = 1000  # characters of context sent after it
    max_tokens: int = 256  # new tokens for a region (code actions, fix-ups)
    line_tokens: int = 32  # new tokens for a single-line inline completion
    block_tokens: int = 128  # new tokens for a multi-line inline completion
    max_rounds: int = 4  # re-mask rounds of an edit job


@dataclass(frozen=True)
class ModelCall:
    backend: Backend
    decode: DecodeSettings = field(default_factory=DecodeSettings)
    budget: Budget = field(default_factory=Budget)
    validate: bool = True  # drop changes that add syntax errors (fixes must remove some)
    edit_threshold: float = 0.1  # edit jobs re-mask tokens the model gives less than this probability

    @classmethod
    def from_settings(cls, settings: Settings, backend: Backend) -> ModelCall:
        c, a = settings.completion, settings.actions
        return cls(
            backend,
            decode=DecodeSettings(rule="threshold", threshold=c.threshold, block_size=c.block_size),
            budget=Budget(
                before=c.prefix_chars,
                after=c.suffix_chars,
                max_tokens=a.max_tokens,
                line_tokens=c.max_tokens,
                block_tokens=c.max_tokens_multiline,
                max_rounds=a.max_rounds,
            ),
            validate=a.validate,
            edit_threshold=a.edit_threshold,
        )


class JobCancelled(Exception):
    """The engine stopped the job because its token fired."""


class DocumentChanged(Exception):
    """The document changed while the model worked: the result belongs to a text that is gone."""


def ensure_current(document: Any, version: int, digest: str | None = None) -> None:
    """Refuse a result computed for `version` of `document` (anything with a `.version`; None: closed)
    once the document has moved on: its offsets index a text that is gone. With `digest` (a code
    action's or fix-up's, echoed by the client) the text itself must be the one it was made on."""
    if document is None:
        raise DocumentChanged("the document is not open any more; result dropped")
    if document.version != version:
        raise DocumentChanged(
            f"the document changed while the model worked (version {version} is gone); result dropped"
        )
    if digest is not None and document.digest != digest:
        raise DocumentChanged(f"the text at version {version} is not the one this was made for; result dropped")


async def run_job(call: ModelCall, job: Any, lane: str, doc: SyntaxDocument) -> JobResult:
    """call.backend.run, refusing a result for a document that changed meanwhile or a job that was cancelled."""
    version = doc.version
    result = await call.backend.run(job, lane)
    ensure_current(doc, version)
    if result.cancelled:
        raise JobCancelled(f"the {lane} job was cancelled")
    return result
