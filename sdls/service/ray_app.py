"""`sdls service --ray`, and the Ray Serve application `sdls.service.ray_app:build` (for `serve run`,
serve config files and KubeRay): the same HTTP app, in Ray Serve replicas.

Each replica (one per GPU: `ray_actor_options.num_gpus = 1` on CUDA) loads the checkpoints it is asked
for through `@serve.multiplexed` (at most `max_models_per_replica`, least recently used unloaded) and
runs each behind the worker's scheduler, so the requests a replica holds at once are decoded together:
one engine call per denoising step for all of them. Ray Serve routes a request that carries the
`serve_multiplexed_model_id` header to a replica that has that model warm. Replicas scale between
`min_replicas` and `max_replicas` on requests in flight, or stay at `num_replicas`.

Builder arguments (all optional): models {id: checkpoint dir or null for the shipped model}, device,
dtype, max_context, max_batch, threads, num_replicas, min_replicas, max_replicas, num_cpus, num_gpus,
max_models_per_replica, max_ongoing_requests, token (default: $SDLS_SERVICE_TOKEN in the replica),
require_token (default true), max_body_bytes, max_in_flight.
This module is the only one that imports Ray (`pip install sdls[cluster]`).
"""

from __future__ import annotations

import asyncio
import os
import signal
import weakref
from typing import Any

from ray import serve

from sdls_model.job_memory import DEFAULT_BUDGET_MB

from .app import ServiceConfig, build_app
from .auth import TOKEN_ENV
from .errors import ApiError
from .served_model import ServedModel
from .service_command import budget_bytes

DEPLOYMENT = "SdlsReplica"


class ReplicaModels:
    """ModelSource for a replica: names map to checkpoints, loaded through Ray's multiplexed loader."""

    def __init__(self, replica: Any):
        self.replica = replica

    def names(self) -> list[str]:
        return list(self.replica.catalogue)

    def ready(self) -> bool:
        return True  # Ray routes to a replica only once its constructor has returned

    async def get(self, name: str) -> ServedModel:
        catalogue = self.replica.catalogue
        name = name or serve.get_multiplexed_model_id() or next(iter(catalogue))
        if len(catalogue) == 1:
            name = next(iter(catalogue))
        elif name not in catalogue:
            raise ApiError(404, f"model {name!r} is not served here; models: {', '.join(catalogue)}")
        return await self.replica.load_model(name)

    def loaded(self) -> list[ServedModel]:
        return list(self.replica.warm.values())


def replica_class(max_models: int) -> type:
    """The deployment class; built per call because the multiplexing bound is fixed at decoration."""

    @serve.ingress()
    class SdlsReplica:
        def __init__(self, catalogue: dict[str, str | None], engine: dict[str, Any], service: dict[str, Any]):
            import torch

            from sdls.worker.worker_command import default_threads

            torch.set_num_threads(engine.pop("threads", 0) or default_threads())
            self.catalogue = catalogue
            self.engine_options = engine
            self.config = ServiceConfig(**{**service, "token": service.get("token") or os.environ.get(TOKEN_ENV)})
            if self.config.require_token and not self.config.token:
                raise ValueError(f"a token is required: set ${TOKEN_ENV} in the replicas or pass `token`")
            self.warm: weakref.WeakValueDictionary[str, ServedModel] = weakref.WeakValueDictionary()

        @serve.multiplexed(max_num_models_per_replica=max_models)
        async def load_model(self, model_id: str) -> ServedModel:
            model = await asyncio.to_thread(ServedModel.load, model_id, self.catalogue[model_id], **self.engine_options)
            self.warm[model_id] = model
            return model

        def __serve_build_asgi_app__(self):
            return build_app(ReplicaModels(self), self.config)

    return SdlsReplica


