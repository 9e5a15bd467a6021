"""Compile the attention kernels for an NVIDIA GPU without one, and report their resources.

Triton compiles to PTX and cubin on any machine (its wheel ships NVIDIA's ptxas), so the
kernels a launch configuration would run can be built for a GPU architecture here: a compile
error in a GPU-only path (TMA descriptors, a tile too big for the shared memory) shows up
without a GPU, and the binary says how many registers and how much local memory (spills) each
thread uses. For each kernel of one call (forward; fused backward, or the split backward's
dK/dV and dQ kernels) it prints a table row, then one JSON line:

    {"bench": "kernel_inspect", "kernel": "fwd", "T": 361, "D": 64, "dtype": "bf16",
     "arch": 90, "tma": false, "registers": 230, "local_bytes": 0, "shared_bytes": 81920,
     "wgmma": 16, "mma_sync": 0, "tma_loads": 0, ...}

    python scripts/inspect_kernels.py --t 361 --d 64            # the table's configuration
    python scripts/inspect_kernels.py --t 361 --d 64 --tma      # the same with TMA loads

The signature mimics Triton's specialization of a real call on contiguous (B, H, T, D)
tensors: ints equal to 1 become constants and multiples of 16 carry the divisibility hint.
Run it without TRITON_INTERPRET (the interpreter compiles nothing). Counts are of PTX
instructions in the unrolled code, not of executions.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DTYPES = {"bf16": 2, "fp16": 2, "fp32": 4}
COUNTED = {  # PTX instruction patterns (regular expressions)
    "wgmma": r"wgmma\.mma_async",  # Hopper's warpgroup tensor-core instruction
    "mma_sync": r"mma\.sync",  # Ampere's (a Hopper kernel using it leaves speed behind)
    "tma_loads": r"cp\.async\.bulk\.tensor",  # TMA tile loads
    "cp_async": r"cp\.async\.c[ag]\.",  # async copies of pointer loads (not commit/wait)
    "exp2": r"ex2\.approx",
}


def _signature(fn, dtype: str, meta: dict[str, object], T: int, H: int, D: int):
    """(signature, constexprs, attrs) for Triton's ASTSource, as a call on contiguous
    (B, H, T, D) tensors with no padding mask would be specialized."""
    strides = {"b": H * T * D, "h": T * D, "t": D, "d": 1}
    sig: dict[str, str] = {}
    constexprs: dict[tuple[int, ...], object] = {}
    attrs: dict[tuple[int, ...], list] = {}
    for i, name in enumerate(fn.arg_names):
        if name in meta:
            sig[name], constexprs[(i,)] = "constexpr", meta[name]
        elif name[0].isupper() and name not in ("H", "T"):  # tensors: Q, K, V, Mask, LSE, ...
            elem = {"Mask": "u8", "LSE": "fp32", "Delta": "fp32"}.get(name, dtype)
            sig[name], attrs[(i,)] = f"*{elem}", [["tt.divisibility", 16]]
        elif name in ("qk_scale", "sm_scale"):
            sig[name] = "fp32"
        else:
            match = re.fullmatch(r"stride_[a-z]+([bhtd])", name)
            value = strides[match.group(1)] if match else {"H": H, "T": T}.get(name, 0)
            if name in ("stride_mb", "stride_mt"):
                value = 0  # no mask: the kernels never read these
            if value == 1:
                sig[name], constexprs[(i,)] = "constexpr", 1
            else:
                sig[name] = "i32"
                if value and value % 16 == 0:
                    attrs[(i,)] = [["tt.divisibility", 16]]
    return sig, constexprs, attrs


def _kernels(T: int, D: int, dtype: str, cfg, kernel) -> list[tuple[str, object, dict, dict]]:
    """(name, jit function, constexprs, launch options) of each kernel one call runs."""
    from kernels.attention import op

    common = dict(
        HAS_MASK=False,
        HEAD_DIM=D,
        INPUT_PRECISION="ieee" if dtype == "fp32" else "tf32",
        EMULATE_BF16=False,
    )
    out = [
        ("fwd", kernel.attn_fwd_kernel,
         dict(common, BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, USE_TMA=cfg.fwd_tma),
         dict(num_warps=cfg.num_warps, num_stages=cfg.num_stages)),
    ]  # fmt: skip
    if cfg.uses_fused_bwd(T):
        fused = dict(common, BLOCK=op.fused_block(T))
        out.append(
            ("bwd_fused", kernel.attn_bwd_fused_kernel, fused, dict(num_warps=cfg.fused_warps))
        )
        return out
    options = dict(num_warps=cfg.bwd_warps, num_stages=cfg.bwd_stages)
    out.append(("bwd_dkdv", kernel.attn_bwd_dkdv_kernel,
                dict(common, BLOCK_M=cfg.bwd_inner, BLOCK_N=cfg.bwd_owned, USE_TMA=cfg.bwd_tma),
                options))  # fmt: skip
    out.append(("bwd_dq", kernel.attn_bwd_dq_kernel,
                dict(common, BLOCK_M=cfg.bwd_owned, BLOCK_N=cfg.bwd_inner, USE_TMA=cfg.bwd_tma),
                options))  # fmt: skip
    return out


def _resources(cubin: bytes) -> dict[str, int]:
    """Registers and local memory (spills, stack) per thread of a compiled kernel, from
    ``cuobjdump --dump-resource-usage`` (shipped with Triton's NVIDIA backend)."""
    import triton

    cuobjdump = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kernel.cubin"
        path.write_bytes(cubin)
        text = subprocess.run(
            [str(cuobjdump), "--dump-resource-usage", str(path)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    usage = {key: int(value) for key, value in re.findall(r"\b(REG|STACK|LOCAL):(\d+)", text)}
    return {"registers": usage["REG"], "local_bytes": usage["LOCAL"] + usage["STACK"]}


def inspect(T: int, D: int, dtype: str, arch: int, tma: bool, H: int = 8) -> list[dict]:
    """One record per kernel of a (T, D) call with the table's launch configuration."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from kernels.attention import kernel, op

    if type(kernel.attn_fwd_kernel).__name__ == "InterpretedFunction":
        raise SystemExit(
            "inspect_kernels: unset TRITON_INTERPRET (the interpreter compiles nothing)"
        )
    cfg = op.pick_config(T, D, DTYPES[dtype])
    if tma:
        cfg = dataclasses.replace(cfg, fwd_tma=True, bwd_tma=True)
    records = []
    for name, fn, meta, options in _kernels(T, D, dtype, cfg, kernel):
        sig, constexprs, attrs = _signature(fn, dtype, meta, T, H, D)
        compiled = triton.compile(
            ASTSource(fn, sig, constexprs, attrs),
            target=GPUTarget("cuda", arch, 32),
            options=options,
        )
        ptx = compiled.asm["ptx"]
        record = {"bench": "kernel_inspect", "kernel": name, "T": T, "D": D, "dtype": dtype,
                  "arch": arch, "tma": bool(meta.get("USE_TMA", False)), **options,
                  **_resources(compiled.asm["cubin"]), "shared_bytes": compiled.metadata.shared,
                  **{key: len(re.findall(pattern, ptx)) for key, pattern in COUNTED.items()},
                  "triton": triton.__version__}  # fmt: skip
        records.append(record)
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--t", type=int, default=361, help="sequence length (default 361)")
    parser.add_argument("--d", type=int, default=64, choices=(16, 32, 64, 128), help="head dim")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    parser.add_argument("--arch", type=int, default=90, help="compute capability x10 (90: H100)")
    parser.add_argument(
        "--tma", action="store_true", help="TMA loads in every kernel that has them"
    )
    args = parser.parse_args(argv)
    if args.t < 1:
        parser.error(f"--t must be at least 1, got {args.t}")
    records = inspect(args.t, args.d, args.dtype, args.arch, args.tma)
    print(
        f"# attention kernels compiled for sm_{args.arch} (triton {records[0]['triton']}), "
        f"T={args.t} D={args.d} {args.dtype}; PTX counts are of instructions, not executions"
    )
    header = (
        f"{'kernel':<10} {'tma':>3} {'warps':>5} {'stages':>6} {'regs':>4} {'local B':>7} "
        f"{'shared B':>8} {'wgmma':>5} {'mma.sync':>8} {'tma ld':>6} {'cp.async':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in records:
        print(f"{r['kernel']:<10} {'yes' if r['tma'] else 'no':>3} {r['num_warps']:>5} "
              f"{r.get('num_stages', '-'):>6} {r['registers']:>4} {r['local_bytes']:>7} "
              f"{r['shared_bytes']:>8} {r['wgmma']:>5} {r['mma_sync']:>8} {r['tma_loads']:>6} "
              f"{r['cp_async']:>8}")  # fmt: skip
    for r in records:
        print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
