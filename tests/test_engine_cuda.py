"""GPU only (tools/gpu_run.sh): the engine on CUDA, through the product path (fast decoder and CUDA
graphs), commits the tokens the CPU reference commits on the shipped model, in float32 (the Triton
kernels use IEEE float32 there, and cuBLAS does not take TF32 unless asked)."""

import sysconfig
from pathlib import Path

import pytest
import torch

from sdls_model.bench import infill_tasks
from sdls_model.engine import DecodeSettings, Engine, InfillJob

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def test_cuda_product_path_commits_the_cpu_reference_tokens():
    tasks = infill_tasks(Path(sysconfig.get_paths()["stdlib"]), 6, seed=0)
    jobs = [InfillJob(p, s, 32, DecodeSettings()) for p, s in tasks]
    jobs += [InfillJob(p, s, 24, DecodeSettings(), single_line=True) for p, s in tasks[:3]]
    cpu = Engine.from_dir(device="cpu", dtype="float32")
    cuda = Engine.from_dir(device="cuda", dtype="float32")
    want = cpu.run(jobs)
    got = cuda.run(jobs)
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.tokens == w.tokens, f"job {i}: CUDA {g.tokens} vs CPU {w.tokens}"
    stats = cuda.decode_stats()
    assert stats["paths"]["graph"] > 0, stats  # the product path on CUDA: captured graph steps
    assert stats["graph"]["mode"] == "cuda graph", stats  # no fallback to eager
