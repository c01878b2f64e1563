"""The real `openai` client (3.51) against /v1/completions and /v1/fim/completions on the shipped model."""

from __future__ import annotations

import json

import httpx
import pytest
from service_harness import LiveService, shipped_model

from sdls.service.app import ServiceConfig

openai = pytest.importorskip("openai")

TOKEN = "tok-" + "z" * 28
PROMPT, SUFFIX = "def add(a, b):\n    return ", "\n\nprint(add(1, 2))\n"


@pytest.fixture(scope="module")
def service():
    model = shipped_model()
    with LiveService([model], ServiceConfig(token=TOKEN, require_token=True)) as live:
        yield live
    model.close()


@pytest.fixture
def client(service):
    with openai.OpenAI(base_url=service.url + "/v1", api_key=TOKEN, max_retries=0) as c:
        yield c


def test_completions_with_a_suffix(client):
    completion = client.completions.create(model="sdls", prompt=PROMPT, suffix=SUFFIX, max_tokens=24)
    assert completion.object == "text_completion" and completion.model == "sdls"
    choice = completion.choices[0]
    assert isinstance(choice.text, str) and choice.finish_reason in ("stop", "length")
    usage = completion.usage
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens and usage.prompt_tokens > 0


def test_a_streamed_completion_adds_up_to_the_whole_one(client):
    whole = client.completions.create(model="sdls", prompt=PROMPT, suffix=SUFFIX, max_tokens=24).choices[0]
    chunks = list(client.completions.create(model="sdls", prompt=PROMPT, suffix=SUFFIX, max_tokens=24, stream=True))
    assert "".join(c.choices[0].text for c in chunks) == whole.text
    assert chunks[-1].choices[0].finish_reason == whole.finish_reason
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])


def test_stop_strings_and_several_prompts(client):
    whole = client.completions.create(model="sdls", prompt=PROMPT, suffix=SUFFIX, max_tokens=24).choices[0].text
    if whole:
        stopped = client.completions.create(model="sdls", prompt=PROMPT, suffix=SUFFIX, max_tokens=24, stop=[whole[-1]])
        assert stopped.choices[0].text == whole[: whole.index(whole[-1])]
        assert stopped.choices[0].finish_reason == "stop"
    many = client.completions.create(model="sdls", prompt=[PROMPT, "x = "], max_tokens=8)
    assert [c.index for c in many.choices] == [0, 1]


def test_fim_completions_answer_in_mistrals_chat_shape(client):
    body = {"model": "codestral-latest", "prompt": PROMPT, "suffix": SUFFIX, "max_tokens": 24, "stop": ["\n\n"]}
    answer = client.post("/fim/completions", cast_to=object, body=body)
    message = answer["choices"][0]["message"]
    assert message["role"] == "assistant" and isinstance(message["content"], str)
    assert "\n\n" not in message["content"]
    assert answer["model"] == "codestral-latest" and answer["usage"]["prompt_tokens"] > 0


def test_streamed_fim_sends_deltas_and_done(service):
    body = {"prompt": PROMPT, "suffix": SUFFIX, "max_tokens": 24, "stream": True}
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with (
        httpx.Client(base_url=service.url) as http,
        http.stream("POST", "/v1/fim/completions", json=body, headers=headers) as response,
    ):
        data = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    streamed = "".join(c["choices"][0]["delta"]["content"] for c in chunks)
    whole = httpx.post(service.url + "/v1/fim/completions", json={**body, "stream": False}, headers=headers).json()
    assert streamed == whole["choices"][0]["message"]["content"]
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")


def test_the_client_sees_a_wrong_key_and_a_bad_request_as_api_errors(service, client):
    bad = openai.OpenAI(base_url=service.url + "/v1", api_key="wrong", max_retries=0)
    with bad, pytest.raises(openai.AuthenticationError):
        bad.completions.create(model="sdls", prompt="x")
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model="sdls", prompt="x", logprobs=2)
    assert "logprobs" in str(err.value)
