"""The family table is the one source of the per-model defaults: the README shows it as it is, every
format builds its configs from it, and sdls's own entry agrees with ModelConfig's defaults."""

from __future__ import annotations

from pathlib import Path

from sdls_model.checkpoint_formats import FORMATS
from sdls_model.config import BLOCK_ALIGNMENTS, ModelConfig
from sdls_model.families import FAMILIES, markdown_table

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_model_table_is_the_family_table():
    assert markdown_table() in README.read_text(encoding="utf-8"), "run `python -m sdls_model.families` into README.md"


def test_every_family_is_consistent():
    for family in FAMILIES.values():
        assert family.attention in ("block_causal", "bidirectional"), family.name
        assert family.block_align in BLOCK_ALIGNMENTS, family.name
        assert family.sub_block_size is None or family.block_size % family.sub_block_size == 0, family.name
        assert 0 < family.threshold <= 1 and family.detected_by and family.source, family.name
        assert family.fim is None or len(family.fim) == 3, family.name


def test_sdls_defaults_are_modelconfigs():
    sdls, cfg = FAMILIES["sdls"], ModelConfig()
    assert (sdls.block_size, sdls.block_align, sdls.threshold, sdls.logit_shift) == (
        cfg.block_size,
        cfg.block_align,
        cfg.threshold,
        cfg.logit_shift,
    )


def test_formats_are_named_once():
    names = [f.name for f in FORMATS]
    assert len(names) == len(set(names))
