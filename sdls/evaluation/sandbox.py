"""Run untrusted programs (model output + HumanEval tests) in a sandboxed subprocess.

Layers, each enough on its own for what it guards:
- a fresh temporary directory is the child's cwd, HOME and TMPDIR, and is deleted afterwards;
- resource limits set in the child before the program runs: CPU seconds, address space, file size;
- a wall-clock limit enforced here: the child's whole process group is killed;
- a Python audit hook in the child (sandbox_child.py) that refuses sockets, new processes, ctypes,
  and any write, delete, rename or mkdir outside the temporary directory;
- `unshare -n` (a network namespace with no interfaces) where the machine allows it.
The child runs `python -I -S -B`: no site-packages, no environment, no bytecode written.
"""

from __future__ import annotations

import math
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

CHILD_SOURCE = (Path(__file__).with_name("sandbox_child.py")).read_text()
STATUSES = ("passed", "failed", "timeout", "memory", "blocked", "crashed")


@dataclass(frozen=True)
class Limits:
    seconds: float = 10.0  # wall clock for the whole program (interpreter start included)
    memory_mb: int = 1024  # address space
    output_kb: int = 1024  # stdout / stderr files


@dataclass(frozen=True)
class Outcome:
    status: str  # one of STATUSES
    detail: str  # the exception, the refused event, the signal; "" when passed
    seconds: float

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@lru_cache(maxsize=1)
def network_namespace_prefix() -> tuple[str, ...]:
    """The command prefix that gives the child an empty network namespace, or () where none works."""
    for prefix in (("unshare", "-n"), ("unshare", "-rn")):
        try:
            done = subprocess.run([*prefix, "true"], capture_output=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0:
            return prefix
    return ()


def isolation(use_netns: bool = True, audit: bool = True) -> dict:
    """What protects a run on this machine (printed with every report)."""
    return {
        "audit_hook": audit,
        "network_namespace": " ".join(network_namespace_prefix()) if use_netns else "",
        "rlimits": ["cpu", "address space", "file size"],
        "temp_dir": True,
    }


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return data[-limit:].decode("utf-8", "replace")


def _classify(returncode: int | None, killed: bool, out: str, err: str, nonce: str) -> tuple[str, str]:
    blocked = [line for line in err.splitlines() if line.startswith("SANDBOX-BLOCKED ")]
    if blocked:
        return "blocked", blocked[0].removeprefix("SANDBOX-BLOCKED ")
    if killed or returncode == -signal.SIGXCPU:
        return "timeout", "killed at the time limit" if killed else "CPU limit"
    lines = out.rstrip("\n").splitlines()
    if returncode == 0 and lines and lines[-1] == nonce:
        return "passed", ""
    raised = [
        line.removeprefix("SANDBOX-EXCEPTION ") for line in err.splitlines() if line.startswith("SANDBOX-EXCEPTION ")
    ]
    if raised and raised[0] == "MemoryError":
        return "memory", "MemoryError"
    if returncode is not None and returncode < 0:
        name = (
            signal.Signals(-returncode).name if -returncode in signal.Signals._value2member_map_ else str(-returncode)
        )
        return "crashed", f"signal {name}"
    if raised:
        last = [line for line in err.strip().splitlines() if line and not line.startswith("SANDBOX-")]
        return "failed", last[-1] if last else raised[0]
    return "failed", f"exit status {returncode} without the pass marker"


def run_program(source: str, limits: Limits = Limits(), use_netns: bool = True, audit: bool = True) -> Outcome:
    """Run one program; it passes iff it runs to the end without an exception inside the limits."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sdls-eval-") as tmp:
        root = Path(tmp)
        (root / "program.py").write_text(source, encoding="utf-8")
        nonce = "SDLS-PASSED-" + secrets.token_hex(8)
        argv = [
            *(network_namespace_prefix() if use_netns else ()),
            sys.executable,
            "-I",
            "-S",
            "-B",
            "-c",
            CHILD_SOURCE,
            "program.py",
            nonce,
            str(math.ceil(limits.seconds) + 1),
            str(limits.memory_mb * 2**20),
            str(limits.output_kb * 1024),
            str(root),
            "1" if audit else "0",
        ]
        env = {"PATH": "/usr/bin:/bin", "HOME": str(root), "TMPDIR": str(root), "LANG": "C.UTF-8"}
        killed = False
        with open(root / "stdout", "wb") as out, open(root / "stderr", "wb") as err:
            proc = subprocess.Popen(
                argv, cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True
            )
            try:
                proc.wait(timeout=limits.seconds)
            except subprocess.TimeoutExpired:
                killed = True
            finally:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)  # the group: nothing the program started survives
                except ProcessLookupError:
                    pass
                proc.wait()
        status, detail = _classify(
            None if killed else proc.returncode, killed, _tail(root / "stdout"), _tail(root / "stderr"), nonce
        )
    return Outcome(status, detail, time.perf_counter() - start)


def run_programs(sources: list[str], limits: Limits = Limits(), workers: int | None = None, **kwargs) -> list[Outcome]:
    """Run many programs in parallel (threads wait on subprocesses); outcomes in input order."""
    if not sources:
        return []
    workers = workers or max(2, os.cpu_count() or 2)
    with ThreadPoolExecutor(max_workers=min(workers, len(sources))) as pool:
        return list(pool.map(lambda s: run_program(s, limits, **kwargs), sources))
