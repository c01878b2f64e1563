"""llama.cpp's /infill as llama.vim and llama.vscode speak it, against the real service and the shipped model.

The llama.vim bodies in tests/data/llama_vim were captured from llama.vim itself; they are sent byte
for byte, and the reply must pass llama.vim's own acceptance test (`^\\s*{` and `"content"\\s*:"`).
"""

from __future__ import annotations

import json
import re
import socket
from http.client import HTTPResponse
from pathlib import Path

import httpx
import pytest
from service_harness import LiveService, shipped_model

from sdls.service.infill_api import extra_context, parse_infill, select_fields

DATA = Path(__file__).parent / "data" / "llama_vim"
FIM_BODY = (DATA / "fim_request.json").read_bytes()
WARMUP_BODY = (DATA / "warmup_request.json").read_bytes()


def curl_post(port: int, body: bytes) -> tuple[int, str]:
    """The request exactly as llama.vim's curl sends it, headers in its order, `Authorization: Bearer `
    with an empty token and a trailing space included (httpx refuses to send that header)."""
    head = (
        f"POST /infill HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n"
        f"Content-Type: application/json\r\nAuthorization: Bearer \r\nContent-Length: {len(body)}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(head.encode() + body)
        response = HTTPResponse(sock)
        response.begin()
        return response.status, response.read().decode()


def llama_vim_accepts(raw: str) -> bool:
    """llama.vim's s:fim_on_response test: `raw =~# '^\\s*{' && raw =~# '\\v"content"\\s*:"'`."""
    return re.match(r"\s*\{", raw) is not None and re.search(r'"content"\s*:"', raw) is not None


@pytest.fixture(scope="module")
def service():
    model = shipped_model()
    with LiveService([model]) as live:
        live.model = model
        yield live
    model.close()


@pytest.fixture
def http(service):
    with httpx.Client(base_url=service.url, timeout=60) as client:
        yield client


def test_the_recorded_llama_vim_request_is_answered_in_a_shape_llama_vim_accepts(service):
    assert len(FIM_BODY) == 625
    status, raw = curl_post(service.port, FIM_BODY)
    assert status == 200, raw
    assert llama_vim_accepts(raw)
    body = json.loads(raw)
    # Exactly the requested fields the service has, flat with the slash kept, as llama.cpp does.
    wanted = json.loads(FIM_BODY)["response_fields"]
    assert set(body) <= set(wanted)
    assert {"content", "truncated", "tokens_cached", "timings/predicted_n", "timings/predicted_ms"} <= set(body)
    assert isinstance(body["content"], str) and body["truncated"] is False


def test_the_python_json_default_would_be_refused_by_llama_vim():
    """Why the service writes compact JSON: `{"content": "x"}` (a space after the colon) is ignored."""
    assert not llama_vim_accepts(json.dumps({"content": "x"}))
    assert llama_vim_accepts('{"content":"x"}')


def test_the_same_request_again_reuses_the_warm_context(http, service):
    first = json.loads(curl_post(service.port, FIM_BODY)[1])
    again = json.loads(curl_post(service.port, FIM_BODY)[1])
    assert again["tokens_cached"] > 0
    assert again["content"] == first["content"]  # reuse is exact: same answer
    body = {**json.loads(FIM_BODY), "cache_prompt": False}
    assert http.post("/infill", json=body).json()["tokens_cached"] == 0


def test_the_warm_up_is_answered_at_once_without_model_work(http, service):
    before = service.model.stats()["lanes"]["inline"]["jobs"]
    status, raw = curl_post(service.port, WARMUP_BODY)
    assert status == 200
    assert json.loads(raw) == {}  # response_fields [""] selects nothing
    assert service.model.stats()["lanes"]["inline"]["jobs"] == before


def test_a_full_answer_has_the_fields_llama_vscode_reads(http):
    body = {"input_prefix": "def add(a, b):\n", "input_suffix": "\n", "prompt": "    return ", "n_predict": 16}
    answer = http.post("/infill", json=body).json()
    assert {"content", "tokens_cached", "truncated", "timings", "stop_type", "model", "tokens_predicted"} <= set(answer)
    timings = answer["timings"]
    assert timings["predicted_n"] == answer["tokens_predicted"] <= 16
    assert answer["stop_type"] in ("eos", "limit")


def test_a_prompt_longer_than_the_context_is_answered_and_marked_truncated(http):
    body = {"input_prefix": "x = 1\n" * 2000, "input_suffix": "\n", "prompt": "y = ", "n_predict": 8}
    answer = http.post("/infill", json=body).json()
    assert answer["truncated"] is True and answer["tokens_evaluated"] <= 512
    assert http.post("/infill", json={**body, "input_prefix": "x = 1\n"}).json()["truncated"] is False


def test_n_cmpl_answers_an_array_of_completions(http):
    body = {"input_prefix": "x = ", "input_suffix": "\n", "prompt": "", "n_predict": 8, "n_cmpl": 3}
    answer = http.post("/infill", json=body).json()
    assert isinstance(answer, list) and [a["index"] for a in answer] == [0, 1, 2]
    assert len({a["content"] for a in answer}) == 1  # greedy decoding: the same text three times


def test_streamed_infill_ends_with_the_whole_answer(http):
    body = {"input_prefix": "def add(a, b):\n", "input_suffix": "\n", "prompt": "    return ", "stream": True}
    with http.stream("POST", "/infill", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1]["stop"] is True and "timings" in events[-1]
    streamed = "".join(e["content"] for e in events[:-1])
    whole = http.post("/infill", json={**body, "stream": False}).json()["content"]
    assert streamed == whole


@pytest.mark.parametrize(
    "body, field",
    [
        ({"input_prefix": 5}, "input_prefix"),
        ({"n_predict": "many"}, "n_predict"),
        ({"n_indent": -1}, "n_indent"),
        ({"temperature": "hot"}, "temperature"),
        ({"stop": [1]}, "stop"),
        ({"input_extra": "x"}, "input_extra"),
        ({"input_extra": [{"filename": "a.py", "text": 3}]}, "text"),
        ({"n_cmpl": 100}, "n_cmpl"),
        ({"response_fields": "content"}, "response_fields"),
    ],
)
def test_bad_fields_are_a_400_naming_the_field(http, body, field):
    response = http.post("/infill", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and field in error["message"]


def test_input_extra_becomes_commented_excerpts_before_the_prefix():
    chunks = [
        {"filename": "util.py", "text": "def helper():\n    pass", "time": [257, -807561920]},
        {"filename": "lib.rs", "text": "fn x() {}\n"},
        {"filename": "empty.py", "text": ""},
    ]
    assert extra_context(chunks) == "# util.py:\ndef helper():\n    pass\n\n// lib.rs:\nfn x() {}\n\n"

    class Model:
        max_new_tokens = 64

    req = parse_infill({"input_extra": chunks[:1], "input_prefix": "a\n", "prompt": "b"}, Model())
    assert req.prefix == "# util.py:\ndef helper():\n    pass\n\na\nb"


def test_response_fields_pick_nested_values_under_their_path():
    body = {"content": "x", "timings": {"predicted_n": 3}, "tokens_cached": 0}
    assert select_fields(body, ["content", "timings/predicted_n", "timings/prompt_ms", "nope", ""]) == {
        "content": "x",
        "timings/predicted_n": 3,
    }
    assert select_fields(body, None) is body
