"""LSP framing: the decoder alone (every case fed whole and byte by byte), then the same bad framing
sent to the real `sdls serve` stdio by a raw client: the request after the bad frame is answered,
the bad one too where its id can be read, and no announced length is ever allocated."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from raw_lsp import ServerProcess, frame, serve_argv

from sdls.lsp.framing import MAX_BODY_BYTES, Frame, FrameDecoder, Refused
from sdls.lsp.jsonrpc_checks import read_id

EXAMPLES = int(os.environ.get("SDLS_FUZZ_EXAMPLES", "400"))


def _body(msg_id: int) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": msg_id, "method": "sdls/stats"}).encode()


# name -> (the bad bytes around a request's body; whether that request is served (True), answered
# with an error (False) or lost (None: there is no id to read))
CASES = {
    "lower-case header": (lambda b: b"content-length: %d\r\n\r\n" % len(b) + b, True),
    "no space after the colon": (lambda b: b"Content-Length:%d\r\n\r\n" % len(b) + b, True),
    "LF-only line ends": (lambda b: b"Content-Length: %d\n\n" % len(b) + b, True),
    "Content-Type first": (
        lambda b: b"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\nContent-Length: %d\r\n\r\n" % len(b) + b,
        True,
    ),
    "a length too long": (lambda b: b"Content-Length: %d\r\n\r\n" % (len(b) + 9) + b, True),
    "a length too short": (lambda b: b"Content-Length: %d\r\n\r\n" % (len(b) - 3) + b, False),
    "a negative length": (lambda b: b"Content-Length: -5\r\n\r\n" + b, False),
    "a non-numeric length": (lambda b: b"Content-Length: abc\r\n\r\n" + b, False),
    "no Content-Length": (lambda b: b"Content-Type: x\r\n\r\n" + b, False),
    "a 10^14 length": (lambda b: b"Content-Length: 100000000000000\r\n\r\n" + b, False),
    "a 2^31 length": (lambda b: b"Content-Length: 2147483648\r\n\r\n" + b, False),
    # A message cut short: what follows its cut is the request, served (a regression: it was lost).
    "a header block cut short": (lambda b: b"Content-Length: 90\r\n" + frame(b), True),
    "a header block cut short at its name": (lambda b: b"Content-Length:\n" + frame(b), True),
    "a body cut short": (lambda b: b'Content-Length: 500\r\n\r\n{"jsonrpc": ' + frame(b), True),
    "a body cut short inside the next header": (lambda b: b'Content-Length: 15\r\n\r\n{"a": ' + frame(b), True),
    "a blank line after garbage": (lambda b: b"\x00\n\n" + frame(b), True),
    "a bad length just before a header": (lambda b: b"Content-Length: abc\r\n\r\n" + frame(b), True),
    "4 KB of unframed garbage": (lambda b: b"\x00garbage, no line end " * 200, None),
    "garbage lines": (lambda b: b"hello world\r\n" * 20, None),
}


def _decode(data: bytes, step: int) -> list:
    decoder = FrameDecoder()
    out = []
    for i in range(0, len(data), step):
        out += decoder.feed(data[i : i + step])
    return out + decoder.close()


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("step", [1, 5, 1 << 20], ids=["byte by byte", "5 bytes", "at once"])
def test_the_message_after_bad_framing_is_decoded(name, step):
    make, served = CASES[name]
    items = _decode(make(_body(1)) + frame(_body(2)), step)
    frames = [json.loads(i.body) for i in items if isinstance(i, Frame) and i.body.endswith(b"}")]
    assert frames[-1]["id"] == 2  # the next message, whatever came before
    first = [i for i in items if isinstance(i, Frame) and i.body.startswith(b"{") and read_id(i.body) == 1]
    refused = [i for i in items if isinstance(i, Refused) and read_id(i.body) == 1]
    if served is True:
        assert [json.loads(f.body)["id"] for f in first] == [1] and not refused
    elif served is False:
        assert len(first) + len(refused) == 1  # its id can be read: it will be answered once
    else:
        assert not first and not refused


_VALID = frame(_body(777))
_BAD_HEADERS = st.sampled_from(
    [b"Content-Length: ", b"content-length:", b"Content-Length: abc", b"Content-Length: -1", b"X: y"]
    + [b"Content-Length: 99999999999999", b"Content-Length: 3", b"Content-Length: 90", b"Content-Type: x"]
)
_LINE_ENDS = st.sampled_from([b"", b"\r", b"\n", b"\r\n", b"\n\n", b"\r\n\r\n"])
_GARBAGE = st.lists(
    st.binary(max_size=40)
    | st.builds(bytes.__add__, _BAD_HEADERS, _LINE_ENDS)
    | st.builds(lambda n: _VALID[:n], st.integers(0, len(_VALID))),  # a message cut short
    max_size=6,
).map(b"".join)


@settings(max_examples=EXAMPLES, deadline=None)
@given(_GARBAGE, st.sampled_from([1, 3, 7, 1 << 20]))
def test_any_bad_bytes_then_a_valid_message_yields_that_message(garbage, step):
    """Whatever came before (garbage, a bad or cut header, a cut body), a whole message is served
    as soon as its bytes are in, before the input ends."""
    decoder = FrameDecoder()
    data = garbage + _VALID
    items = []
    for i in range(0, len(data), step):
        items += decoder.feed(data[i : i + step])
    assert Frame(_body(777)) in items


def test_an_announced_length_is_never_allocated():
    decoder = FrameDecoder()
    assert decoder.feed(b"Content-Length: 100000000000000\r\n\r\n") == []
    for _ in range(64):
        decoder.feed(b"x" * 65536)
    assert decoder.buffered_peak < 200_000  # 4 MB of body went by; only a tail was ever held
    items = decoder.feed(frame(_body(2)))
    assert isinstance(items[0], Refused) and f"over the {MAX_BODY_BYTES} byte limit" in items[0].reason
    assert json.loads(items[-1].body)["id"] == 2


@pytest.fixture(scope="module")
def server():
    proc = ServerProcess(serve_argv())
    proc.client.initialize({"worker": {"spawn": False}})
    yield proc
    proc.close()


@pytest.mark.parametrize("name", CASES)
def test_sdls_serve_answers_after_bad_framing(server, name):
    make, served = CASES[name]
    client = server.client
    before = client.barrier()["result"]["rss_mb"]
    msg_id = 10_000 + list(CASES).index(name)
    client.send_bytes(make(_body(msg_id)))
    after = client.call("sdls/stats")  # the next request is served
    assert server.alive() and after["result"]["rss_mb"] < before + 50
    if served is not None:
        answer = client.wait_for(msg_id)
        assert ("result" in answer) is served, answer
        assert len(client.answers[msg_id]) == 1
