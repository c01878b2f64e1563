"""`sdls bench service`: N simulated editors typing at 10 keystrokes/s against the local worker, `sdls
service`, and Ray Serve with one and with two replicas, side by side in one run (loopback only).

Each editor types lines of a standard-library file back in, as `bench lsp` does, but drives the model
backend directly, the way `sdls serve` does: every keystroke cancels the editor's request in flight
(newest wins) and sends the infill job `complete_at` would. Worker targets go through WorkerClient
(msgpack over a Unix socket), HTTP targets through ServiceClient (the language server's remote
backend). Every engine runs with the same threads. Figures: latency of answered requests, answered
and cancelled, tokens/s answered, job steps/s (denoising steps summed over the jobs that took part,
cancelled ones included: the engine work done), jobs per engine call (batch occupancy), resident
memory per replica.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdls_model.jobs import DecodeSettings, InfillJob

DEFAULT_FILES = ("textwrap.py", "json/decoder.py", "shlex.py", "calendar.py")
TARGETS = ("worker", "service", "ray1", "ray2")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--editors", type=int, default=4, help="simulated editors typing at once")
    parser.add_argument("--lines", type=int, default=3, help="lines each editor types")
    parser.add_argument("--rate", type=float, default=10.0, help="keystrokes per second per editor")
    parser.add_argument("--pause", type=float, default=0.5, help="seconds of rest after each line")
    parser.add_argument("--targets", nargs="*", default=list(TARGETS), choices=TARGETS)
    parser.add_argument("--model", default=None, help="checkpoint directory (default: the shipped model)")
    parser.add_argument("--max-tokens", type=int, default=32, help="new tokens per single-line completion")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per engine (each replica, the worker)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")


# -- what the editors type ------------------------------------------------------------------------
@dataclass
class Keystroke:
    text: str  # the document after the keystroke
    offset: int  # the cursor


def typing_lines(text: str, count: int) -> list[int]:
    """Evenly spaced indented code lines of 12-80 characters (not comments or docstring text)."""
    lines = text.split("\n")
    good = [
        i
        for i, line in enumerate(lines)
        if i > 5
        and line.startswith(" ")
        and 12 <= len(line.strip()) <= 80
        and not line.strip().startswith(("#", '"', "'"))
        and '"""' not in line
    ]
    step = max(1, len(good) // (count + 1))
    return [good[min(len(good) - 1, step * (k + 1))] for k in range(count)] if good else []


def keystrokes(text: str, line_no: int) -> list[Keystroke]:
    """The line's code deleted, then typed back one character at a time."""
    lines = text.split("\n")
    line = lines[line_no]
    indent = line[: len(line) - len(line.lstrip())]
    start = sum(len(x) + 1 for x in lines[:line_no]) + len(indent)
    code = line[len(indent) :]
    before, after = text[:start], text[start + len(code) :]
    return [Keystroke(before + code[:k] + after, start + k) for k in range(1, len(code) + 1)]


def infill_job(stroke: Keystroke, session: str, max_tokens: int) -> InfillJob:
    """The job complete_at sends: 3000 characters before the cursor, 1000 after, one line."""
    prefix = stroke.text[max(0, stroke.offset - 3000) : stroke.offset]
    suffix = stroke.text[stroke.offset : stroke.offset + 1000]
    return InfillJob(prefix, suffix, max_tokens, DecodeSettings(threshold=0.9), session=session, single_line=True)


# -- one editor -----------------------------------------------------------------------------------
@dataclass
class Tally:
    sent: int = 0
    answered: int = 0
    cancelled: int = 0
    failed: int = 0
    tokens: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def _settle(task: asyncio.Task, sent_at: float, tally: Tally) -> None:
    try:
        result = await task
    except asyncio.CancelledError:
        tally.cancelled += 1
        return
    except Exception as exc:
        tally.failed += 1
        tally.errors.append(str(exc)[:200])
        return
    tally.answered += 1
    tally.tokens += len(result.tokens)
    tally.latencies_ms.append((time.perf_counter() - sent_at) * 1e3)


async def editor(backend: Any, name: str, text: str, lines: list[int], args, tally: Tally) -> None:
    session = f"file:///bench/{name}"
    for line_no in lines:
        in_flight: asyncio.Task | None = None
        watchers = []
        for stroke in keystrokes(text, line_no):
            if in_flight is not None and not in_flight.done():
                in_flight.cancel()  # newest wins, as the language server does
            sent_at = time.perf_counter()
            in_flight = asyncio.ensure_future(backend.run(infill_job(stroke, session, args.max_tokens), "inline"))
            tally.sent += 1
            watchers.append(asyncio.ensure_future(_settle(in_flight, sent_at, tally)))
            await asyncio.sleep(1 / args.rate)
        await asyncio.gather(*watchers)
        await asyncio.sleep(args.pause)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


# -- targets --------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _model_args(args) -> list[str]:
    return ["--model", args.model] if args.model else []


@contextlib.asynccontextmanager
async def worker_target(args, tmp: Path):
    from sdls.worker.client import WorkerClient

    sock = tmp / "w.sock"
    cmd = [sys.executable, "-m", "sdls", "worker", "--socket", str(sock), "--threads", str(args.threads), "--no-watch"]
    proc = subprocess.Popen([*cmd, *_model_args(args)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    clients = [WorkerClient(sock, start_timeout_s=120) for _ in range(args.editors)]
    try:
        for _ in range(1200):
            if sock.exists():
                break
            await asyncio.sleep(0.1)
        yield clients, lambda: _worker_stats(clients[0])
    finally:
        for client in clients:
            await client.close()
        proc.terminate()
        proc.wait(10)


async def _worker_stats(client) -> list[dict]:
    stats = await client.stats()
    return [{"pid": stats["pid"], "lanes": stats["lanes"], "rss_mb": stats["rss_mb"]}]


@contextlib.asynccontextmanager
async def service_target(args, tmp: Path):
    from .client import ServiceClient

    port = _free_port()
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp)}  # its token file, not the user's
    cmd = [sys.executable, "-m", "sdls", "service", "--port", str(port), "--threads", str(args.threads)]
    proc = subprocess.Popen([*cmd, *_model_args(args)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        await _wait_healthy(url, proc)
        clients = [ServiceClient(url) for _ in range(args.editors)]
        yield clients, lambda: _service_stats(url, 1)
        for client in clients:
            await client.close()
    finally:
        proc.terminate()
        proc.wait(10)


async def _wait_healthy(url: str, proc: subprocess.Popen | None = None, timeout_s: float = 300) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"the service exited with status {proc.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(url + "/health")).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


async def _service_stats(url: str, replicas: int, headers: dict | None = None) -> list[dict]:
    """One stats answer per replica (Ray routes each request to a replica of its choice: ask until all answered)."""
    import httpx

    seen: dict[int, dict] = {}
    async with httpx.AsyncClient(headers=headers) as http:
        for _ in range(20 * replicas):
            data = (await http.get(url + "/sdls/v1/stats")).json()
            for model in data["models"].values():
                seen[data["pid"]] = {"pid": data["pid"], "lanes": model["lanes"], "rss_mb": model["rss_mb"]}
            if len(seen) >= replicas:
                break
    return list(seen.values())


@contextlib.asynccontextmanager
async def ray_target(args, tmp: Path, replicas: int):
    from . import ray_app
    from .client import ServiceClient

    port = _free_port()
    ray_app.start("127.0.0.1", port, num_cpus=2, _temp_dir=str(tmp / "ray"), log_to_driver=False)
    try:
        build_args = {"num_replicas": replicas, "num_cpus": 0.5, "threads": args.threads, "require_token": False}
        if args.model:
            build_args["models"] = {"sdls": args.model}
        ray_app.deploy(build_args)
        url = f"http://127.0.0.1:{port}"
        await _wait_healthy(url)
        clients = [ServiceClient(url) for _ in range(args.editors)]
        yield clients, lambda: _service_stats(url, replicas)
        for client in clients:
            await client.close()
    finally:
        ray_app.stop()


def open_target(name: str, args, tmp: Path):
    if name == "worker":
        return worker_target(args, tmp)
    if name == "service":
        return service_target(args, tmp)
    return ray_target(args, tmp, int(name[-1]))


# -- a run ----------------------------------------------------------------------------------------
def _engine_counts(stats: list[dict]) -> tuple[int, int, int]:
    """Inline jobs run, engine calls, forward passes: summed over replicas."""
    lanes = [s["lanes"]["inline"] for s in stats]
    return sum(x["jobs"] for x in lanes), sum(x["batches"] for x in lanes), sum(x["forwards"] for x in lanes)


async def run_target(name: str, args, files: list[tuple[str, str]]) -> dict:
    with tempfile.TemporaryDirectory(prefix="sdls-bench-", dir="/tmp") as tmp:
        async with open_target(name, args, Path(tmp)) as (clients, stats):
            warm = InfillJob("def warm(x):\n    return ", "\n", 8)
            await asyncio.gather(*(c.run(warm) for c in clients))  # every engine loaded and every client connected
            jobs0, calls0, forwards0 = _engine_counts(await stats())
            tally = Tally()
            started = time.perf_counter()
            await asyncio.gather(
                *(
                    editor(client, f"editor{i}/{fname}", text, typing_lines(text, args.lines), args, tally)
                    for i, (client, (fname, text)) in enumerate(zip(clients, files))
                )
            )
            wall = time.perf_counter() - started
            after = await stats()
    jobs1, calls1, forwards1 = _engine_counts(after)
    return {
        "target": name,
        "replicas": len(after),
        "editors": args.editors,
        "sent": tally.sent,
        "answered": tally.answered,
        "cancelled": tally.cancelled,
        "failed": tally.failed,
        "errors": tally.errors[:3],
        "p50_ms": round(percentile(tally.latencies_ms, 50), 1),
        "p95_ms": round(percentile(tally.latencies_ms, 95), 1),
        "tokens_per_s": round(tally.tokens / wall, 1),
        "job_steps_per_s": round(
            (forwards1 - forwards0) / wall, 1
        ),  # denoising steps summed over jobs, cancelled ones too
        "jobs_per_engine_call": round((jobs1 - jobs0) / (calls1 - calls0), 2) if calls1 > calls0 else 0.0,
        "rss_mb_per_replica": [round(s["rss_mb"]) for s in after],
        "wall_s": round(wall, 1),
    }


def report(rows: list[dict], args) -> str:
    head = (
        f"{args.editors} editors typing at {args.rate:g} keystrokes/s, {args.lines} lines each, "
        f"{args.max_tokens}-token single-line jobs, {args.threads} torch thread(s) per engine\n\n"
        "| target | answered / sent | cancelled | p50 / p95 ms | tokens/s answered | job steps/s | jobs per engine call "
        "| MB per replica |\n|---|---|---|---|---|---|---|---|\n"
    )
    names = {"worker": "local worker (Unix socket)", "service": "sdls service (uvicorn)"}
    body = ""
    for r in rows:
        name = names.get(r["target"], f"Ray Serve, {r['target'][-1]} replica(s)")
        memory = " + ".join(str(m) for m in r["rss_mb_per_replica"])
        failed = f" ({r['failed']} failed: {r['errors'][0]})" if r["failed"] else ""
        body += (
            f"| {name} | {r['answered']} / {r['sent']}{failed} | {r['cancelled']} | {r['p50_ms']} / {r['p95_ms']} "
            f"| {r['tokens_per_s']} | {r['job_steps_per_s']} | {r['jobs_per_engine_call']} | {memory} |\n"
        )
    return head + body


def run(args: argparse.Namespace) -> int:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    texts = [(name, (stdlib / name).read_text(encoding="utf-8")) for name in DEFAULT_FILES]
    files = [texts[i % len(texts)] for i in range(args.editors)]
    rows = []
    for name in args.targets:
        if name.startswith("ray"):
            try:
                from . import ray_app  # noqa: F401
            except ImportError:
                print(f"{name}: skipped (pip install sdls[cluster] for Ray Serve)", file=sys.stderr)
                continue
        print(f"{name}: running", file=sys.stderr, flush=True)
        with contextlib.redirect_stdout(sys.stderr):  # Ray's own messages must not mix with the table
            rows.append(asyncio.run(run_target(name, args, files)))
    print(json.dumps(rows, indent=2) if args.json else report(rows, args))
    return 0
