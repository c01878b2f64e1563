"""Checkpoints: save sdls's own, load any format of checkpoint_formats.py, validate any.

A checkpoint is a Hugging Face style directory: config.json, model.safetensors (or shards
model-0000N-of-0000M.safetensors plus model.safetensors.index.json) and tokenizer.json.
Loading checks everything it can from file headers first (every expected tensor present, no
unknown ones, shapes, truncation, config and tokenizer) and raises one CheckpointError listing the
problems, each naming the file and tensor, before a single weight is read. So nothing is served
from a half-written or mismatched checkpoint, and `validate_checkpoint` is cheap enough for a
hot-reload watcher to call on every new directory.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .checkpoint_adapter import is_adapter_dir, load_adapted, read_adapter
from .checkpoint_files import (
    FLOAT_DTYPES,
    INDEX_FILE,
    SINGLE_FILE,
    StoredTensor,
    list_stored_tensors,
    load_tensors,
    write_weights,
)
from .checkpoint_formats import SDLS, CheckpointFormat, FormatError, detect_format
from .config import ModelConfig
from .heap import release_freed_memory
from .tokenizer import Tokenizer
from .transformer import Transformer

CONFIG_FILE, TOKENIZER_FILE = "config.json", "tokenizer.json"
TOKENIZER_CONFIG_FILE, GENERATION_CONFIG_FILE = "tokenizer_config.json", "generation_config.json"
RESERVED_FILES = {CONFIG_FILE, TOKENIZER_FILE, SINGLE_FILE, INDEX_FILE}
MAX_PROBLEMS_IN_MESSAGE = 20


class CheckpointError(ValueError):
    """A checkpoint directory (or GGUF file) that cannot be served; the message names files and tensors."""

    def __init__(self, directory: Path, problems: list[str]):
        self.directory, self.problems = directory, problems
        shown = problems[:MAX_PROBLEMS_IN_MESSAGE]
        more = f"\n  ... and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
        super().__init__(f"checkpoint {directory} cannot be loaded:\n  - " + "\n  - ".join(shown) + more)


ADAPTED_DIR, SCRATCH_DIR = "adapted", "default"
# The shipping form's name in reports (its tensors are not a model's: checkpoint_adapter.py reads them).
ADAPTER = CheckpointFormat("sdls-adapter", lambda raw, lookup, tc: ModelConfig.from_dict(raw), str, lambda name: True)
_fallbacks_said: set[str] = set()


def default_model_dir() -> Path:
    """The model shipped inside the package: the adapted backbone (sdls_model/adapted, in the shipping
    form of checkpoint_adapter.py) when it is there and its base weights are installed and check out,
    else the model trained from scratch (sdls_model/default; it may not exist yet)."""
    return shipped_model_dir(Path(__file__).resolve().parent)


def scratch_model_dir() -> Path:
    """The from-scratch model shipped inside the package (sdls's own tokenizer.json and weights)."""
    return Path(__file__).resolve().parent / SCRATCH_DIR


def shipped_model_dir(package: Path) -> Path:
    """`package/adapted` if usable, else `package/default`, saying once on stderr why and how to fix it."""
    adapted, scratch = package / ADAPTED_DIR, package / SCRATCH_DIR
    if not is_adapter_dir(adapted):
        return scratch
    _files, problems = read_adapter(adapted)
    if not problems:
        return adapted
    if str(adapted) not in _fallbacks_said:
        _fallbacks_said.add(str(adapted))
        print(
            f"sdls: the shipped adapted model {adapted} cannot be used: {problems[0]}; "
            f"using the from-scratch model {scratch} instead",
            file=sys.stderr,
        )
    return scratch


def expected_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Our parameter names and shapes for cfg (a tied lm_head is not stored)."""
    shapes = {name: tuple(t.shape) for name, t in Transformer.skeleton(cfg).state_dict().items()}
    if cfg.tie_embeddings:
        del shapes["lm_head.weight"]
    return shapes


# -- inspection: everything checkable without reading weights -------------------------------------
@dataclass
class Inspection:
    """What a checkpoint directory holds, found from its headers and JSON files alone."""

    directory: Path
    problems: list[str] = field(default_factory=list)
    fmt: CheckpointFormat | None = None
    raw: dict | None = None  # config.json as read
    cfg: ModelConfig | None = None
    tokenizer: Tokenizer | None = None
    tensors: dict[str, StoredTensor] = field(default_factory=dict)  # by OUR parameter name


def _read_json(path: Path, problems: list[str], required: bool) -> dict | None:
    if not path.is_file():
        if required:
            problems.append(f"{path}: missing")
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        problems.append(f"{path}: not valid JSON: {exc}")
        return None
    if not isinstance(data, dict):
        problems.append(f"{path}: expected a JSON object, got {type(data).__name__}")
        return None
    return data


def inspect_checkpoint(directory: str | Path) -> Inspection:
    """A checkpoint directory, or a GGUF file (checkpoint_gguf.py), as found on disk."""
    from .checkpoint_gguf import inspect_gguf, is_gguf

    if is_gguf(directory):
        return inspect_gguf(directory)
    found = Inspection(Path(directory))
    d, problems = found.directory, found.problems
    if not d.is_dir():
        problems.append(f"{d}: checkpoint directory does not exist" if not d.exists() else f"{d}: not a directory")
        return found
    if is_adapter_dir(d):  # the shipping form: base weights from elsewhere (checkpoint_adapter.py)
        files, adapter_problems = read_adapter(d)
        problems += adapter_problems
        found.fmt = ADAPTER
        found.cfg = files.cfg if files is not None else None
        found.tensors = list_stored_tensors(d)[0]
        return found
    raw = found.raw = _read_json(d / CONFIG_FILE, problems, required=True)
    tokenizer_config = _read_json(d / TOKENIZER_CONFIG_FILE, problems, required=False) or {}
    generation_config = _read_json(d / GENERATION_CONFIG_FILE, problems, required=False) or {}
    tok_path = d / TOKENIZER_FILE
    if not tok_path.is_file():
        problems.append(f"{tok_path}: missing")
    else:
        try:
            found.tokenizer = Tokenizer.from_file(tok_path)
        except ValueError as exc:
            problems.append(str(exc))
    if raw is not None:
        try:
            found.fmt = detect_format(raw)
            lookup = found.tokenizer.token_to_id if found.tokenizer else (lambda token: None)
            cfg = found.fmt.make_config(raw, lookup, tokenizer_config)
            if found.fmt is not SDLS:
                _add_generation_stops(cfg, generation_config)
            _check_sizes(cfg)
            found.cfg = cfg
        except (FormatError, ValueError, TypeError, AttributeError) as exc:  # a field of the wrong JSON type
            problems.append(f"{d / CONFIG_FILE}: {exc}")
    if found.cfg is not None and found.tokenizer is not None:
        _check_tokenizer(found.cfg, found.tokenizer, tok_path, problems)
    stored, declared, weight_problems = list_stored_tensors(d)
    problems += weight_problems
    weights_unreadable = weight_problems and not declared  # already reported; don't list every tensor
    if found.cfg is not None and found.fmt is not None and not weights_unreadable:
        found.tensors = _match_tensors(d, found.fmt, found.cfg, stored, declared, problems)
    return found


POSITIVE_FIELDS = (
    "vocab_size",
    "d_model",
    "n_layers",
    "n_heads",
    "n_kv_heads",
    "ffn_size",
    "max_seq_len",
    "rope_theta",
    "norm_eps",
)


def _check_sizes(cfg: ModelConfig) -> None:
    """ModelConfig checks divisibility, not signs; a negative size would only fail deep inside torch."""
    bad = [f"{name} {getattr(cfg, name)}" for name in POSITIVE_FIELDS if not getattr(cfg, name) > 0]
    if bad:
        raise FormatError(f"sizes must be positive: {', '.join(bad)}")


def _add_generation_stops(cfg: ModelConfig, generation_config: dict) -> None:
    """Instruct models often stop on a chat end token listed only in generation_config.json."""
    eos = generation_config.get("eos_token_id")
    for token_id in eos if isinstance(eos, list) else [eos]:
        if isinstance(token_id, int) and 0 <= token_id < cfg.vocab_size and token_id not in cfg.stop_ids:
            cfg.extra_stop_ids.append(token_id)


def _check_tokenizer(cfg: ModelConfig, tokenizer: Tokenizer, tok_path: Path, problems: list[str]) -> None:
    if tokenizer.vocab_size > cfg.vocab_size:
        problems.append(f"{tok_path}: has {tokenizer.vocab_size} tokens but the model's vocabulary is {cfg.vocab_size}")
    for name in ("mask_id", "eos_id"):
        token_id = getattr(cfg, name)
        if tokenizer.hf.id_to_token(token_id) is None:
            problems.append(f"{tok_path}: has no token with id {token_id} ({name} in config.json)")


def _match_tensors(
    d: Path,
    fmt: CheckpointFormat,
    cfg: ModelConfig,
    stored: dict[str, StoredTensor],
    declared: set[str],
    problems: list[str],
) -> dict[str, StoredTensor]:
    weights_file = d / (INDEX_FILE if (d / INDEX_FILE).is_file() else SINGLE_FILE)
    matched: dict[str, StoredTensor] = {}
    shapes = expected_shapes(cfg)
    wanted = {fmt.stored_name(ours): ours for ours in shapes}
    for stored_name, ours in wanted.items():
        if stored_name in stored:
            tensor = stored[stored_name]
            if tensor.shape != shapes[ours]:
                problems.append(
                    f"{tensor.file}: tensor {stored_name!r} has shape {list(tensor.shape)}, "
                    f"config.json implies {list(shapes[ours])}"
                )
            else:
                matched[ours] = tensor
        elif stored_name not in declared:
            problems.append(f"{weights_file}: tensor {stored_name!r} is missing")
    for name in sorted(declared - set(wanted)):
        if not fmt.ignorable(name):
            where = stored[name].file if name in stored else weights_file
            problems.append(
                f"{where}: unexpected tensor {name!r} (not part of a {fmt.name} model with this config.json)"
            )
    return matched


# -- public API ------------------------------------------------------------------------------------
def validate_checkpoint(directory: str | Path) -> list[str]:
    """Every problem that would stop `load_checkpoint`, without reading weights. [] = loadable."""
    return inspect_checkpoint(directory).problems


def load_checkpoint(
    directory: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> tuple[ModelConfig, Transformer, Tokenizer]:
    """Load any supported checkpoint directory (format detected from config.json) or GGUF file
    (detected by its magic bytes and general.architecture; checkpoint_gguf.py).

    dtype None keeps the dtype the embedding is stored in. Raises CheckpointError before
    reading any weight if the directory is incomplete or inconsistent, and before returning a
    model if a weight holds NaN or inf (a diverged training run must not be hot-swapped in).
    The load's temporaries (dequantised or pre-cast copies) go back to the system (heap.py).
    """
    loaded = _load_any(directory, device, dtype)
    release_freed_memory()
    return loaded


def _load_any(
    directory: str | Path, device: str | torch.device, dtype: torch.dtype | None
) -> tuple[ModelConfig, Transformer, Tokenizer]:
    from .checkpoint_gguf import is_gguf, load_gguf

    if is_gguf(directory):
        return load_gguf(directory, device=device, dtype=dtype)
    if is_adapter_dir(Path(directory)):
        return load_adapted(Path(directory), device=device, dtype=dtype)
    found = inspect_checkpoint(directory)
    if found.problems:
        raise CheckpointError(found.directory, found.problems)
    cfg, tokenizer = found.cfg, found.tokenizer
    assert cfg is not None and tokenizer is not None
    if dtype is None:
        dtype = FLOAT_DTYPES[found.tensors["embed_tokens.weight"].dtype][0]
    try:
        data = load_tensors(list(found.tensors.values()))
    except Exception as exc:  # safetensors raises its own error types on corrupt data
        raise CheckpointError(found.directory, [f"reading weights failed: {exc}"]) from exc
    state, bad = {}, []
    for ours, stored in found.tensors.items():
        tensor = data.pop(stored.name)  # drop the stored copy as soon as it is converted
        if not torch.isfinite(tensor).all():
            bad.append(f"{stored.file}: tensor {stored.name!r} contains NaN or infinite values")
        state[ours] = tensor.to(dtype=dtype).to(device)
    if bad:
        raise CheckpointError(found.directory, bad)
    if cfg.tie_embeddings:
        state["lm_head.weight"] = state["embed_tokens.weight"]
    model = Transformer.skeleton(cfg)
    model.load_state_dict(state, strict=True, assign=True)
    if cfg.tie_embeddings:
        model.lm_head.weight = model.embed_tokens.weight  # assign=True replaced the shared Parameter
    return cfg, model.eval(), tokenizer


def save_checkpoint(
    directory: str | Path,
    model: torch.nn.Module,
    tokenizer: Tokenizer,
    max_shard_bytes: int = 15 * 2**20,
    extra_files: dict[str, str] | None = None,
) -> Path:
    """Write model + tokenizer as an sdls checkpoint directory, atomically.

    Everything is written into a hidden temporary sibling (".<name>.tmp-*"), checked with
    `validate_checkpoint`, then renamed into place, so a watcher never sees half a checkpoint.
    An existing directory of the same name is replaced (moved aside, then deleted).
    extra_files: {file name: text} written alongside (e.g. a training log or model card).
    """
    target = Path(directory)
    model = getattr(model, "_orig_mod", model)  # a torch.compile'd model wraps the real one
    cfg: ModelConfig = model.cfg
    extra_files = extra_files or {}
    for name in extra_files:
        if Path(name).name != name or name in RESERVED_FILES or name.endswith(".safetensors") or name.startswith("."):
            raise ValueError(f"extra file name {name!r} must be a plain, non-reserved file name")
    tensors = _tensors_to_save(model, cfg)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        (tmp / CONFIG_FILE).write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
        write_weights(tmp, tensors, max_shard_bytes)
        tokenizer.save(tmp / TOKENIZER_FILE)
        for name, text in extra_files.items():
            (tmp / name).write_text(text)
        problems = validate_checkpoint(tmp)
        if problems:
            raise CheckpointError(target, ["refusing to publish an invalid checkpoint:", *problems])
        _fsync_tree(tmp)
        _publish(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _tensors_to_save(model: torch.nn.Module, cfg: ModelConfig) -> dict[str, torch.Tensor]:
    state = model.state_dict()
    expected = expected_shapes(cfg)
    if cfg.tie_embeddings:
        state.pop("lm_head.weight", None)
    if set(state) != set(expected):
        raise ValueError(
            f"model parameters do not match its config: missing {sorted(set(expected) - set(state))}, "
            f"unexpected {sorted(set(state) - set(expected))}"
        )
    return {name: t.detach().to("cpu").contiguous() for name, t in state.items()}


def _fsync_tree(directory: Path) -> None:
    for path in directory.iterdir():
        with path.open("rb") as f:
            os.fsync(f.fileno())
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _publish(tmp: Path, target: Path) -> None:
    """Rename tmp to target. A directory cannot atomically replace a non-empty one, so an old
    target is first moved aside: a reader sees the old checkpoint, nothing, or the new one."""
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.rename(target, old / "checkpoint")
    os.rename(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
