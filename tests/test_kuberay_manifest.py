"""deploy/kuberay/rayservice.yaml, checked on paper: against the RayService CRD's own openAPIV3Schema
(KubeRay v1.7, tests/data/kuberay), its Serve config against Ray Serve's schema and sdls's builder, and
the facts the README promises (one replica per GPU, the token from a Secret, the Ray version)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
MANIFEST = yaml.safe_load((REPO / "deploy" / "kuberay" / "rayservice.yaml").read_text())
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRD is 1 MB: libyaml reads it 30x faster
CRD = yaml.load((REPO / "tests" / "data" / "kuberay" / "ray.io_rayservices.yaml").read_text(), Loader=LOADER)
SERVE_CONFIG = yaml.safe_load(MANIFEST["spec"]["serveConfigV2"])
APP = SERVE_CONFIG["applications"][0]


def schema_errors(doc: dict) -> list[str]:
    jsonschema = pytest.importorskip("jsonschema")
    (v1,) = [v for v in CRD["spec"]["versions"] if v["name"] == "v1"]
    validator = jsonschema.Draft7Validator(v1["schema"]["openAPIV3Schema"])
    return [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(doc)]


def test_the_manifest_is_a_valid_rayservice_v1():
    assert CRD["spec"]["names"]["kind"] == MANIFEST["kind"] == "RayService"
    assert MANIFEST["apiVersion"] == f"{CRD['spec']['group']}/v1"
    assert schema_errors(MANIFEST) == []


@pytest.mark.parametrize(
    "break_it, words",
    [
        (lambda m: m["spec"].update(serveConfigV2=SERVE_CONFIG), "is not of type 'string'"),
        (lambda m: m["spec"]["rayClusterConfig"]["workerGroupSpecs"][0].pop("groupName"), "'groupName' is a required"),
        (lambda m: m["spec"]["rayClusterConfig"]["headGroupSpec"]["rayStartParams"].update({"num-gpus": 0}), "string"),
        (lambda m: m["spec"].pop("rayClusterConfig"), "'rayClusterConfig' is a required"),
    ],
)
def test_the_schema_check_catches_what_kuberay_would_refuse(break_it, words):
    broken = copy.deepcopy(MANIFEST)
    break_it(broken)
    assert any(words in e for e in schema_errors(broken)), schema_errors(broken)


def test_the_serve_config_is_valid_for_ray_serve_and_sdls_builds_it():
    pytest.importorskip("ray.serve")
    from ray.serve.schema import ServeDeploySchema

    from sdls.service.ray_app import DEPLOYMENT, build

    ServeDeploySchema.model_validate(SERVE_CONFIG)  # raises on a wrong or misspelt key
    assert APP["import_path"] == "sdls.service.ray_app:build"
    deployment = build(APP["args"])._bound_deployment
    assert deployment.name == DEPLOYMENT
    assert deployment.ray_actor_options["num_gpus"] == 1
    autoscaling = deployment._deployment_config.autoscaling_config
    assert (autoscaling.min_replicas, autoscaling.max_replicas) == (1, 4)


def test_one_replica_per_gpu_and_enough_gpu_pods_for_the_most_replicas():
    cluster = MANIFEST["spec"]["rayClusterConfig"]
    (group,) = cluster["workerGroupSpecs"]
    (worker,) = group["template"]["spec"]["containers"]
    gpus_per_pod = int(worker["resources"]["limits"]["nvidia.com/gpu"])
    assert worker["resources"]["requests"]["nvidia.com/gpu"] == worker["resources"]["limits"]["nvidia.com/gpu"]
    args = APP["args"]
    assert args["num_gpus"] == 1 and args["device"] == "cuda"
    assert group["maxReplicas"] * gpus_per_pod >= args["max_replicas"]
    assert cluster["headGroupSpec"]["rayStartParams"]["num-gpus"] == "0"  # replicas go to the GPU pool
    assert cluster["enableInTreeAutoscaling"] is True  # pods follow the replicas Ray Serve asks for
    tolerated = {t["key"] for t in group["template"]["spec"]["tolerations"]}
    assert "nvidia.com/gpu" in tolerated


def test_the_token_comes_from_a_secret_in_every_container_and_is_required():
    cluster = MANIFEST["spec"]["rayClusterConfig"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    for group in groups:
        for container in group["template"]["spec"]["containers"]:
            env = {e["name"]: e for e in container["env"]}
            assert env["SDLS_SERVICE_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "sdls-service-token"
    assert APP["args"]["require_token"] is True and "token" not in APP["args"]


def test_the_ray_version_matches_the_cluster_extra():
    import tomllib

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    pinned = next(d for d in extras["cluster"] if d.startswith("ray[serve]=="))
    version = pinned.split("==")[1]
    assert MANIFEST["spec"]["rayClusterConfig"]["rayVersion"] == version
    dockerfile = (REPO / "deploy" / "kuberay" / "Dockerfile").read_text()
    assert f"rayproject/ray:{version}-" in dockerfile
