"""Every kernel compiles for Hopper (sm_90: H100/H200) with Triton's own ptxas, no GPU needed.

The interpreter checks the arithmetic; this checks what only the compiler sees: types that must
agree across branches and loops, tl.dot shape limits, and shared memory per program, at the
dtypes and block sizes the launchers pick for the Qwen2.5 shapes. The compiler cannot run in a
process whose Triton was imported in interpreter mode (the CPU tests'), so the test runs this
file as a script in a clean subprocess.
"""

import os
import subprocess
import sys

import pytest
import torch

triton = pytest.importorskip("triton")
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from sdls_kernels import block_attention as A  # noqa: E402
from sdls_kernels import confidence as C  # noqa: E402
from sdls_kernels import rmsnorm as R  # noqa: E402
from sdls_kernels import rope as P  # noqa: E402
from sdls_kernels import swiglu as W  # noqa: E402

HOPPER = GPUTarget("cuda", 90, 32)
SHARED_LIMIT = 227 * 1024  # bytes of shared memory a program may use on sm_90

ATTN_ARGS = dict(
    q_ptr="*{t}",
    kc_ptr="*{t}",
    vc_ptr="*{t}",
    kn_ptr="*{t}",
    vn_ptr="*{t}",
    cache_lens_ptr="*i32",
    new_lens_ptr="*i32",
    slots_ptr="*i64",
    m_ptr="*fp32",
    l_ptr="*fp32",
    acc_ptr="*fp32",
    **dict.fromkeys(
        (
            "sq_b",
            "sq_h",
            "sq_t",
            "skc_s",
            "skc_h",
            "skc_n",
            "svc_s",
            "svc_h",
            "svc_n",
            "skn_b",
            "skn_h",
            "skn_n",
            "svn_b",
            "svn_h",
            "svn_n",
            "H",
            "T",
            "D",
            "chunk",
        ),
        "i32",
    ),
    scale_log2="fp32",
    n_splits="i32",
)


def attention(t, D, G, slots, new_lens, precision):
    block_d = triton.next_power_of_2(D)
    return (
        A._block_attention_split_kernel,
        {k: v.format(t=t) for k, v in ATTN_ARGS.items()},
        dict(
            G=G,
            HKV=4,
            HAS_SLOTS=slots,
            HAS_NEW_LENS=new_lens,
            BLOCK_M=64,
            BLOCK_N=64,
            BLOCK_D=block_d,
            PRECISION=precision,
        ),
        dict(num_warps=4, num_stages=2),
    )


CASES = {
    "confidence_partial_bf16": (
        C._confidence_partial_kernel,
        dict(
            logits_ptr="*bf16",
            rows_ptr="*i64",
            stride_row="i32",
            V="i32",
            chunk="i32",
            m1_ptr="*fp32",
            i1_ptr="*i32",
            m2_ptr="*fp32",
            s_ptr="*fp32",
            a_ptr="*fp32",
            n_splits="i32",
        ),
        dict(HAS_ROWS=False, BLOCK_V=4096),
        dict(num_warps=8),
    ),
    "confidence_combine": (
        C._confidence_combine_kernel,
        dict(
            m1_ptr="*fp32",
            i1_ptr="*i32",
            m2_ptr="*fp32",
            s_ptr="*fp32",
            a_ptr="*fp32",
            token_ptr="*i64",
            prob_ptr="*fp32",
            entropy_ptr="*fp32",
            margin_ptr="*fp32",
            n_splits="i32",
        ),
        dict(BLOCK_S=16),
        dict(num_warps=4),
    ),
    "attention_bf16_d128": attention("bf16", 128, 7, False, False, "tf32"),
    "attention_bf16_d64_slots_lens": attention("bf16", 64, 7, True, True, "tf32"),
    "attention_fp32_d40": attention("fp32", 40, 3, True, True, "ieee"),
    "attention_combine": (
        A._block_attention_combine_kernel,
        dict(
            m_ptr="*fp32",
            l_ptr="*fp32",
            acc_ptr="*fp32",
            out_ptr="*bf16",
            so_b="i32",
            so_h="i32",
            so_t="i32",
            H="i32",
            T="i32",
            D="i32",
            n_parts="i32",
        ),
        dict(BLOCK_S=32, BLOCK_D=128),
        dict(num_warps=4),
    ),
    "add_rmsnorm_bf16_3584": (
        R._add_rmsnorm_kernel,
        dict(
            x_ptr="*bf16",
            r_ptr="*bf16",
            w_ptr="*bf16",
            y_ptr="*bf16",
            h_ptr="*bf16",
            sx="i32",
            sr="i32",
            sy="i32",
            sh="i32",
            D="i32",
            eps="fp32",
        ),
        dict(HAS_RESIDUAL=True, BLOCK_D=4096),
        dict(num_warps=16),
    ),
    "rope_bf16": (
        P._rope_kernel,
        dict(
            q_ptr="*bf16",
            k_ptr="*bf16",
            pos_ptr="*i64",
            inv_freq_ptr="*fp32",
            **dict.fromkeys(
                ("sq_b", "sq_t", "sq_h", "sk_b", "sk_t", "sk_h", "sp_b", "sp_t", "T", "HQ", "HK", "HALF"), "i32"
            ),
        ),
        dict(BLOCK_H=32, BLOCK_HALF=64),
        dict(num_warps=4),
    ),
    "swiglu_bf16": (
        W._swiglu_kernel,
        dict(x_ptr="*bf16", out_ptr="*bf16", sx="i32", so="i32", F_="i32"),
        dict(BLOCK=1024),
        dict(num_warps=4),
    ),
}


def compile_case(name: str) -> int:
    """Compile one case; returns the shared memory it needs (bytes)."""
    fn, signature, constexprs, options = CASES[name]
    jitted = triton.jit(fn)
    signature = {**signature, **dict.fromkeys(constexprs, "constexpr")}
    assert list(signature) == jitted.arg_names, f"{name}: signature out of date with the kernel's arguments"
    source = ASTSource(
        fn=jitted, signature=signature, constexprs={(jitted.arg_names.index(k),): v for k, v in constexprs.items()}
    )
    compiled = triton.compile(source, target=HOPPER, options=options)
    assert "ptx" in compiled.asm, f"{name}: no PTX"
    return compiled.metadata.shared


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU the other kernel tests compile and run them")
def test_compiles_for_hopper():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_DEFAULT_FP_FUSION"] = "1"
    proc = subprocess.run([sys.executable, __file__], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    for name in CASES:
        shared = int(next(line for line in proc.stdout.splitlines() if line.startswith(name + " ")).split()[1])
        assert shared <= SHARED_LIMIT, f"{name} needs {shared} bytes of shared memory"


if __name__ == "__main__":
    for case in CASES:
        print(case, compile_case(case), flush=True)
