"""Server settings: nested, fully defaulted dataclasses built from initializationOptions and
workspace/didChangeConfiguration (where the settings in STARTUP_ONLY are refused).

Editors send camelCase (`maxTokens`) or snake_case (`max_tokens`); both are accepted. A wrong type,
a number outside its range (SETTING_RANGES) or an unknown key is reported as a warning and the
current value is kept: a typo in a settings file must not take the server down, nor wedge the worker.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, get_type_hints

from sdls.worker.protocol import MAX_DOCUMENT_CHARS
from sdls_model.job_limits import JOB_RANGES, Range
from sdls_model.precision import DTYPE_CHOICES


@dataclass
class ModelSettings:
    path: str | None = None  # checkpoint directory; None = the shipped default model
    device: str = "cpu"
    # auto: bfloat16 on a GPU or on a CPU that multiplies bfloat16 natively, float32 elsewhere
    dtype: str = field(default="auto", metadata={"choices": DTYPE_CHOICES})
    max_context: int = 1024  # tokens of context the engine may keep per job
    url: str | None = None  # an `sdls service` (http[s]://host:port) to use instead of a local worker
    token: str | None = None  # its bearer token (or token_file: a file holding it, e.g. the service's token file)
    token_file: str | None = None
    id: str = ""  # which model of a service that serves several (`--model ID=PATH`); "" = its default


@dataclass
class CompletionSettings:
    enabled: bool = True
    max_tokens: int = 32  # new tokens for a single-line completion (one 32-token block)
    max_tokens_multiline: int = 128
    threshold: float | None = None  # confidence-threshold parallel commit; None = the checkpoint's own
    block_size: int | None = None  # None = the checkpoint's block size
    debounce_ms: int = 0  # server-side wait before the model call (editors usually debounce)
    prefix_chars: int = 3000  # prompt window before the cursor
    suffix_chars: int = 1000  # prompt window after the cursor
    cross_file: bool = True  # prepend declarations from imported workspace files
    cache_size: int = 256
    timeout_s: float = 30.0  # a model that has not answered by then gets RequestFailed


@dataclass
class ActionSettings:
    enabled: bool = True
    rewrite: bool = True
    fill_stubs: bool = True
    regenerate: bool = True
    fix: bool = True
    edit_threshold: float = 0.1  # re-mask tokens the model gives less than this probability
    max_rounds: int = 4
    max_tokens: int = 256
    validate: bool = True  # drop changes that add syntax errors (fixes must remove some)


@dataclass
class HoverSettings:
    enabled: bool = True
    doubt: bool = True  # also offer fix-ups where the model doubts a token (not only syntax errors)


@dataclass
class NextEditSettings:
    enabled: bool = True  # answer textDocument/copilotInlineEdit and sdls/nextEdit
    rules: bool = True  # deterministic candidates (renames, call sites); a proposal is served at once
    model: bool = True  # the model writes the edit where no rule's proposal fits, ranking by its doubt
    rewrite_rules: bool = False  # the model ranks and may rewrite the rules' proposals (off: they stand)
    debounce_ms: int = 300  # compute ahead this long after an edit settles (for clients that asked once); 0: off
    max_sites: int = 4  # candidate sites the model scores per suggestion
    max_jobs: int = 2  # edit jobs tried per suggestion
    timeout_s: float = 20.0
    history_events: int = 16  # edit history kept per document
    history_chars: int = 65536


@dataclass
class DiagnosticSettings:
    enabled: bool = True


@dataclass
class WorkerSettings:
    socket: str | None = None  # None = a per-user path derived from model path and device
    spawn: bool = True  # start a worker when none is running
    idle_exit_s: float = 600.0  # a spawned worker exits after this long without clients
    start_timeout_s: float = 120.0  # loading a model may take a while on a busy CPU
    # Every model call (a job, a doubt, stats) that has not answered by then fails with
    # RequestFailed; a worker that then does not answer a probe is replaced (see worker/client.py).
    timeout_s: float = 60.0
    in_process: bool = False  # run the engine inside the server (tests, one-shots)


@dataclass
class Settings:
    model: ModelSettings = field(default_factory=ModelSettings)
    completion: CompletionSettings = field(default_factory=CompletionSettings)
    actions: ActionSettings = field(default_factory=ActionSettings)
    hover: HoverSettings = field(default_factory=HoverSettings)
    next_edit: NextEditSettings = field(default_factory=NextEditSettings)
    diagnostics: DiagnosticSettings = field(default_factory=DiagnosticSettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    # Language ids served; "*" = every language (unknown ones get plain-text behaviour).
    languages: list[str] = field(default_factory=lambda: ["*"])
    max_document_chars: int = MAX_DOCUMENT_CHARS  # larger documents get plain-text behaviour (no parse)

    def language_enabled(self, language_id: str) -> bool:
        return "*" in self.languages or language_id in self.languages


_SECONDS = Range(0.0, 3600.0, low_open=True)  # a wait: more than an hour is a typo, 0 would fail everything
_CHARS = Range(0, 1_000_000, integer=True)
# The range of every numeric setting (dotted snake_case path). Settings that become job fields take
# the job's own range (sdls_model.job_limits.JOB_RANGES), so the wire and the settings agree.
SETTING_RANGES: dict[str, Range] = {
    "model.max_context": Range(64, 32768, integer=True),
    "completion.max_tokens": JOB_RANGES["max_new_tokens"],
    "completion.max_tokens_multiline": JOB_RANGES["max_new_tokens"],
    "completion.threshold": JOB_RANGES["threshold"],
    "completion.block_size": JOB_RANGES["block_size"],
    "completion.debounce_ms": Range(0, 10_000, integer=True),
    "completion.prefix_chars": _CHARS,
    "completion.suffix_chars": _CHARS,
    "completion.cache_size": Range(0, 100_000, integer=True),
    "completion.timeout_s": _SECONDS,
    "actions.edit_threshold": JOB_RANGES["edit_threshold"],
    "actions.max_rounds": JOB_RANGES["max_rounds"],
    "actions.max_tokens": JOB_RANGES["max_new_tokens"],
    "next_edit.debounce_ms": Range(0, 60_000, integer=True),
    "next_edit.max_sites": Range(1, 64, integer=True),
    "next_edit.max_jobs": Range(1, 16, integer=True),
    "next_edit.timeout_s": _SECONDS,
    "next_edit.history_events": Range(1, 1024, integer=True),
    "next_edit.history_chars": Range(0, 10_000_000, integer=True),
    "worker.idle_exit_s": Range(0.0, 7 * 86400.0),
    "worker.start_timeout_s": _SECONDS,
    "worker.timeout_s": _SECONDS,
    "max_document_chars": Range(0, 100_000_000, integer=True),
}


# Settings that say what is read or run and where code and credentials go (a checkpoint folder, a
# service and its token, the worker's socket). A repository's own editor settings can reach a
# running server (VS Code workspace settings, pushed with didChangeConfiguration or answered to
# workspace/configuration), so these are taken only when the server starts: from the command line
# and initializationOptions (which VS Code builds from machine-scoped settings alone). A later change
# is refused with a message; the editor restarts the server to apply one.
STARTUP_ONLY = ("model.path", "model.url", "model.token", "model.token_file", "model.id", "worker.socket")


def _get(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def _put(obj: Any, path: str, value: Any) -> Any:
    head, _, rest = path.partition(".")
    return dataclasses.replace(obj, **{head: _put(getattr(obj, head), rest, value) if rest else value})


def keep_startup_only(new: Settings, current: Settings) -> tuple[Settings, list[tuple[str, Any]]]:
    """`new` with every STARTUP_ONLY setting as in `current`; (path, value) of each change refused."""
    refused = []
    for path in STARTUP_ONLY:
        if (value := _get(new, path)) != _get(current, path):
            refused.append((path, value))
            new = _put(new, path, _get(current, path))
    return new, refused


def editor_key(path: str) -> str:
    """A dotted snake_case settings path as the editors spell it: model.token_file -> model.tokenFile."""

    def camel(part: str) -> str:
        head, *rest = part.split("_")
        return head + "".join(word.title() for word in rest)

    return ".".join(camel(part) for part in path.split("."))


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def _coerce(value: Any, hint: Any, where: str, warnings: list[str]) -> Any:
    """`value` as the type `hint` allows, or raise TypeError with a readable message."""
    allowed = getattr(hint, "__args__", None) if type(hint).__name__ in ("UnionType", "_UnionGenericAlias") else None
    if allowed:
        if value is None and type(None) in allowed:
            return None
        hint = next(t for t in allowed if t is not type(None))
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if getattr(hint, "__origin__", None) is list:
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
        raise TypeError(f"{where}: expected a list of strings, got {value!r}")
    if isinstance(hint, type) and isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
        return value
    raise TypeError(f"{where}: expected {getattr(hint, '__name__', hint)}, got {value!r}")


def merge(obj: Any, data: dict, warnings: list[str], where: str = "", section: str = "") -> Any:
    """A copy of dataclass `obj` with the values of `data` applied (recursively); `where` is the
    path as the editor spelled it (for messages), `section` the snake_case one (for SETTING_RANGES)."""
    hints = get_type_hints(type(obj))
    choices = {f.name: f.metadata["choices"] for f in dataclasses.fields(obj) if "choices" in f.metadata}
    changes = {}
    for raw_key, value in data.items():
        key = _snake(raw_key)
        path = f"{where}{raw_key}"
        if key not in hints:
            warnings.append(f"unknown setting {path!r} ignored")
            continue
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if isinstance(value, dict):
                changes[key] = merge(current, value, warnings, path + ".", f"{section}{key}.")
            else:
                warnings.append(f"{path}: expected an object, got {value!r}; kept the default")
            continue
        try:
            value = _coerce(value, hints[key], path, warnings)
        except TypeError as exc:
            warnings.append(f"{exc}; kept {current!r}")
            continue
        if key in choices and value not in choices[key]:
            warnings.append(f"{path}: expected one of {', '.join(choices[key])}, got {value!r}; kept {current!r}")
            continue
        rng = SETTING_RANGES.get(section + key)
        if rng is not None and value is not None and (problem := rng.problem(path, value)):
            warnings.append(f"{problem}; kept {current!r}")
            continue
        changes[key] = value
    return dataclasses.replace(obj, **changes)


def settings_from(data: Any, base: Settings | None = None) -> tuple[Settings, list[str]]:
    """Settings from an editor's JSON (initializationOptions or a configuration change).

    Accepts the settings object itself or one wrapped as {"sdls": {...}} (VS Code's section).
    """
    base = base or Settings()
    warnings: list[str] = []
    if data is None:
        return base, warnings
    if not isinstance(data, dict):
        return base, [f"settings must be an object, got {type(data).__name__}; using defaults"]
    if set(data) == {"sdls"} and isinstance(data["sdls"], dict):
        data = data["sdls"]
    return merge(base, data, warnings), warnings
