"""The shipped default model: small, in the engine's format, block-causal fim, documented, and it
completes simple code through the engine."""

import json

import pytest

from sdls_model.checkpoint import load_checkpoint, scratch_model_dir
from sdls_model.engine import DecodeSettings, Engine, InfillJob

MiB = 2**20
DEFAULT = scratch_model_dir()  # the from-scratch model (the adapted one: tests/test_adapted_model.py)


def test_files_fit_the_size_limits():
    shards = sorted(DEFAULT.glob("*.safetensors"))
    assert shards, f"no safetensors shards in {DEFAULT}"
    assert all(p.stat().st_size < 15 * MiB for p in shards), [(p.name, p.stat().st_size) for p in shards]
    total = sum(p.stat().st_size for p in DEFAULT.iterdir() if p.is_file())
    assert total <= 60 * MiB, total
    for name in ("config.json", "tokenizer.json", "MODEL_CARD.md"):
        assert (DEFAULT / name).is_file(), name


def test_config_is_block_causal_fim():
    config = json.loads((DEFAULT / "config.json").read_text())
    assert config["model_type"] == "sdls"
    assert config["attention"] == "block_causal" and config["infill_layout"] == "fim"


def test_card_documents_data_training_quality_and_what_is_owed():
    card = (DEFAULT / "MODEL_CARD.md").read_text()
    for section in ("## Data", "## Training", "## Quality", "## Speed", "## Reproduce", "sdls train --preset cpu"):
        assert section in card, section
    assert "GPU run owed" in card
    assert "tokens seen" in card and "HumanEval single-line infill pass@1" in card


@pytest.fixture(scope="module")
def engine():
    _cfg, model, tokenizer = load_checkpoint(DEFAULT)
    return Engine(model, tokenizer, max_context=512, max_new_tokens=32, max_batch=4, n_sessions=1)


SIMPLE = [  # (prefix, suffix, the first line a competent model writes)
    ("def add(a, b):\n    return ", "\n", "a + b"),
    ("import sys\n\n\ndef main():\n    print(sys.argv)\n\n\nif __name__ == ", ":\n    main()\n", '"__main__"'),
    ("class Point:\n    def __init__(self, x, y):\n        self.x = x\n        self.y = ", "\n", "y"),
]


@pytest.mark.parametrize("prefix,suffix", [(prefix, suffix) for prefix, suffix, _ in SIMPLE])
def test_loads_and_decodes_a_simple_function(engine, prefix, suffix):
    result = engine.run([InfillJob(prefix, suffix, 32, DecodeSettings())])[0]
    assert not result.cancelled and result.stats.forwards >= 1
    assert engine.cfg.mask_id not in result.tokens and len(result.tokens) <= 32
    # endswith: a space typed before the cursor is not repeated in the text (engine/healing.py)
    assert engine.tokenizer.decode(result.tokens).endswith(result.text)


@pytest.mark.xfail(
    strict=True,
    reason="the CPU-trained default model has not learned to complete code yet "
    "(see MODEL_CARD.md); the GPU run is owed. Remove this mark when it lands.",
)
@pytest.mark.parametrize("prefix,suffix,expected", SIMPLE)
def test_completes_a_simple_function(engine, prefix, suffix, expected):
    result = engine.run([InfillJob(prefix, suffix, 32, DecodeSettings())])[0]
    assert result.text.split("\n")[0].strip() == expected, result.text
