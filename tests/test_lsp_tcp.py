"""`sdls serve --tcp`: one client, holding the token, is served; a port scan, a wrong token or a second
connection neither reaches the served client's session nor ends it."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from raw_lsp import hang_up, tcp_client
from waiting import SAFETY_S, eventually

INIT = {"processId": None, "rootUri": None, "capabilities": {}}


@pytest.fixture
def tcp_server(short_tmp_dir: Path):
    token_file = short_tmp_dir / "tcp.token"
    log = short_tmp_dir / "serve.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sdls", "serve", "--tcp", "0", "--token-file", str(token_file)],
            stdin=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        line = eventually(lambda: re.search(r"listening on 127\.0\.0\.1:(\d+)", log.read_text()), "the listen line")
        yield proc, int(line.group(1)), token_file, log
    finally:
        proc.kill()
        proc.wait(10)


def _initialize(client, token: str | None, msg_id: int = 1) -> dict:
    options = {"worker": {"spawn": False}, **({"tcpToken": token} if token is not None else {})}
    return client.call("initialize", {**INIT, "initializationOptions": options}, msg_id)


def test_the_token_file_is_private_and_the_listen_line_never_shows_the_token(tcp_server):
    _proc, _port, token_file, log = tcp_server
    assert token_file.stat().st_mode & 0o777 == 0o600
    token = token_file.read_text().strip()
    assert len(token) >= 32 and token not in log.read_text()


def test_a_port_scan_and_a_wrong_token_do_not_end_the_session(tcp_server):
    proc, port, token_file, _log = tcp_server
    for _ in range(3):  # connect and close at once, as a port scanner does
        socket.create_connection(("127.0.0.1", port), timeout=SAFETY_S).close()
    wrong, conn = tcp_client(port)
    answer = _initialize(wrong, "not-the-token")
    assert answer["error"]["code"] == -32600 and "unauthenticated" in answer["error"]["message"]
    assert wrong.wait_closed()
    hang_up(conn)
    silent, conn = tcp_client(port)
    answer = silent.call("sdls/stats")  # anything but initialize first
    assert "unauthenticated" in answer["error"]["message"] and silent.wait_closed()
    hang_up(conn)
    assert proc.poll() is None
    editor, conn = tcp_client(port)
    try:
        assert "capabilities" in _initialize(editor, token_file.read_text().strip())["result"]
        assert editor.call("sdls/stats")["result"]["counters"] is not None
    finally:
        hang_up(conn)


def test_a_second_client_is_refused_while_one_is_served(tcp_server):
    proc, port, token_file, _log = tcp_server
    token = token_file.read_text().strip()
    editor, editor_conn = tcp_client(port)
    try:
        assert "capabilities" in _initialize(editor, token)["result"]
        uri = "file:///tcp/secret.py"
        text = "SECRET = 'the first client's code'\n"
        doc = {"uri": uri, "languageId": "python", "version": 1, "text": text}
        editor.notify("textDocument/didOpen", {"textDocument": doc})
        editor.barrier()
        intruder, intruder_conn = tcp_client(port)
        with intruder_conn:
            assert intruder.wait_closed()  # closed at once, whatever it would send
            assert not intruder.answers and not intruder.notifications
        # Even holding the token, a second client is not served while the first is.
        late, late_conn = tcp_client(port)
        with late_conn:
            late.send(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "initialize",
                    "params": {**INIT, "initializationOptions": {"tcpToken": token}},
                }
            )
            assert late.wait_closed() and "result" not in str(late.answers)
        assert editor.call("sdls/stats")["result"]["counters"] is not None  # the editor is still served
        assert proc.poll() is None
    finally:
        hang_up(editor_conn)
    assert proc.wait(SAFETY_S) is not None  # the served client gone: the server ends, as on stdio
