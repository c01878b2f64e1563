"""Which served model answers a request: the `model` field (or Ray Serve's multiplexing header)
names one; with a single model every name is that model, as llama.cpp does outside router mode."""

from __future__ import annotations

from typing import Protocol

from .errors import ApiError
from .served_model import ServedModel


class LoadedModels:
    """Models loaded in this process, the first one the default."""

    def __init__(self, models: list[ServedModel]):
        if not models:
            raise ValueError("a service needs at least one model")
        self.by_name = {m.name: m for m in models}
        self.default = models[0]

    def names(self) -> list[str]:
        return list(self.by_name)

    async def get(self, name: str) -> ServedModel:
        if not name or len(self.by_name) == 1:
            return self.default
        try:
            return self.by_name[name]
        except KeyError:
            raise ApiError(404, f"model {name!r} is not served here; models: {', '.join(self.by_name)}") from None

    def ready(self) -> bool:
        return True

    def loaded(self) -> list[ServedModel]:
        return list(self.by_name.values())

    def close(self) -> None:
        for model in self.by_name.values():
            model.close()


class ModelSource(Protocol):
    """What the HTTP app needs: LoadedModels here, the multiplexed loader in a Ray Serve replica."""

    async def get(self, name: str) -> ServedModel: ...  # may load a model; ApiError(404) for unknown names
    def names(self) -> list[str]: ...
    def ready(self) -> bool: ...
    def loaded(self) -> list[ServedModel]: ...  # the models warm in this process (for stats)
