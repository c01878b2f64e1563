"""What every test shares: the Triton mode, one replayable seed per run, Hypothesis profiles, and the
fixtures more than one file needs (a tiny checkpoint, a short temporary folder for Unix sockets).

Seeds: a run draws one seed (or takes `--seed N` / SDLS_TEST_SEED=N) and prints it in the header;
each test's `seed` fixture is derived from it and the test's id, so `pytest --seed N path::test`
replays that test alone with the data it failed on. Hypothesis tests are seeded from it too, and
derandomized where CI is set.
"""

from __future__ import annotations

import os
import random
import shutil
import sys
import tempfile
import zlib
from pathlib import Path

import pytest
import torch

# Triton runs on a CPU only in its interpreter, which it picks when TRITON_INTERPRET=1 is set before
# `triton` is first imported. Set it here, before any test module (or sdls_kernels) imports triton;
# with CUDA present the kernels are compiled, as in production.
if "triton" in sys.modules:
    raise RuntimeError("triton was imported before tests/conftest.py could choose its mode")
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from hypothesis import settings

SEED_ENV = "SDLS_TEST_SEED"
settings.register_profile("sdls", deadline=None, print_blob=True)  # a failure prints its reproduce blob
settings.register_profile("sdls-ci", parent=settings.get_profile("sdls"), derandomize=True, database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("sdls-ci" if os.environ.get("CI") else "sdls"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--seed", type=int, default=None, help=f"seed of this run's random data (or {SEED_ENV}=N)")


@pytest.hookimpl(tryfirst=True)  # before Hypothesis' own pytest_configure reads --hypothesis-seed
def pytest_configure(config: pytest.Config) -> None:
    seed = config.getoption("--seed")
    if seed is None:
        seed = int(os.environ.get(SEED_ENV) or int.from_bytes(os.urandom(4), "little"))
    config.sdls_seed = seed  # type: ignore[attr-defined]
    os.environ[SEED_ENV] = str(seed)  # subprocesses a test starts see the same run seed
    if config.getoption("hypothesis_seed", default=None) is None and not settings.default.derandomize:
        config.option.hypothesis_seed = seed


def pytest_report_header(config: pytest.Config) -> list[str]:
    mode = "compiled (CUDA)" if os.environ.get("TRITON_INTERPRET") != "1" else "interpreter (TRITON_INTERPRET=1)"
    return [
        f"sdls test seed: {config.sdls_seed} (replay: pytest --seed {config.sdls_seed} or {SEED_ENV}={config.sdls_seed})",
        f"triton: {mode}; hypothesis profile: {settings.get_current_profile_name()}",
    ]


def seed_of(config: pytest.Config, nodeid: str) -> int:
    """The seed of one test in this run: the same for the same run seed, whatever else runs."""
    return zlib.crc32(f"{config.sdls_seed}/{nodeid}".encode())


@pytest.fixture
def seed(request: pytest.FixtureRequest) -> int:
    """This test's seed (printed with a failure, replayed with the run's `--seed`)."""
    value = seed_of(request.config, request.node.nodeid)
    request.node.user_properties.append(("seed", value))
    return value


@pytest.fixture(autouse=True)
def _seeded_global_rngs(seed: int) -> None:
    """torch's and Python's global generators start each test from its seed (draws without a
    generator of their own replay too)."""
    torch.manual_seed(seed)
    random.seed(seed)


@pytest.fixture
def gen(seed: int) -> torch.Generator:
    """A CPU torch.Generator seeded with this test's seed."""
    return torch.Generator().manual_seed(seed)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    seeds = [v for k, v in item.user_properties if k == "seed"]
    if report.failed and seeds:
        run = item.config.sdls_seed
        report.sections.append(("seed", f"test seed {seeds[0]}; replay: pytest --seed {run} '{item.nodeid}'"))


# -- fixtures shared by several files -----------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight sdls checkpoint (tests/fixtures_checkpoints.py), one per test module."""
    from fixtures_checkpoints import write_sdls

    path = tmp_path_factory.mktemp("model") / "tiny"
    write_sdls(path)
    return path


@pytest.fixture
def short_tmp_dir():
    """A fresh folder under /tmp with a short path: Unix socket paths must stay under 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="sdls-t", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)
