"""The service on Ray Serve: a local Ray instance on the CPU (2 CPUs), two replicas of the shipped model,
two multiplexed model ids, the same HTTP API through Ray's proxy, real clients (openai, llama.vim's body)."""

from __future__ import annotations

import json
import socket
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

pytest.importorskip("ray.serve")
openai = pytest.importorskip("openai")

TOKEN = "ray-" + "r" * 28
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FIM_BODY = (Path(__file__).parent / "data" / "llama_vim" / "fim_request.json").read_bytes()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def url():
    from sdls.service import ray_app

    port = free_port()
    ray_app.start("127.0.0.1", port, num_cpus=2, _temp_dir=tempfile.mkdtemp(prefix="ray-sdls-"))
    try:
        ray_app.deploy(
            {
                "models": {"a": None, "b": None},  # two ids (here the same checkpoint), multiplexed
                "num_replicas": 2,
                "num_cpus": 0.5,
                "threads": 1,
                "max_context": 512,
                "token": TOKEN,
            }
        )
        yield f"http://127.0.0.1:{port}"
    finally:
        ray_app.stop()


@pytest.mark.slow
def test_the_openai_client_through_rays_proxy(url):
    with openai.OpenAI(base_url=url + "/v1", api_key=TOKEN, max_retries=0) as client:
        completion = client.completions.create(
            model="a", prompt="def add(a, b):\n    return ", suffix="\n", max_tokens=16
        )
    assert completion.object == "text_completion" and isinstance(completion.choices[0].text, str)


@pytest.mark.slow
def test_llama_vims_request_and_a_missing_token(url):
    answer = httpx.post(url + "/infill", content=FIM_BODY, headers=AUTH, timeout=60)
    assert answer.status_code == 200 and '"content":"' in answer.text
    assert set(answer.json()) <= set(json.loads(FIM_BODY)["response_fields"])
    refused = httpx.post(url + "/infill", content=FIM_BODY, timeout=60)
    assert refused.status_code == 401 and refused.json()["error"]["type"] == "authentication_error"


@pytest.mark.slow
def test_the_multiplex_header_picks_the_model(url):
    for model in ("a", "b"):
        headers = {**AUTH, "serve_multiplexed_model_id": model}
        assert httpx.get(url + "/sdls/v1/model", headers=headers, timeout=60).json()["id"] == model


@pytest.mark.slow
def test_concurrent_editors_are_answered_by_both_replicas(url):
    body = {"input_prefix": "def add(a, b):\n", "prompt": "    return ", "input_suffix": "\n", "n_predict": 16}

    def one(i: int) -> tuple[int, str]:
        with httpx.Client(base_url=url, headers=AUTH, timeout=60) as http:
            answer = http.post("/infill", json={**body, "id_slot": i})
            return answer.status_code, answer.headers["sdls-served-by"]  # the replica that wrote it

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(one, range(24)))
    assert all(status == 200 for status, _ in answers)
    assert len({replica for _, replica in answers}) == 2  # Ray spread the requests over both replicas


def test_the_command_line_becomes_the_applications_deployment_options():
    import argparse

    from sdls.service.ray_app import build, builder_args
    from sdls.service.service_command import add_arguments, model_specs

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    ns = parser.parse_args(
        ["--ray", "--num-replicas", "1:3", "--device", "cuda", "--model", "c=/m/c", "--model", "/m/d"]
    )
    args = builder_args(ns, model_specs(ns.model), "t" * 32, required=True)
    assert args["models"] == {"c": "/m/c", "d": "/m/d"}
    deployment = build(args)._bound_deployment
    assert deployment.ray_actor_options["num_gpus"] == 1  # one GPU per replica on cuda
    scaling = deployment._deployment_config.autoscaling_config
    assert (scaling.min_replicas, scaling.max_replicas) == (1, 3)
    fixed = build(builder_args(parser.parse_args(["--ray", "--num-replicas", "2"]), [("sdls", None)], "t", False))
    assert fixed._bound_deployment.num_replicas == 2
    assert fixed._bound_deployment.ray_actor_options["num_gpus"] == 0
    # The per-job memory budget reaches each replica's engine options (MB -> bytes; 0 = none).
    budget = lambda argv: build(builder_args(parser.parse_args(argv), [("sdls", None)], "t", False))
    assert budget(["--ray"])._bound_deployment.init_args[1]["memory_budget"] == 4096 * 1024 * 1024
    assert budget(["--ray", "--memory-budget-mb", "512"])._bound_deployment.init_args[1]["memory_budget"] == 512 << 20
    assert budget(["--ray", "--memory-budget-mb", "0"])._bound_deployment.init_args[1]["memory_budget"] is None
