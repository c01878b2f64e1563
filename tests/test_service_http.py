"""The service's HTTP discipline on a gated engine: the token, body and concurrency limits, JSON errors,
sdls's job endpoint (streamed block by block), and cancellation when the client disconnects."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat

import httpx
import pytest
from service_harness import GatedEngine, LiveService

from sdls.service.app import ServiceConfig
from sdls.service.auth import is_loopback, load_or_create_token
from sdls.service.served_model import ServedModel
from sdls.worker.client import JobRefused
from sdls.worker.inprocess import InProcessBackend
from sdls_model.jobs import DecodeSettings, InfillJob

TOKEN = "s3cret-" + "x" * 25
INFILL_JOB = {
    "kind": "infill",
    "prefix": "def f(x):\n    return ",
    "suffix": "\n",
    "max_new_tokens": 16,
    "settings": {},
    "session": None,
    "single_line": False,
}


def live(engine=None, **config) -> tuple[LiveService, ServedModel]:
    model = ServedModel("gated", engine or GatedEngine(free_blocks=99))
    return LiveService([model], ServiceConfig(**{"token": TOKEN, "require_token": False, **config})), model


def raw_request(port: int, path: str, body: dict) -> socket.socket:
    """Send a POST and leave the connection open (the test closes it to disconnect)."""
    data = json.dumps(body).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    sock.sendall(head.encode() + data)
    return sock


# -- the token ------------------------------------------------------------------------------------
def test_the_token_file_is_created_once_private_and_reused(tmp_path):
    path = tmp_path / "cfg" / "sdls" / "service-token"
    token = load_or_create_token(path)
    assert len(token) >= 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_or_create_token(path) == token


def test_a_token_file_others_can_read_or_a_link_is_refused(tmp_path):
    path = tmp_path / "token"
    path.write_text("y" * 40)
    os.chmod(path, 0o644)
    with pytest.raises(PermissionError, match="chmod 600"):
        load_or_create_token(path)
    os.chmod(path, 0o600)
    link = tmp_path / "link"
    link.symlink_to(path)
    with pytest.raises(PermissionError, match="not a regular file"):
        load_or_create_token(link)


def test_loopback_addresses():
    assert all(map(is_loopback, ["127.0.0.1", "::1", "localhost", "127.5.0.1"]))
    assert not any(map(is_loopback, ["0.0.0.0", "192.168.1.4", "::", "example.com"]))


def test_a_required_token_is_checked_on_every_model_route_but_not_on_health():
    service, model = live(require_token=True)
    with service, httpx.Client(base_url=service.url) as http:
        assert http.get("/health").json() == {"status": "ok"}
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic " + TOKEN}):
            response = http.post("/sdls/v1/jobs", json={"job": INFILL_JOB}, headers=headers)
            assert response.status_code == 401
            assert response.json()["error"]["type"] == "authentication_error"
        assert http.get("/v1/models").status_code == 401
        good = {"Authorization": f"Bearer {TOKEN}"}
        model.engine.gate.set()
        assert http.get("/v1/models", headers=good).json()["data"][0]["id"] == "gated"
        assert http.post("/sdls/v1/jobs", json={"job": INFILL_JOB}, headers=good).status_code == 200


def test_without_a_required_token_llama_vims_empty_bearer_is_served():
    service, model = live()
    model.engine.gate.set()
    with service, httpx.Client(base_url=service.url) as http:
        assert http.post("/sdls/v1/jobs", json={"job": INFILL_JOB}).status_code == 200


# -- limits and errors ----------------------------------------------------------------------------
def test_bodies_past_the_limit_are_a_413_whether_announced_or_streamed():
    service, _ = live(max_body_bytes=1000)
    with service, httpx.Client(base_url=service.url) as http:
        big = json.dumps({"job": {**INFILL_JOB, "prefix": "x" * 2000}}).encode()
        assert http.post("/sdls/v1/jobs", content=big).status_code == 413
        chunked = http.post("/sdls/v1/jobs", content=iter([big[:600], big[600:]]))  # no Content-Length
        assert chunked.status_code == 413
        assert chunked.json()["error"]["code"] == 413


@pytest.mark.parametrize(
    "content, status, words",
    [
        (b"{not json", 400, "not JSON"),
        (b"[1, 2]", 400, "JSON object"),
        (b"\xff\xfe{}", 400, "not"),
        (b"[" * 100_000, 400, "deeply"),
        (json.dumps({"job": {**INFILL_JOB, "kind": "poem"}}).encode(), 400, "kind"),
        (json.dumps({"job": {**INFILL_JOB, "max_new_tokens": "lots"}}).encode(), 400, "max_new_tokens"),
        (json.dumps({"job": {**INFILL_JOB, "settings": {"rule": "magic"}}}).encode(), 400, "rule"),
        (json.dumps({"lane": "fast", "job": INFILL_JOB}).encode(), 400, "lane"),
    ],
)
def test_bad_requests_get_a_json_400_that_says_what_is_wrong(content, status, words):
    service, _ = live()
    with service, httpx.Client(base_url=service.url) as http:
        response = http.post("/sdls/v1/jobs", content=content)
        assert response.status_code == status
        assert words in response.json()["error"]["message"]


def test_unknown_routes_and_methods_answer_json():
    service, _ = live()
    with service, httpx.Client(base_url=service.url) as http:
        assert http.get("/nowhere").json()["error"]["code"] == 404
        assert http.get("/infill").json()["error"]["code"] == 405


def test_with_several_models_the_model_field_or_the_multiplex_header_picks_one():
    a, b = GatedEngine(blocks=1, free_blocks=99), GatedEngine(blocks=2, free_blocks=99)
    service = LiveService([ServedModel("a", a), ServedModel("b", b)], ServiceConfig(token=TOKEN, require_token=False))
    with service, httpx.Client(base_url=service.url) as http:
        assert http.post("/sdls/v1/jobs", json={"job": INFILL_JOB}).json()["result"]["text"] == "b0 "  # the first
        assert http.post("/sdls/v1/jobs", json={"job": INFILL_JOB, "model": "b"}).json()["result"]["text"] == "b0 b1 "
        routed = http.post("/sdls/v1/jobs", json={"job": INFILL_JOB}, headers={"serve_multiplexed_model_id": "b"})
        assert routed.json()["result"]["text"] == "b0 b1 "
        missing = http.post("/v1/completions", json={"model": "c", "prompt": "x"})
        assert missing.status_code == 404 and "a, b" in missing.json()["error"]["message"]


def test_past_max_in_flight_a_request_gets_a_503_and_the_first_is_still_served():
    engine = GatedEngine(free_blocks=1)
    service, _model = live(engine, max_in_flight=1)
    with service:
        first = raw_request(service.port, "/sdls/v1/jobs", {"job": INFILL_JOB})
        assert engine.holding.wait(10)
        with httpx.Client(base_url=service.url) as http:
            busy = http.post("/sdls/v1/jobs", json={"job": INFILL_JOB})
            assert busy.status_code == 503 and busy.json()["error"]["type"] == "unavailable_error"
            engine.gate.set()
            reply = first.recv(65536).decode()
            assert reply.startswith("HTTP/1.1 200")
            first.close()
            # Its admission was given back: the next request is served.
            assert http.post("/sdls/v1/jobs", json={"job": INFILL_JOB}).status_code == 200


# -- the job endpoint -----------------------------------------------------------------------------
def test_a_job_streams_one_event_per_committed_block_then_its_result():
    engine = GatedEngine(blocks=3, free_blocks=99)
    service, _ = live(engine)
    with service, httpx.Client(base_url=service.url) as http:
        with http.stream("POST", "/sdls/v1/jobs", json={"job": INFILL_JOB, "stream": True}) as response:
            lines = [line for line in response.iter_lines() if line]
        events = [(lines[i][7:], json.loads(lines[i + 1][6:])) for i in range(0, len(lines), 2)]
        assert [name for name, _ in events] == ["block", "block", "block", "result"]
        assert [data["text"] for _, data in events[:3]] == ["b0 ", "b0 b1 ", "b0 b1 b2 "]
        assert events[-1][1]["result"]["text"] == "b0 b1 b2 "
        whole = http.post("/sdls/v1/jobs", json={"job": INFILL_JOB}).json()
        assert whole["result"]["text"] == "b0 b1 b2 " and whole["result"]["cancelled"] is False


def test_doubt_model_and_stats():
    service, _model = live()
    with service, httpx.Client(base_url=service.url) as http:
        assert http.post("/sdls/v1/doubt", json={"text": "abc", "start": 1, "end": 3}).json() == {
            "spans": [[1, 2, 0.05]]
        }
        assert http.post("/sdls/v1/doubt", json={"text": "abc", "start": 2, "end": 9}).status_code == 400
        assert http.get("/sdls/v1/model").json()["model"] == "gated"
        stats = http.get("/sdls/v1/stats").json()["models"]["gated"]
        assert stats["lanes"]["inline"]["jobs"] == 0 and stats["queued"] == {"inline": 0, "rewrite": 0}
        assert stats["rss_mb"] > 0


def test_every_answer_names_the_process_that_served_it():
    service, _model = live()
    with service, httpx.Client(base_url=service.url) as http:
        served_by = http.get("/sdls/v1/stats").json()["served_by"]
        assert served_by == f"{socket.gethostname()}:{os.getpid()}"  # LiveService runs the app in this process
        answers = [
            http.get("/health"),
            http.post("/infill", json={"input_prefix": "x = ", "n_predict": 4}),
            http.post("/infill", content=b"not json"),  # error answers name it too
            http.get("/no/such/route"),
            http.post("/v1/completions", json={"prompt": "x = ", "max_tokens": 4, "stream": True}),
        ]
        assert [a.headers["sdls-served-by"] for a in answers] == [served_by] * 5


# -- what one job may cost ------------------------------------------------------------------------
MB = 1024 * 1024


class MeasuredEngine(GatedEngine):
    """A gated engine whose jobs need 1 MB per token of block size (the real estimate, job_memory.py,
    grows with it too): what the service's budget is checked against."""

    def memory_need(self, job) -> int:
        return MB * (job.settings.block_size or 4)


