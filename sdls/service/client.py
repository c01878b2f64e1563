"""The language server's remote backend: the worker client's interface over HTTP to `sdls service`.

Same contract as WorkerClient: `run(job, lane)`, `doubt`, `describe`, `stats`, `close`; failures are
WorkerError (ModelUnavailable when the service cannot be reached), so the server reports them as it
does a dead worker. Cancelling a request (a newer keystroke, $/cancelRequest, a timeout) closes its
HTTP connection, and the service cancels the job at its next denoising step. Document sessions are
prefixed with this client's own random id: two editors' `file:///src/a.py` never share a warm context.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any
from urllib.parse import urlsplit

import httpx

from sdls.worker.client import ModelUnavailable, WorkerError
from sdls.worker.wire import Job, doubt_from_wire, job_to_wire, result_from_wire
from sdls_model.jobs import JobResult

log = logging.getLogger(__name__)
MULTIPLEX_HEADER = "serve_multiplexed_model_id"  # Ray Serve routes requests for one model to its replicas


class ServiceClient:
    def __init__(
        self,
        url: str,
        token: str | None = None,
        model: str = "",
        timeout_s: float = 120.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"model.url must be an http:// or https:// URL, got {url!r}")
        if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            log.warning("model.url %s is plain http: code and token cross the network unencrypted", url)
        self.url = url.rstrip("/")
        self.model = model
        self.session_prefix = uuid.uuid4().hex[:12] + ":"
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if model:
            headers[MULTIPLEX_HEADER] = model
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=10.0),
            transport=transport,
        )
        self.info: dict[str, Any] = {"url": self.url}

    async def _call(self, method: str, path: str, body: dict | None = None) -> Any:
        try:
            response = await self._http.request(method, path, json=body)
        except httpx.ConnectError as exc:
            raise ModelUnavailable(f"cannot reach the model service at {self.url}: {exc}") from exc
        except httpx.TimeoutException as exc:
            raise WorkerError(f"the model service at {self.url} did not answer in time") from exc
        except httpx.HTTPError as exc:
            raise WorkerError(f"the model service at {self.url} failed: {exc}") from exc
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code != 200:
            message = data.get("error", {}).get("message") if isinstance(data, dict) else None
            error = ModelUnavailable if response.status_code in (401, 404, 503) else WorkerError
            raise error(f"the model service answered {response.status_code}: {message or response.text[:200]}")
        if not isinstance(data, dict):
            raise WorkerError(f"the model service sent a body that is not a JSON object: {response.text[:200]}")
        return data

    async def run(self, job: Job, lane: str = "inline") -> JobResult:
        if "model" not in self.info:  # what the worker's hello carries: the server's stats show it
            await self.describe()
        wire = job_to_wire(job)
        if wire.get("session") is not None:
            wire["session"] = self.session_prefix + wire["session"]
        data = await self._call("POST", "/sdls/v1/jobs", {"lane": lane, "job": wire, "model": self.model})
        try:
            return result_from_wire(data["result"])
        except (KeyError, TypeError, ValueError) as exc:
            raise WorkerError(f"the model service sent a malformed result: {exc}") from exc

    async def doubt(self, text: str, start: int, end: int) -> list[tuple[int, int, float]]:
        data = await self._call(
            "POST", "/sdls/v1/doubt", {"text": text, "start": start, "end": end, "model": self.model}
        )
        return doubt_from_wire(data)

    async def describe(self) -> dict:
        self.info = {"url": self.url, "model": await self._call("GET", "/sdls/v1/model")}
        return self.info["model"]

    async def stats(self) -> dict:
        return await self._call("GET", "/sdls/v1/stats")

    async def close(self) -> None:
        await self._http.aclose()
