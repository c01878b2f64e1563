"""A live `sdls service` app on a loopback port (uvicorn in a thread) and a gated test engine.

The gated engine lets a test hold a job in the middle of its decoding (after its first block) until
the test releases it or the job is cancelled, so disconnect and admission tests need no sleeps.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import uvicorn

from sdls.service.app import ServiceConfig, build_app
from sdls.service.models import LoadedModels
from sdls.service.served_model import ServedModel
from sdls_model.jobs import EditJob, JobResult, JobStats, TextEdit


class LiveService:
    """The app on 127.0.0.1:<free port>, served by uvicorn exactly as `sdls service` serves it."""

    def __init__(self, models: list[ServedModel], config: ServiceConfig | None = None):
        self.models = LoadedModels(models)
        self.config = config or ServiceConfig(token="t" * 32, require_token=False)
        app = build_app(self.models, self.config)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False))
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve(sockets=[self.sock])), daemon=True)

    def __enter__(self) -> LiveService:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the service did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


class CharTokenizer:
    def encode(self, text: str) -> list[int]:
        return [ord(c) for c in text]


class GatedEngine:
    """Infill jobs write `blocks` blocks, one per step ("b0 ", "b1 ", ...), reporting each to on_block.
    After `free_blocks` blocks every job waits, checking its CancelToken, until `gate` is set."""

    max_new_tokens = 64
    max_context = 256

    def __init__(self, blocks: int = 4, free_blocks: int = 1):
        self.blocks, self.free_blocks = blocks, free_blocks
        self.tokenizer = CharTokenizer()
        self.gate = threading.Event()
        self.holding = threading.Event()  # a job is waiting at the gate
        self.cancel_seen = threading.Event()
        self.batches: list[int] = []
        self.sessions: list[str | None] = []

    def describe(self) -> dict:
        return {"model": "gated", "device": "cpu", "block_size": 3}

    def idle_slots(self) -> int:
        return 8

    def run(self, jobs, between_steps=None):
        self.batches.append(len(jobs))
        self.sessions += [job.session for job in jobs]
        texts = [""] * len(jobs)
        steps = [0] * len(jobs)
        for block in range(self.blocks):
            live = [i for i, job in enumerate(jobs) if not job.cancel.cancelled]
            if not live:
                break
            for i in live:
                texts[i] += f"b{block} "
                steps[i] += 1
                if jobs[i].on_block is not None:
                    jobs[i].on_block(texts[i])
            if block + 1 == self.free_blocks:
                self.holding.set()
                deadline = time.monotonic() + 20  # a test that forgets the gate fails, never hangs
                while not self.gate.is_set() and not all(j.cancel.cancelled for j in jobs):
                    assert time.monotonic() < deadline, "nothing released the gated engine"
                    self.gate.wait(0.005)
        results = []
        for job, text, n in zip(jobs, texts, steps):
            cancelled = job.cancel.cancelled
            if cancelled:
                self.cancel_seen.set()
            stats = JobStats(forwards=n, tokens_committed=len(text), ms=1.0, context_tokens=10, encoded_tokens=10)
            if isinstance(job, EditJob):
                results.append(JobResult(text, [1] * len(text), stats, cancelled, [TextEdit(job.start, job.end, text)]))
            else:
                results.append(JobResult(text, [1] * len(text), stats, cancelled))
        return results

    def doubt(self, text, start, end):
        return [(start, min(end, start + 1), 0.05)]


def shipped_model(name: str = "sdls") -> ServedModel:
    return ServedModel.load(name, None, max_context=512)