def budgeted(budget_mb: int) -> tuple[LiveService, ServedModel, MeasuredEngine]:
    engine = MeasuredEngine(free_blocks=99)
    model = ServedModel("gated", engine, memory_budget=budget_mb * MB)
    return LiveService([model], ServiceConfig(token=TOKEN, require_token=False)), model, engine


def test_a_job_over_the_memory_budget_is_a_400_before_the_engine_sees_it_and_others_are_served():
    service, _model, engine = budgeted(10)
    big = {**INFILL_JOB, "settings": {"block_size": 64}}  # 64 MB by the engine's estimate
    with service, httpx.Client(base_url=service.url) as http:
        for body in ({"job": big}, {"job": big, "stream": True}):
            refused = http.post("/sdls/v1/jobs", json=body)
            assert refused.status_code == 400 and refused.headers["content-type"].startswith("application/json")
            message = refused.json()["error"]["message"]
            assert "about 64 MB" in message and "memory budget of 10 MB" in message
            assert "sdls service --memory-budget-mb" in message
        assert engine.batches == []  # nothing was allocated for them
        assert http.post("/sdls/v1/jobs", json={"job": INFILL_JOB}).status_code == 200
        assert engine.batches == [1]


def test_the_completion_routes_keep_the_budget_too_streamed_or_not():
    service, _model, engine = budgeted(2)  # below even a default job's 4 MB: every completion is refused
    with service, httpx.Client(base_url=service.url) as http:
        answers = [
            http.post("/infill", json={"input_prefix": "x = ", "n_predict": 4}),
            http.post("/infill", json={"input_prefix": "x = ", "n_predict": 4, "stream": True}),
            http.post("/v1/completions", json={"prompt": "x = ", "max_tokens": 4}),
            http.post("/v1/completions", json={"prompt": "x = ", "max_tokens": 4, "stream": True}),
        ]
        assert [a.status_code for a in answers] == [400] * 4
        assert all("memory budget of 2 MB" in a.json()["error"]["message"] for a in answers)
        assert engine.batches == []


