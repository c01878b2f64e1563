"""Where a checkpoint's tensors lie on disk: safetensors headers, shard indexes, shard writing.

Everything here reads headers only (8-byte length + JSON), never tensor data, so checking a
multi-GB checkpoint for truncation or a wrong shape costs milliseconds. Problems come back as
strings naming the file and the tensor; the caller decides whether to raise.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
MAX_HEADER_BYTES = 100 * 2**20  # the safetensors library's own limit

# safetensors dtype codes we can load as model weights, with their sizes in bytes.
FLOAT_DTYPES = {
    "F64": (torch.float64, 8),
    "F32": (torch.float32, 4),
    "F16": (torch.float16, 2),
    "BF16": (torch.bfloat16, 2),
}


@dataclass(frozen=True)
class StoredTensor:
    name: str  # the name as stored (the checkpoint format's own naming)
    file: Path
    dtype: str  # safetensors code, e.g. "BF16"
    shape: tuple[int, ...]


def read_header(path: Path) -> tuple[dict[str, StoredTensor], set[str], list[str]]:
    """The usable tensors a .safetensors file declares, every name its header declares (usable
    or not), and the problems found (truncation, bad header)."""
    problems: list[str] = []
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(8)
            if len(head) < 8:
                return {}, set(), [f"{path}: file is {size} bytes, too short for a safetensors header"]
            (header_len,) = struct.unpack("<Q", head)
            if header_len > MAX_HEADER_BYTES or 8 + header_len > size:
                return (
                    {},
                    set(),
                    [
                        f"{path}: header claims {header_len} bytes but the file has {size} (truncated or not safetensors)"
                    ],
                )
            header = json.loads(f.read(header_len))
    except OSError as exc:
        return {}, set(), [f"{path}: cannot read: {exc}"]
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return {}, set(), [f"{path}: safetensors header is not valid JSON: {exc}"]
    if not isinstance(header, dict):
        return {}, set(), [f"{path}: safetensors header is not a JSON object"]
    data_size = size - 8 - header_len
    tensors: dict[str, StoredTensor] = {}
    declared = set(header) - {"__metadata__"}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = info["dtype"], tuple(int(d) for d in info["shape"]), info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            problems.append(f"{path}: tensor {name!r} has a malformed header entry {info!r}")
            continue
        if end > data_size:
            problems.append(
                f"{path}: tensor {name!r} is cut short: its data ends at byte {end} "
                f"but the file holds {data_size} data bytes (truncated file)"
            )
            continue
        if dtype not in FLOAT_DTYPES:
            problems.append(
                f"{path}: tensor {name!r} has dtype {dtype}; weights must be one of {', '.join(FLOAT_DTYPES)}"
            )
            continue
        numel = 1
        for d in shape:
            numel *= d
        if end - begin != numel * FLOAT_DTYPES[dtype][1]:
            problems.append(
                f"{path}: tensor {name!r} spans {end - begin} bytes, shape {list(shape)} {dtype} needs "
                f"{numel * FLOAT_DTYPES[dtype][1]}"
            )
            continue
        tensors[name] = StoredTensor(name, path, dtype, shape)
    return tensors, declared, problems


def list_stored_tensors(directory: Path) -> tuple[dict[str, StoredTensor], set[str], list[str]]:
    """Every usable tensor of a checkpoint directory (from model.safetensors or a sharded index),
    every name its headers declare, and the problems found."""
    index_path, single_path = directory / INDEX_FILE, directory / SINGLE_FILE
    if index_path.is_file():
        return _list_sharded(directory, index_path)
    if single_path.is_file():
        return read_header(single_path)
    return {}, set(), [f"{directory}: no weights: neither {SINGLE_FILE} nor {INDEX_FILE} exists"]


def _list_sharded(directory: Path, index_path: Path) -> tuple[dict[str, StoredTensor], set[str], list[str]]:
    try:
        weight_map = json.loads(index_path.read_text())["weight_map"]
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise TypeError("weight_map must map tensor names to file names")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return {}, set(), [f"{index_path}: not a valid safetensors index: {exc!r}"]
    problems: list[str] = []
    tensors: dict[str, StoredTensor] = {}
    all_declared: set[str] = set()
    for shard_name in sorted(set(weight_map.values())):
        shard = directory / shard_name
        names = sorted(n for n, f in weight_map.items() if f == shard_name)
        if Path(shard_name).name != shard_name:
            problems.append(
                f"{index_path}: shard name {shard_name!r} must be a plain file name in the checkpoint folder"
            )
            all_declared |= set(names)
            continue
        if not shard.is_file():
            all_declared |= set(names)  # reported as one missing shard, not tensor by tensor
            problems.append(
                f"{shard}: shard listed in {INDEX_FILE} is missing (it should hold {names[0]!r}"
                f"{f' and {len(names) - 1} more' if len(names) > 1 else ''})"
            )
            continue
        found, declared, shard_problems = read_header(shard)
        problems += shard_problems
        all_declared |= declared
        for name in sorted(declared):
            if weight_map.get(name) != shard_name:
                problems.append(f"{shard}: tensor {name!r} is not listed for this shard in {INDEX_FILE}")
            elif name in found:
                tensors[name] = found[name]
        if not declared and shard_problems:
            all_declared |= set(names)  # header unreadable: already reported for the whole shard
            continue
        for name in names:
            if name not in declared:
                problems.append(
                    f"{shard}: tensor {name!r} is listed for this shard in {INDEX_FILE} but the shard lacks it"
                )
                all_declared.add(name)  # reported here; not "missing" again later
    return tensors, all_declared, problems


def load_tensors(stored: list[StoredTensor]) -> dict[str, torch.Tensor]:
    """Tensor data by stored name, opening each file once (memory-mapped by safetensors)."""
    by_file: dict[Path, list[str]] = {}
    for s in stored:
        by_file.setdefault(s.file, []).append(s.name)
    out: dict[str, torch.Tensor] = {}
    for path, names in by_file.items():
        with safe_open(str(path), framework="pt", device="cpu") as f:
            for name in names:
                out[name] = f.get_tensor(name)
    return out


def shard_plan(sizes: list[tuple[str, int]], max_shard_bytes: int) -> list[list[str]]:
    """Greedy packing of named tensors (in order) into shards of at most max_shard_bytes each.

    A tensor larger than the limit gets a shard of its own.
    """
    shards: list[list[str]] = [[]]
    used = 0
    for name, nbytes in sizes:
        if shards[-1] and used + nbytes > max_shard_bytes:
            shards.append([])
            used = 0
        shards[-1].append(name)
        used += nbytes
    return shards


def write_weights(directory: Path, tensors: dict[str, torch.Tensor], max_shard_bytes: int) -> list[str]:
    """Write tensors as model.safetensors, or shards + index when over max_shard_bytes. Returns file names."""
    sizes = [(name, t.numel() * t.element_size()) for name, t in tensors.items()]
    shards = shard_plan(sizes, max_shard_bytes)
    metadata = {"format": "pt"}
    if len(shards) == 1:
        save_file(tensors, str(directory / SINGLE_FILE), metadata=metadata)
        return [SINGLE_FILE]
    weight_map: dict[str, str] = {}
    files = []
    for i, names in enumerate(shards, start=1):
        file_name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file({n: tensors[n] for n in names}, str(directory / file_name), metadata=metadata)
        weight_map.update(dict.fromkeys(names, file_name))
        files.append(file_name)
    index = {"metadata": {"total_size": sum(n for _, n in sizes)}, "weight_map": weight_map}
    (directory / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")
    return files + [INDEX_FILE]
