"""Reading fields of a JSON request: each wrong type or out-of-range value is a 400 naming the field.

Absent and `null` both mean "use the default" (clients differ on which they send).
"""

from __future__ import annotations

import math
from typing import Any

from .errors import ApiError

MAX_TEXT_CHARS = 1_000_000  # one field of text (a prefix, a suffix, a chunk of extra context)


def _bad(key: str, wanted: str, value: Any) -> ApiError:
    shown = repr(value)
    return ApiError(400, f"field '{key}' must be {wanted}, got {shown[:80]}")


def text(data: dict, key: str, default: str = "", max_chars: int = MAX_TEXT_CHARS) -> str:
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise _bad(key, "a string", value)
    if len(value) > max_chars:
        raise ApiError(413, f"field '{key}' is {len(value)} characters; the limit is {max_chars}")
    return value


def integer(data: dict, key: str, default: int, low: int, high: int) -> int:
    value = data.get(key)
    if value is None:
        return default
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON writers in editors print 128 as 128.0 now and then
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise _bad(key, f"an integer in [{low}, {high}]", value)
    return value


def number(data: dict, key: str, default: float, low: float, high: float) -> float:
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise _bad(key, "a number", value)
    if not low <= value <= high:
        raise _bad(key, f"a number in [{low}, {high}]", value)
    return float(value)


def flag(data: dict, key: str, default: bool = False) -> bool:
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _bad(key, "true or false", value)
    return value


def stop_strings(data: dict, key: str = "stop", limit: int = 16) -> list[str]:
    """`stop` as OpenAI and llama.cpp take it: one string or a list of strings (empty ones ignored)."""
    value = data.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise _bad(key, "a string or a list of strings", value)
    if len(value) > limit or any(len(s) > 256 for s in value):
        raise ApiError(400, f"field '{key}': at most {limit} stop strings of at most 256 characters each")
    return [s for s in value if s]


def model_id(data: dict) -> str:
    """The `model` field: llama.vim always sends "", OpenAI clients a name; absent is ""."""
    return text(data, "model", "", max_chars=512)