def test_the_in_process_backend_refuses_a_job_over_its_budget_alone():
    engine = MeasuredEngine(free_blocks=99)
    backend = InProcessBackend(engine, memory_budget=10 * MB)
    big = InfillJob("x = ", "", 4, DecodeSettings(block_size=64))

    async def both():
        with pytest.raises(JobRefused, match="memory budget of 10 MB"):
            await backend.run(big)
        return await backend.run(InfillJob("x = ", "", 4))

    try:
        assert asyncio.run(both()).text == "b0 b1 b2 b3 "
    finally:
        backend.scheduler.stop()
    assert engine.batches == [1]
    unbudgeted = InProcessBackend(MeasuredEngine(free_blocks=99))
    try:
        assert unbudgeted.refusal(big) is None
    finally:
        unbudgeted.scheduler.stop()


# -- cancellation on disconnect -------------------------------------------------------------------
@pytest.mark.parametrize(
    "path, body",
    [
        ("/sdls/v1/jobs", {"job": INFILL_JOB}),
        ("/sdls/v1/jobs", {"job": INFILL_JOB, "stream": True}),
        ("/infill", {"input_prefix": "x = ", "n_predict": 16}),
        ("/v1/completions", {"prompt": "x = ", "max_tokens": 16}),
        ("/v1/fim/completions", {"prompt": "x = ", "suffix": "\n", "stream": True}),
    ],
)
def test_a_client_that_disconnects_cancels_its_job_at_the_next_step(path, body):
    engine = GatedEngine(blocks=4, free_blocks=1)
    service, _model = live(engine)
    with service:
        sock = raw_request(service.port, path, body)
        assert engine.holding.wait(10)  # the job is mid-decoding, held after its first block
        sock.close()
        # Only the service's cancellation releases the engine (the gate stays shut).
        assert engine.cancel_seen.wait(10)
        with httpx.Client(base_url=service.url) as http:
            lanes = http.get("/sdls/v1/stats").json()["models"]["gated"]["lanes"]
        assert lanes["inline"]["cancelled"] == 1
        assert lanes["inline"]["forwards_wasted"] == 1  # one block of four was decoded
