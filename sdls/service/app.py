"""The HTTP application: routes, authentication, limits and error answers, over a ModelSource.

The same app runs under uvicorn (`sdls service`) and inside each Ray Serve replica (`--ray`).
Every model route reads a bounded JSON body, checks the token where one is required, admits at
most `max_in_flight` requests, and cancels its job when the client disconnects. Every error is a
JSON body `{"error": {"code", "message", "type"}}`.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from . import infill_api, jobs_api, openai_api, sse
from .auth import check_bearer
from .errors import ApiError, CompactJSONResponse, error_body, error_response
from .fields import model_id
from .limits import MAX_BODY_BYTES, Admission, read_json_object
from .models import ModelSource
from .running import ClientGone, unless_disconnected
from .served_model import ServedModel

log = logging.getLogger(__name__)
MULTIPLEX_HEADER = "serve_multiplexed_model_id"  # Ray Serve routes on it; the app reads it as the model name
SERVED_BY_HEADER = "sdls-served-by"  # host:pid of the process that answered: which replica, behind Ray's proxy


@dataclass
class ServiceConfig:
    token: str | None = None  # the bearer token this service accepts
    require_token: bool = True  # False: requests without a (right) token are served too (loopback default)
    max_body_bytes: int = MAX_BODY_BYTES
    max_in_flight: int = 64


Handler = Callable[[Request], Awaitable[Response]]


def build_app(models: ModelSource, config: ServiceConfig) -> Starlette:
    admission = Admission(config.max_in_flight)
    served_by = f"{socket.gethostname()}:{os.getpid()}"  # built in the replica's own process

    def guarded(handler: Handler, public: bool = False, admit: bool = True) -> Handler:
        async def route(request: Request) -> Response:
            try:
                if not public and config.require_token:
                    check_bearer(request.headers.get("authorization"), config.token or "")
                if admit:
                    admission.enter()
            except ApiError as exc:
                return signed(error_response(exc))
            try:
                response = await handler(request)
            except ApiError as exc:
                response = error_response(exc)
            except ClientGone:
                response = Response(status_code=499)  # nobody is there to read it
            except BaseException:
                if admit:
                    admission.leave()
                raise
            signed(response)
            return _Admitted(response, admission) if admit else response

        return route

    def signed(response: Response) -> Response:
        response.headers[SERVED_BY_HEADER] = served_by
        return response

    async def body_and_model(request: Request) -> tuple[dict, ServedModel]:
        data = await read_json_object(request, config.max_body_bytes)
        name = request.headers.get(MULTIPLEX_HEADER) or model_id(data)
        return data, await models.get(name)

    async def health(request: Request) -> Response:
        if not models.ready():
            return error_response(ApiError(503, "Loading model"))
        return CompactJSONResponse({"status": "ok"})

    async def list_models(request: Request) -> Response:
        data = [{"id": name, "object": "model", "created": 0, "owned_by": "sdls"} for name in models.names()]
        return CompactJSONResponse({"object": "list", "data": data})

    async def infill(request: Request) -> Response:
        data, model = await body_and_model(request)
        req = infill_api.parse_infill(data, model)
        host = request.client.host if request.client else "?"
        session = f"infill:{host}:{req.id_slot}"  # llama.cpp's slot: one warm context per client and slot
        jobs_api.refuse_over_budget(model, infill_api.infill_job(req, session))
        if req.stream:
            if req.n_cmpl != 1:
                raise ApiError(400, "streaming serves one completion per request (n_cmpl = 1)")
            return _sse(infill_stream(req, model, session))
        return CompactJSONResponse(await unless_disconnected(request, infill_api.complete(req, model, session)))

    async def infill_stream(req, model, session) -> AsyncIterator[bytes]:
        async for item in infill_api.stream_one(req, model, session):
            yield sse.event(item)

    def fim(mistral: bool) -> Handler:
        async def handler(request: Request) -> Response:
            data, model = await body_and_model(request)
            req = openai_api.parse_fim(data, model, mistral)
            for index in range(len(req.prompts)):
                jobs_api.refuse_over_budget(model, openai_api.fim_job(req, index))
            if req.stream:
                if len(req.prompts) != 1:
                    raise ApiError(400, "streaming serves one completion per request (one prompt, n = 1)")
                return _sse(openai_stream(req, model, mistral))
            return CompactJSONResponse(await unless_disconnected(request, openai_api.complete(req, model, mistral)))

        return handler

    async def openai_stream(req, model, mistral: bool) -> AsyncIterator[bytes]:
        try:
            async for chunk in openai_api.stream_chunks(req, model, mistral):
                yield sse.event(chunk)
        except ApiError as exc:
            yield sse.event(error_body(exc.status, exc.message, exc.kind))
        yield sse.DONE

    async def submit_job(request: Request) -> Response:
        data, model = await body_and_model(request)
        job, lane = jobs_api.parse_job(data, model)
        if data.get("stream"):
            return _sse(sse.event(body, name) async for name, body in jobs_api.job_stream(model, job, lane))
        return CompactJSONResponse(await unless_disconnected(request, jobs_api.run_job(model, job, lane)))

    async def doubt(request: Request) -> Response:
        data, model = await body_and_model(request)
        text, start, end = jobs_api.parse_doubt(data)
        return CompactJSONResponse(await unless_disconnected(request, jobs_api.doubt(model, text, start, end)))

    async def describe(request: Request) -> Response:
        model = await models.get(request.headers.get(MULTIPLEX_HEADER) or request.query_params.get("model", ""))
        return CompactJSONResponse({**model.describe(), "models": models.names()})

    async def stats(request: Request) -> Response:
        by_name = {m.name: m.stats() for m in models.loaded()}
        answer = {"models": by_name, "in_flight": admission.active, "pid": os.getpid(), "served_by": served_by}
        return CompactJSONResponse(answer)

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 500:
            log.error("unhandled error on %s", request.url.path, exc_info=exc)
        message = exc.detail if isinstance(exc, HTTPException) else "internal error (see the service log)"
        return signed(error_response(ApiError(status, str(message))))

    routes = [
        Route("/health", guarded(health, public=True, admit=False), methods=["GET"]),
        Route("/v1/health", guarded(health, public=True, admit=False), methods=["GET"]),
        Route("/v1/models", guarded(list_models, admit=False), methods=["GET"]),
        Route("/infill", guarded(infill), methods=["POST"]),
        Route("/v1/completions", guarded(fim(mistral=False)), methods=["POST"]),
        Route("/v1/fim/completions", guarded(fim(mistral=True)), methods=["POST"]),
        Route("/sdls/v1/jobs", guarded(submit_job), methods=["POST"]),
        Route("/sdls/v1/doubt", guarded(doubt), methods=["POST"]),
        Route("/sdls/v1/model", guarded(describe, admit=False), methods=["GET"]),
        Route("/sdls/v1/stats", guarded(stats, admit=False), methods=["GET"]),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error, Exception: http_error})


def _sse(events: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(events, media_type="text/event-stream", headers=sse.HEADERS)


class _Admitted(Response):
    """A response that gives its admission back once it has been sent: a streamed answer holds it
    until its last event is out or its client is gone."""

    def __init__(self, inner: Response, admission: Admission):
        self.inner, self.admission = inner, admission

    async def __call__(self, scope, receive, send) -> None:
        try:
            await self.inner(scope, receive, send)
        finally:
            self.admission.leave()
