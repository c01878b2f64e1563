"""Hot reload of the model directory: a new valid checkpoint is swapped in, a broken one is refused."""

from __future__ import annotations

import torch
from fixtures_checkpoints import write_sdls
from waiting import eventually

from sdls.worker.reload import ModelReloader
from sdls_model.checkpoint import validate_checkpoint
from sdls_model.engine import Engine


def test_reload_on_new_checkpoint_and_refuse_a_broken_one(tmp_path):
    model_dir = tmp_path / "tiny"
    write_sdls(model_dir, seed=0)
    installed = []
    reloader = ModelReloader(
        model_dir,
        load=lambda d: Engine.from_dir(d, weights="plain"),  # plain: the installed table compares exactly
        install=installed.append,
        validate=validate_checkpoint,
        delay_s=0.2,
    )
    reloader.start()
    try:
        # 1. Published the way training does (atomic directory replace): swapped in, new weights.
        new_model = write_sdls(model_dir, seed=7)
        eventually(lambda: installed, "the new checkpoint to be installed")
        assert torch.equal(installed[0].model.embed_tokens.weight, new_model.embed_tokens.weight)
        # 2. A file rewritten in place with garbage: refused, nothing installed, the reason kept.
        (model_dir / "config.json").write_text("{ truncated")
        eventually(lambda: reloader.rejections, "the broken checkpoint to be rejected")
        # The rejection is the reload of the broken files having run to its end without installing.
        assert len(installed) == 1 and "config.json" in reloader.rejections[0]
        # 3. Fixed again: served again (the watch survived the replacements).
        fixed = write_sdls(model_dir, seed=8)
        eventually(lambda: reloader.reloads == 2, "the fixed checkpoint to be installed")
        # Installed in order on one thread: nothing came in between for the broken files.
        assert len(installed) == 2
        assert torch.equal(installed[1].model.embed_tokens.weight, fixed.embed_tokens.weight)
    finally:
        reloader.stop()
