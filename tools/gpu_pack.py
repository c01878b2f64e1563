"""Pack a gpu_run.sh OUTDIR into what a device call can bring back: tools/gpu_pack.py OUTDIR DEST.

The device returns at most 8 files of at most 16 MiB each, 64 MiB together, named in letters, digits,
'.', '_' and '-' (/work/.library/device/README.md). So DEST gets summary.md, gpu_run.tgz (the files
of OUTDIR under 4 MiB, but no weights or training state) and as many shards of the models the stages
wrote (`*/model/*.safetensors`, each under 15 MiB as save_checkpoint writes them) as fit, the latest
stage's first, renamed STAGE--FILE. What did not come back is listed in OUTDIR/not_returned.txt,
which is inside the archive. Run after every stage: DEST is
rewritten each time.
"""

from __future__ import annotations

import shutil
import sys
import tarfile
from pathlib import Path

MAX_FILES, MAX_FILE, MAX_TOTAL = 8, 16 << 20, 64 << 20
SMALL = 4 << 20  # larger files stay behind (training state, checkpoints)


def pack(outdir: Path, dest: Path) -> list[str]:
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.iterdir():
        if old.is_file():
            old.unlink()
    models = [p for p in outdir.rglob("*.safetensors") if p.parent.name == "model"]
    shards = sorted(models, key=lambda p: str(p.relative_to(outdir)), reverse=True)
    chosen, left_out = [], []
    files, total = 2, 0  # summary.md and gpu_run.tgz
    for shard in shards:
        size = shard.stat().st_size
        if files < MAX_FILES and size <= MAX_FILE and total + size <= MAX_TOTAL - (4 << 20):
            chosen.append(shard)
            files, total = files + 1, total + size
        else:
            left_out.append(str(shard.relative_to(outdir)))
    small = []
    for path in sorted(outdir.rglob("*")):
        if not path.is_file() or path.name == "not_returned.txt" or path in chosen:
            continue
        if path.suffix in (".safetensors", ".pt") or path.stat().st_size > SMALL:
            if path not in shards:
                left_out.append(str(path.relative_to(outdir)))
        else:
            small.append(path)
    (outdir / "not_returned.txt").write_text("".join(f"{name}\n" for name in left_out))
    with tarfile.open(dest / "gpu_run.tgz", "w:gz") as tar:
        for path in [*small, outdir / "not_returned.txt"]:
            tar.add(path, arcname=str(path.relative_to(outdir)))
    if (outdir / "summary.md").exists():
        shutil.copy(outdir / "summary.md", dest / "summary.md")
    for shard in chosen:
        stage = shard.relative_to(outdir).parts[0]
        shutil.copy(shard, dest / f"{stage}--{shard.name}")
    return left_out


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: tools/gpu_pack.py OUTDIR DEST")
    missing = pack(Path(sys.argv[1]), Path(sys.argv[2]))
    if missing:
        print(f"gpu_pack: {len(missing)} file(s) stay on the device (see not_returned.txt)")
