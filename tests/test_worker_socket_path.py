"""`worker.socket` naming something that is not a socket (from settings or didChangeConfiguration, i.e.
from a repository's own editor settings): refused with a clear error, and the user's file, folder or
link survives byte for byte. Only a dead socket sdls could have made is removed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from raw_lsp import ServerProcess, serve_argv

from sdls.worker.paths import UnsafeSocketPath, check_socket_path, log_path_for, removable_stale_socket
from sdls.worker.socket_server import WorkerServer

CONTENT = b"the user's notes\n\x00\xff binary too\n"


def _snapshot(folder: Path) -> dict[str, tuple[str, bytes]]:
    """Every entry under `folder`: its kind and its bytes (or link target)."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            found[str(path)] = ("link", os.readlink(path).encode())
        elif path.is_dir():
            found[str(path)] = ("dir", b"")
        else:
            found[str(path)] = ("file", path.read_bytes())
    return found


@pytest.fixture
def user_things(short_tmp_dir: Path) -> dict[str, Path]:
    notes = short_tmp_dir / "notes.txt"
    notes.write_bytes(CONTENT)
    (short_tmp_dir / "notes.txt.log").write_bytes(b"my own log\n")  # where the worker's log used to go
    (short_tmp_dir / "notes.txt.lock").write_bytes(b"my own lock file\n")
    folder = short_tmp_dir / "project"
    folder.mkdir()
    (folder / "keep.py").write_text("x = 1\n")
    link = short_tmp_dir / "link"
    link.symlink_to(notes)
    return {"file": notes, "directory": folder, "symlink": link}


@pytest.mark.parametrize("kind", ["file", "directory", "symlink"])
def test_the_worker_refuses_a_socket_path_that_is_not_a_socket(user_things, short_tmp_dir, kind):
    before = _snapshot(short_tmp_dir)
    path = user_things[kind]
    server = WorkerServer(scheduler=None, describe=dict, socket_path=path)  # type: ignore[arg-type]
    with pytest.raises(UnsafeSocketPath, match="never replaces it"):
        server._claim_socket()
    proc = subprocess.run(
        [sys.executable, "-m", "sdls", "worker", "--socket", str(path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2 and "never replaces it" in proc.stderr
    assert _snapshot(short_tmp_dir) == before


@pytest.mark.parametrize("kind", ["file", "directory", "symlink"])
def test_a_socket_setting_from_the_editor_never_touches_the_users_file(user_things, short_tmp_dir, kind):
    before = _snapshot(short_tmp_dir)
    proc = ServerProcess(serve_argv())
    try:
        client = proc.client
        client.initialize({"worker": {"socket": str(user_things[kind])}})
        uri = "file:///sock/a.py"
        client.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": "def f(x):\n    return \n"}},
        )
        params = {"textDocument": {"uri": uri}, "position": {"line": 1, "character": 11}, "context": {"triggerKind": 1}}
        answer = client.call("textDocument/inlineCompletion", params)
        assert "never replaces it" in answer["error"]["message"], answer
        assert proc.alive()
    finally:
        proc.close()
    assert _snapshot(short_tmp_dir) == before


@pytest.mark.parametrize("kind", ["file", "directory", "symlink"])
def test_a_socket_setting_changed_later_is_refused_before_anything_looks_at_it(user_things, short_tmp_dir, kind):
    """A configuration change is what a repository's own settings can send: worker.socket is taken
    only at start-up (settings.STARTUP_ONLY), so the change is refused and the user told."""
    before = _snapshot(short_tmp_dir)
    proc = ServerProcess(serve_argv())
    try:
        client = proc.client
        client.initialize({})
        client.notify("workspace/didChangeConfiguration", {"settings": {"worker": {"socket": str(user_things[kind])}}})
        assert client.barrier()["result"]["settings"]["worker"]["socket"] is None
        told = [n["params"]["message"] for n in client.notifications if n["method"] == "window/showMessage"]
        assert any("worker.socket" in m and "refused" in m for m in told), told
    finally:
        proc.close()
    assert _snapshot(short_tmp_dir) == before


def _dead_socket(path: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(str(path))  # closed without unlinking: what a killed worker leaves


def test_only_a_dead_socket_in_a_private_folder_counts_as_stale(short_tmp_dir):
    private = short_tmp_dir / "private"
    private.mkdir(mode=0o700)
    _dead_socket(private / "w.sock")
    assert removable_stale_socket(private / "w.sock")
    check_socket_path(private / "w.sock")  # a socket is acceptable
    shared = short_tmp_dir / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    _dead_socket(shared / "w.sock")
    assert not removable_stale_socket(shared / "w.sock")
    server = WorkerServer(scheduler=None, describe=dict, socket_path=shared / "w.sock")  # type: ignore[arg-type]
    with pytest.raises(UnsafeSocketPath, match="did not make"):
        server._claim_socket()
    assert (shared / "w.sock").is_socket()


def test_the_worker_log_is_kept_away_from_a_configured_path(short_tmp_dir):
    log = log_path_for(short_tmp_dir / "w.sock")
    assert short_tmp_dir not in log.parents and log.parent.stat().st_mode & 0o077 == 0