def build(args: dict) -> Any:
    """The Ray Serve application (an application builder: `import_path: sdls.service.ray_app:build`)."""
    args = dict(args or {})
    catalogue = args.pop("models", None) or {"sdls": None}
    if not isinstance(catalogue, dict) or not catalogue:
        raise ValueError("`models` must map model ids to checkpoint folders (null: the shipped model)")
    device = args.get("device", "cpu")
    engine = {
        "device": device,
        "dtype": args.get("dtype", "auto"),
        "max_context": int(args.get("max_context", 1024)),
        "max_batch": int(args.get("max_batch", 8)),
        "threads": int(args.get("threads", 0)),
        "memory_budget": budget_bytes(float(args.get("memory_budget_mb", DEFAULT_BUDGET_MB))),
    }
    service = {
        "token": args.get("token"),
        "require_token": bool(args.get("require_token", True)),
        "max_body_bytes": int(args.get("max_body_bytes", ServiceConfig.max_body_bytes)),
        "max_in_flight": int(args.get("max_in_flight", ServiceConfig.max_in_flight)),
    }
    gpus = args.get("num_gpus", 1 if str(device).startswith("cuda") else 0)
    options: dict[str, Any] = {
        "name": DEPLOYMENT,
        "ray_actor_options": {"num_cpus": float(args.get("num_cpus", 1)), "num_gpus": float(gpus)},
        # Requests a replica holds at once: they batch in its scheduler, so this is the batch it can form.
        "max_ongoing_requests": int(args.get("max_ongoing_requests", 32)),
    }
    if "min_replicas" in args or "max_replicas" in args:
        low, high = int(args.get("min_replicas", 1)), int(args.get("max_replicas", 1))
        options["autoscaling_config"] = {
            "min_replicas": low,
            "max_replicas": high,
            "target_ongoing_requests": int(args.get("target_ongoing_requests", 8)),
        }
    else:
        options["num_replicas"] = int(args.get("num_replicas", 1))
    cls = replica_class(int(args.get("max_models_per_replica", 2)))
    # The decorator-factory form, which Ray's type stubs describe (`deployment(cls)` is typed as a function).
    return serve.deployment(**options)(cls).bind(catalogue, engine, service)


def builder_args(ns: Any, specs: list[tuple[str, str | None]], token: str, required: bool) -> dict:
    """`sdls service --ray` options as builder arguments."""
    args: dict[str, Any] = {
        "models": dict(specs),
        "device": ns.device,
        "dtype": ns.dtype,
        "max_context": ns.max_context,
        "max_batch": ns.max_batch,
        "threads": ns.threads,
        "memory_budget_mb": ns.memory_budget_mb,
        "token": token,
        "require_token": required,
        "max_body_bytes": ns.max_body,
        "max_in_flight": ns.max_in_flight,
        "num_cpus": ns.cpus_per_replica,
        "max_models_per_replica": ns.max_models_per_replica,
    }
    if ns.gpus_per_replica is not None:
        args["num_gpus"] = ns.gpus_per_replica
    low, sep, high = str(ns.num_replicas).partition(":")
    if sep:
        args["min_replicas"], args["max_replicas"] = int(low), int(high)
    else:
        args["num_replicas"] = int(low)
    return args


def start(host: str, port: int, address: str | None = None, **init: Any) -> None:
    """Join (or start) a Ray cluster and start Ray Serve's HTTP proxy on host:port."""
    import ray

    ray.init(address=address, include_dashboard=False, **init)
    serve.start(http_options={"host": host, "port": port})


def deploy(args: dict, blocking: bool = False) -> None:
    serve.run(build(args), name="sdls", route_prefix="/", blocking=blocking)


def stop() -> None:
    import ray

    serve.shutdown()
    ray.shutdown()


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM (a service manager, kubectl) shuts down as Ctrl-C does


def run_on_ray(ns: Any, specs: list[tuple[str, str | None]], token: str, required: bool) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    start(ns.host, ns.port, ns.ray_address)
    print(f"sdls service on Ray Serve at http://{ns.host}:{ns.port} ({ns.num_replicas} replicas)", flush=True)
    try:
        deploy(builder_args(ns, specs, token, required), blocking=True)
    except KeyboardInterrupt:
        pass
    finally:
        stop()
    return 0
