"""Fused attention: input checks, Triton launchers, autograd, and backend dispatch.

Public entry point: :func:`attention`. Shapes are (B, H, T, D): batch, heads, tokens, head dim.
Attention is non-causal (a board has no time order) with scale 1/sqrt(D).

Padding convention (same as the boolean ``attn_mask`` of PyTorch's SDPA, and the *opposite* of
``nn.MultiheadAttention``'s ``key_padding_mask``): ``key_padding_mask[b, t] = True`` means key
``t`` of batch row ``b`` is real and may be attended to; False means it is padding and gets zero
weight. A batch row with no real key at all gives an all-zero output (and zero gradients), not
NaN.

Backends:
- ``"triton"``: our kernels in :mod:`kernels.attention.kernel`. CUDA tensors, or CPU tensors when
  the process was started with ``TRITON_INTERPRET=1`` (Triton's interpreter, used by the tests);
  head dim in {16, 32, 64, 128}; float32 / float16 / bfloat16.
- ``"sdpa"``: ``torch.nn.functional.scaled_dot_product_attention``; any device, any float dtype.
- ``None`` (auto): the ``SELFPLAY_ATTENTION`` environment variable (``triton`` | ``sdpa``) when
  set, otherwise Triton for CUDA tensors the kernel supports and SDPA for everything else (CPU
  tensors, an unsupported head dim or dtype, triton not importable, or inside
  ``torch.jit.trace``, which cannot record a Triton launch).

Launch configurations (tiles, warps, stages, fused or split backward) come from
:func:`pick_config`, a table by (T, D) set from ``scripts/bench_attention.py --sweep``;
:func:`override_config` swaps one in for a block of code.

Small batches are launch-bound, so the per-call path is kept short: a call that needs no
gradient makes no autograd node, and :func:`_launch` goes through Triton's dispatch only on the
first call with a given signature, then calls the compiled launcher directly
(``SELFPLAY_ATTENTION_FAST_LAUNCH=0`` turns that off). ``scripts/bench_attention_overhead.py``
measures each layer of a call.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

try:
    import triton

    from . import kernel as _kernel

    _TRITON_IMPORT_ERROR: str | None = None
    # Triton decides at decoration time whether kernels run in its CPU interpreter
    # (TRITON_INTERPRET=1 must be set before triton is imported); ask the kernel itself.
    _INTERPRETED = type(_kernel.attn_fwd_kernel).__name__ == "InterpretedFunction"
except Exception as exc:  # a missing or broken triton install must not break the sdpa path
    triton = None  # type: ignore[assignment]
    _kernel = None  # type: ignore[assignment]
    _TRITON_IMPORT_ERROR = f"{type(exc).__name__}: {exc}"
    _INTERPRETED = False

BACKENDS = ("triton", "sdpa")
ENV_BACKEND = "SELFPLAY_ATTENTION"
# Debug switch: fill every kernel output with NaN before launch, so an element a kernel forgot
# to write shows up as NaN instead of as stale memory that happens to look plausible.
ENV_POISON = "SELFPLAY_ATTENTION_POISON"
TRITON_HEAD_DIMS = (16, 32, 64, 128)
TRITON_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

_DTYPE_NAMES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}


# --------------------------------------------------------------------------------------------
# Input checks: everything is validated before any kernel launch.
# --------------------------------------------------------------------------------------------


def _check_inputs(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_padding_mask: torch.Tensor | None
) -> None:
    """Raise ValueError unless q, k, v (and the mask) form a valid (B, H, T, D) attention call."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 4:
            raise ValueError(
                f"{name} must have shape (B, H, T, D) (4 dims), got {t.dim()} dims: "
                f"{tuple(t.shape)}"
            )
    if not (q.shape == k.shape == v.shape):
        raise ValueError(
            "q, k, v must have the same shape (B, H, T, D), got "
            f"q={tuple(q.shape)}, k={tuple(k.shape)}, v={tuple(v.shape)}"
        )
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(
            f"q, k, v must have the same dtype, got q={q.dtype}, k={k.dtype}, v={v.dtype}"
        )
    if not q.dtype.is_floating_point:
        raise ValueError(f"q, k, v must be floating point, got {q.dtype}")
    if not (q.device == k.device == v.device):
        raise ValueError(
            f"q, k, v must be on the same device, got q={q.device}, k={k.device}, v={v.device}"
        )
    B, _, T, D = q.shape
    if T < 1 or D < 1:
        raise ValueError(f"T and D must be at least 1, got shape {tuple(q.shape)}")
    if key_padding_mask is None:
        return
    if not isinstance(key_padding_mask, torch.Tensor):
        raise ValueError(
            "key_padding_mask must be a torch.Tensor or None, "
            f"got {type(key_padding_mask).__name__}"
        )
    if key_padding_mask.dtype != torch.bool:
        raise ValueError(
            f"key_padding_mask must be torch.bool (True = real key, False = padding), "
            f"got {key_padding_mask.dtype}"
        )
    if tuple(key_padding_mask.shape) != (B, T):
        raise ValueError(
            f"key_padding_mask must have shape (B, T) = {(B, T)} for q of shape "
            f"{tuple(q.shape)}, got {tuple(key_padding_mask.shape)}"
        )
    if key_padding_mask.device != q.device:
        raise ValueError(
            f"key_padding_mask must be on the same device as q ({q.device}), "
            f"got {key_padding_mask.device}"
        )


def _triton_unsupported(q: torch.Tensor) -> str | None:
    """Why the Triton backend cannot run on q (a sentence), or None when it can."""
    if _kernel is None:
        return f"triton is not importable ({_TRITON_IMPORT_ERROR})"
    if not q.is_cuda and not _INTERPRETED:
        return (
            f"the triton backend needs CUDA tensors, got tensors on {q.device} "
            "(CPU tensors work only when the process starts with TRITON_INTERPRET=1)"
        )
    if q.dtype not in TRITON_DTYPES:
        allowed = ", ".join(_DTYPE_NAMES.values())
        return f"the triton backend supports dtypes {allowed}; got {q.dtype}"
    D = q.shape[-1]
    if D not in TRITON_HEAD_DIMS:
        return f"the triton backend supports head dims D in {TRITON_HEAD_DIMS}; got D={D}"
    return None


def _resolve_backend(backend: str | None, q: torch.Tensor) -> str:
    """Pick "triton" or "sdpa": explicit argument, then the env var, then auto."""
    if backend is None:
        env = os.environ.get(ENV_BACKEND, "").strip().lower()
        if env:
            if env not in BACKENDS:
                raise ValueError(f"{ENV_BACKEND}={env!r} is not one of {BACKENDS}")
            backend = env
    elif backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is not one of {BACKENDS} or None (auto)")
    if backend is None:
        # under torch.jit.trace only torch ops are recorded, so auto takes sdpa there
        usable = q.is_cuda and _triton_unsupported(q) is None and not torch.jit.is_tracing()
        return "triton" if usable else "sdpa"
    return backend


# --------------------------------------------------------------------------------------------
# Triton launchers.
# --------------------------------------------------------------------------------------------


def _next_pow2(n: int) -> int:
    return 1 << (n - 1).bit_length()


@dataclass(frozen=True)
class LaunchConfig:
    """Tiles, warps and pipeline stages for one (T, D): the forward kernel's, then the backward's.

    The backward runs either as one fused kernel per (batch, head) when the whole sequence fits
    one tile (``fused_bwd``; the tile is the next power of two >= T), or as three kernels (row
    term, dK/dV, dQ). In the split backward each program *owns* ``bwd_owned`` rows (keys for
    dK/dV, queries for dQ) and loops over the other side ``bwd_inner`` at a time.
    """

    block_m: int
    """Forward: query rows per program (a power of two >= 16, ``tl.dot``'s smallest tile)."""
    block_n: int
    """Forward: keys per inner-loop step."""
    num_warps: int
    """Forward: warps per program."""
    num_stages: int = 2
    """Forward: software-pipeline depth of the key loop."""
    fused_bwd: bool = False
    """Whole backward in one kernel; only used when T <= FUSED_MAX_T."""
    fused_warps: int = 4
    """Warps per program of the fused backward."""
    bwd_owned: int = 64
    """Split backward: keys (dK/dV kernel) or queries (dQ kernel) owned by one program."""
    bwd_inner: int = 64
    """Split backward: rows of the other side per inner-loop step."""
    bwd_warps: int = 4
    """Split backward: warps per program."""
    bwd_stages: int = 2
    """Split backward: software-pipeline depth."""
    fwd_tma: bool = False
    """Forward: K and V tiles through tensor descriptors (Hopper's TMA unit) where the GPU and
    the tensors allow it (:func:`_tma_ok`); ordinary masked loads otherwise."""
    bwd_tma: bool = False
    """Split backward: the streamed tiles (Q and dO for dK/dV, K and V for dQ) through tensor
    descriptors, under the same conditions."""

    def __post_init__(self) -> None:
        for name in ("block_m", "block_n", "bwd_owned", "bwd_inner"):
            value = getattr(self, name)
            if value < 16 or value & (value - 1):
                raise ValueError(f"LaunchConfig.{name} must be a power of two >= 16, got {value}")
        for name in ("num_warps", "fused_warps", "bwd_warps"):
            if getattr(self, name) not in (1, 2, 4, 8, 16):
                raise ValueError(
                    f"LaunchConfig.{name} must be 1, 2, 4, 8 or 16, got {getattr(self, name)}"
                )
        if self.num_stages < 1 or self.bwd_stages < 1:
            raise ValueError(
                f"LaunchConfig stages must be >= 1, got {self.num_stages}, {self.bwd_stages}"
            )

    def uses_fused_bwd(self, T: int) -> bool:
        return self.fused_bwd and T <= FUSED_MAX_T

    def with_backward_of(self, other: LaunchConfig) -> LaunchConfig:
        """This configuration's forward settings with ``other``'s backward settings."""
        return replace(self, **{name: getattr(other, name) for name in _BACKWARD_FIELDS})


_BACKWARD_FIELDS = (
    "fused_bwd", "fused_warps", "bwd_owned", "bwd_inner", "bwd_warps", "bwd_stages", "bwd_tma",
)  # fmt: skip


FUSED_MAX_T = 128
"""Longest sequence the fused backward takes (its tile holds the whole sequence)."""


def fused_block(T: int) -> int:
    """The fused backward's tile: the next power of two >= T, at least 16."""
    return max(16, _next_pow2(T))


# Winners of `scripts/bench_attention.py --sweep` (NVIDIA H200, bf16, B=1024, H=8, measured at
# T = 9, 42, 81, 361 for D = 32 and 64), applied to the range of T around each measured length:
# (longest T, forward (block_m, block_n, warps, stages[, tma]), backward: ("fused", warps) or
# ("split", owned, inner, warps, stages[, tma])); tma: True for TMA loads (LaunchConfig.fwd_tma,
# bwd_tma).
_MEASURED: list[tuple[int, tuple[int, ...], tuple]] = [
    (16, (16, 16, 2, 2), ("fused", 2)),
    (32, (0, 0, 0, 0), ()),  # not measured: the heuristic
    (64, (64, 64, 4, 2), ("fused", 4)),
    (128, (64, 32, 4, 3), ("fused", 8)),
]
_MEASURED_HEAD_DIMS = (32, 64)

# Past the fused backward (T > 128), per head dim: the H100 re-sweep at T = 361 with the
# long-sequence candidates (docs/gpu/h100_attention_sweep_361.txt; 27 candidates each). The
# forward at D = 64 gained 2.5 % from a fourth stage, the backward at D = 32 3.6 % from 16-row
# inner steps; every other setting of the H200's T = 361 winner, forward (128, 64, 4, 3) and
# backward ("split", 128, 32, 4, 3), stayed the fastest.
_MEASURED_LONG: dict[int, tuple[tuple[int, ...], tuple]] = {
    64: ((128, 64, 4, 4), ("split", 128, 32, 4, 3)),
    32: ((128, 64, 4, 3), ("split", 128, 16, 4, 4)),
}


def pick_config(T: int, D: int, itemsize: int = 2) -> LaunchConfig:
    """Launch configuration for sequence length T, head dim D and element size (bytes).

    16-bit inputs with D in {32, 64} use the measured table above. Everything else (fp32, whose
    tiles are twice the bytes; D = 16 or 128; 17 <= T <= 32) uses a heuristic: tiles follow the
    sequence, the smallest power of two >= T (16 at least, ``tl.dot``'s smallest tile) up to 64
    query rows, where a general kernel's 128-row tile would be >90 % padding at T = 9; a 16-row
    tile is one warp's MMA, longer tiles get more warps; sequences that fit one tile (and whose
    q, k, v, o, dO tiles fit the registers) take the fused one-kernel backward.
    """
    override = _CONFIG_OVERRIDES.get((T, D))
    if override is not None:
        return override
    # a plain dict, not functools.lru_cache: torch.compile warns about tracing through that
    config = _TABLE_CACHE.get((T, D, itemsize))
    if config is None:
        config = _TABLE_CACHE[(T, D, itemsize)] = _table_config(T, D, itemsize)
    return config


_TABLE_CACHE: dict[tuple[int, int, int], LaunchConfig] = {}


def _table_config(T: int, D: int, itemsize: int) -> LaunchConfig:
    if itemsize == 2 and D in _MEASURED_HEAD_DIMS:
        if T > FUSED_MAX_T:
            fwd, bwd = _MEASURED_LONG[D]
        else:
            _, fwd, bwd = next(row for row in _MEASURED if T <= row[0])
        if bwd:
            bm, bn, w, st, *fwd_tma = fwd  # an optional last True: TMA loads
            cfg = LaunchConfig(block_m=bm, block_n=bn, num_warps=w, num_stages=st,
                               fwd_tma=bool(fwd_tma and fwd_tma[0]))  # fmt: skip
            if bwd[0] == "fused":
                return replace(cfg, fused_bwd=True, fused_warps=bwd[1])
            _, owned, inner, bw, bst, *bwd_tma = bwd
            return replace(cfg, bwd_owned=owned, bwd_inner=inner, bwd_warps=bw, bwd_stages=bst,
                           bwd_tma=bool(bwd_tma and bwd_tma[0]))  # fmt: skip
    block = min(64, max(16, _next_pow2(T)))
    warps = {16: 1, 32: 2}.get(block, 4)
    fb = fused_block(T)
    fused = T <= 64 and fb * D <= 64 * 64
    # about 64 bytes of each (tile, D) operand a thread: twice the warps for fp32
    fused_warps = max(1, min(8, fb * D * itemsize // 2048))
    return LaunchConfig(
        block_m=block,
        block_n=block,
        num_warps=warps,
        num_stages=2,
        fused_bwd=fused,
        fused_warps=fused_warps,
        bwd_owned=block,
        bwd_inner=block,
        bwd_warps=warps,
        bwd_stages=2,
    )


def candidate_configs(T: int, D: int) -> list[LaunchConfig]:
    """The configurations ``scripts/bench_attention.py --sweep`` times for (T, D): the default
    first, then variations of tiles, warps and stages (duplicates removed)."""
    base = pick_config(T, D)
    fb = fused_block(T)
    out = [base]
    forward = [(16, 16, 1, 1), (16, 16, 2, 2), (32, 32, 2, 2), (64, 64, 4, 2), (64, 64, 4, 3),
               (128, 64, 8, 2), (128, 64, 4, 3), (64, 32, 4, 3)]  # fmt: skip
    if T > FUSED_MAX_T:
        # long sequences: the bigger tiles and deeper pipelines of FlashAttention-2 on Hopper
        forward += [(128, 64, 8, 3), (128, 128, 8, 2), (128, 128, 8, 3), (128, 64, 4, 4),
                    (64, 64, 4, 4), (128, 32, 4, 4), (64, 128, 4, 3)]  # fmt: skip
    for bm, bn, w, st in forward:  # (block_m, block_n, warps, stages)
        if bm > 2 * max(16, _next_pow2(T)):
            continue  # a forward tile more than twice the sequence is mostly padding
        out.append(replace(base, block_m=bm, block_n=bn, num_warps=w, num_stages=st))
    if T <= FUSED_MAX_T and fb * D <= 128 * 64:
        for w in (1, 2, 4, 8):
            # at most 64 elements of a (tile, D) operand per thread, at most a warp per 8 rows
            if fb * D <= 64 * 32 * w and w * 8 <= fb:
                out.append(replace(base, fused_bwd=True, fused_warps=w))
    split = [(64, 64, 4, 2), (64, 32, 4, 3), (128, 32, 4, 3), (128, 32, 8, 3), (32, 32, 2, 2),
             (64, 16, 2, 2)]  # fmt: skip
    if T > FUSED_MAX_T:
        split += [(128, 32, 4, 4), (128, 32, 4, 5), (128, 64, 8, 2), (128, 64, 8, 3),
                  (64, 64, 4, 3), (64, 32, 4, 4), (128, 16, 4, 4)]  # fmt: skip
    for owned, inner, w, st in split:  # (bwd_owned, bwd_inner, warps, stages)
        if owned > 2 * max(16, _next_pow2(T)):
            continue
        out.append(
            replace(
                base, fused_bwd=False, bwd_owned=owned, bwd_inner=inner, bwd_warps=w, bwd_stages=st
            )
        )
    # TMA loads where a loop has several steps (they replace its address arithmetic and bounds
    # masks): the forward past T = 64, the split backward past the fused one's reach. Timed
    # only where the GPU has a TMA unit. Last in the list, shallowest pipelines first: a Triton
    # bug report (triton-lang/triton #10474) had descriptor loads in loops of >= 3 stages fault
    # with a misaligned address, which ends the process's CUDA context, so what can fault the
    # sweep comes after everything it can measure.
    tma: list[LaunchConfig] = []
    if T > 64:
        tma_forward = [(64, 32, 4, 3), (64, 64, 4, 3)]
        if T > FUSED_MAX_T:
            tma_forward += [(128, 128, 8, 2), (128, 64, 4, 3), (128, 128, 8, 3), (128, 64, 4, 4),
                            (128, 32, 4, 4)]  # fmt: skip
        tma += [replace(base, block_m=bm, block_n=bn, num_warps=w, num_stages=st, fwd_tma=True)
                for bm, bn, w, st in tma_forward]  # fmt: skip
    if T > FUSED_MAX_T:
        tma += [replace(base, fused_bwd=False, bwd_owned=owned, bwd_inner=inner, bwd_warps=w,
                        bwd_stages=st, bwd_tma=True)
                for owned, inner, w, st in [(128, 64, 8, 2), (128, 32, 4, 3), (64, 64, 4, 3),
                                            (128, 16, 4, 4), (128, 32, 4, 4)]]  # fmt: skip
    out += sorted(tma, key=lambda c: c.num_stages if c.fwd_tma else c.bwd_stages)
    unique: list[LaunchConfig] = []
    for cfg in out:
        if cfg not in unique:
            unique.append(cfg)
    return unique


_CONFIG_OVERRIDES: dict[tuple[int, int], LaunchConfig] = {}


@contextmanager
def override_config(T: int, D: int, config: LaunchConfig) -> Iterator[None]:
    """Use ``config`` for every (T, D) call inside the block (benchmarks, tuning)."""
    previous = _CONFIG_OVERRIDES.get((T, D))
    _CONFIG_OVERRIDES[(T, D)] = config
    try:
        yield
    finally:
        if previous is None:
            _CONFIG_OVERRIDES.pop((T, D), None)
        else:
            _CONFIG_OVERRIDES[(T, D)] = previous


def _poison_enabled() -> bool:
    # Eager calls only: under torch.compile the NaN fill of a buffer the kernel then overwrites
    # gave wrong compiled results (H100, torch 2.11), so compiled code never poisons.
    return os.environ.get(ENV_POISON, "") == "1" and not torch.compiler.is_compiling()


def _new_buffer(
    shape: tuple[int, ...], dtype: torch.dtype, device: torch.device, poison: bool | None = None
) -> torch.Tensor:
    """An output buffer for a kernel: uninitialised, or NaN-filled in poison (debug) mode.
    ``poison``: the mode when the caller has read it already (one environment read per call)."""
    out = torch.empty(shape, dtype=dtype, device=device)
    if _poison_enabled() if poison is None else poison:
        out.fill_(float("nan"))
    return out


# --------------------------------------------------------------------------------------------
# Launching: Triton's dispatch once per call signature, the compiled launcher after that.
# --------------------------------------------------------------------------------------------

ENV_FAST_LAUNCH = "SELFPLAY_ATTENTION_FAST_LAUNCH"
FAST_LAUNCH = os.environ.get(ENV_FAST_LAUNCH, "1") != "0"
"""Call compiled kernels' launchers directly after their first launch (see :func:`_launch`).
Set ``SELFPLAY_ATTENTION_FAST_LAUNCH=0`` (or this flag to False) for Triton's own path always."""

# Triton versions whose compiled launcher takes every kernel parameter, constexprs included, in
# signature order (checked on 3.6 with the gpu tests; read in 3.9's source); older ones use
# Triton's own launch path on every call.
_FAST_LAUNCH_TRITON = triton is not None and tuple(
    int(x) for x in triton.__version__.split(".")[:2] if x.isdigit()
) >= (3, 6)

_LAUNCHERS: dict[tuple, tuple | None] = {}
_MISSING = object()
_current_stream = None  # Triton's own "current CUDA stream" getter, looked up on first use


def _launch(
    kernel, grid: tuple[int, ...], args: tuple, meta: dict[str, object], options: dict[str, int]
) -> None:
    """``kernel[grid](*args, **meta, **options)``, without Triton's per-call dispatch.

    Triton binds and specializes every argument, hashes a cache key and reads its settings on
    each ``kernel[grid](...)`` call: 21-29 us per launch of our forward kernel on the H100
    machine (torch 2.11, Triton 3.6), against 6-9 us for the compiled kernel's launcher alone; a
    small board-game batch is all launch overhead. So the first call with a given signature goes
    through Triton (which compiles or finds the kernel and launches it), and its compiled kernel
    is kept under a key that fixes everything Triton specializes on: each int argument's value
    (Triton looks at == 1, divisibility by 16 and the bit width), each tensor's dtype and
    16-byte alignment, the GPU, the constexprs and the launch options. Later calls with that key
    call the compiled launcher directly.

    Triton's path is used every time under its interpreter, inside ``torch.compile`` (which
    traces the ``kernel[grid]`` call), for Triton versions before 3.6, with ``FAST_LAUNCH``
    off, and when Triton launch hooks (a profiler) were installed at a signature's first call.
    """
    if not FAST_LAUNCH or not _FAST_LAUNCH_TRITON or _INTERPRETED or torch.compiler.is_compiling():
        kernel[grid](*args, **meta, **options)
        return
    key = (
        kernel,
        args[0].device.index,  # a compiled kernel is loaded on one GPU
        *[(a.dtype, a.data_ptr() % 16 == 0) if isinstance(a, torch.Tensor) else a for a in args],
        *meta.items(),
        *options.items(),
    )
    entry = _LAUNCHERS.get(key, _MISSING)
    if entry is _MISSING:
        compiled = kernel[grid](*args, **meta, **options)
        _LAUNCHERS[key] = _compiled_launcher(kernel, compiled, len(args), meta)
        return
    if entry is None:
        kernel[grid](*args, **meta, **options)
        return
    run, function, packed_metadata, constexprs = entry
    global _current_stream
    if _current_stream is None:
        _current_stream = triton.runtime.driver.active.get_current_stream
    stream = _current_stream(args[0].device.index)
    grid_y = grid[1] if len(grid) > 1 else 1
    run(grid[0], grid_y, 1, stream, function, packed_metadata, None, None, None, *args, *constexprs)


def _compiled_launcher(kernel, compiled, n_args: int, meta: dict[str, object]) -> tuple | None:
    """(launcher, function handle, packed metadata, constexpr values in parameter order) of a
    compiled kernel, or None when Triton's own path must be kept (see :func:`_launch`)."""
    try:
        knobs = getattr(triton, "knobs", None)
        hooks = knobs.runtime.launch_enter_hook, knobs.runtime.launch_exit_hook
        # None, or (newer Triton) a chain of hooks that is empty unless a profiler added one
        if any(hook is not None and getattr(hook, "calls", True) for hook in hooks):
            return None
        constexprs = tuple(meta[name] for name in kernel.arg_names[n_args:])
        return compiled.run, compiled.function, compiled.packed_metadata, constexprs
    except (AttributeError, KeyError, TypeError):
        return None


_CAPABILITY: dict[int, tuple[int, int]] = {}


def _tma_ok(*tensors: torch.Tensor) -> bool:
    """Whether the kernels may read these (B, H, T, D) tensors through tensor descriptors: a GPU
    with a TMA unit (compute capability 9.0 or later; any tensor under Triton's interpreter),
    16-byte aligned data, batch, head and token strides in whole 16 bytes (every (batch, head)
    base and row start aligned), and a contiguous head dim. Anything else (a view off
    alignment, a stride-0 upstream gradient, an older or non-NVIDIA GPU, code being compiled
    by ``torch.compile``) takes the ordinary loads."""
    if torch.compiler.is_compiling():
        # compiled code: fake tensors have no data pointer, and Inductor launches the kernels
        # itself (without our scratch allocator), so compiled graphs keep the ordinary loads
        return False
    first = tensors[0]
    if not _INTERPRETED:
        if not first.is_cuda or torch.version.hip is not None:  # TMA: NVIDIA's unit
            return False
        index = first.device.index
        capability = _CAPABILITY.get(index)
        if capability is None:
            capability = _CAPABILITY[index] = torch.cuda.get_device_capability(first.device)
        if capability[0] < 9:
            return False
    for t in tensors:
        size = t.element_size()
        sb, sh, st, sd = t.stride()
        if sd != 1 or st <= 0 or t.data_ptr() % 16 or any((x * size) % 16 for x in (sb, sh, st)):
            return False
    return True


def _scratch(size: int, alignment: int, stream: int | None) -> torch.Tensor:
    """Triton's allocator protocol: global memory for the kernels' device-side descriptors."""
    return torch.empty(size, dtype=torch.int8, device="cuda")


def _ensure_allocator() -> None:
    """Device-side tensor descriptors need a Triton allocator for their scratch memory; set
    ours (torch's caching allocator, so CUDA-graph capture works too) when none is set. The
    setting is a context variable: a new thread (autograd's backward worker) starts without
    one, so this runs before every launch that uses descriptors."""
    if _INTERPRETED:
        return
    try:
        from triton.runtime import _allocation

        current = _allocation._allocator
        current = current.get() if hasattr(current, "get") else current
        unset = isinstance(current, _allocation.NullAllocator)
    except (ImportError, AttributeError):  # another Triton layout: set ours
        unset = True
    if unset:
        triton.set_allocator(_scratch)


def _mask_args(
    key_padding_mask: torch.Tensor | None, q: torch.Tensor
) -> tuple[torch.Tensor, int, int]:
    """(pointer tensor, stride_b, stride_t) for the kernels; q stands in when there is no mask
    (the HAS_MASK=False kernels never read it)."""
    if key_padding_mask is None:
        return q, 0, 0
    m = key_padding_mask.view(torch.uint8)  # same bytes, a dtype every Triton backend loads
    return m, m.stride(0), m.stride(1)


def _dot_meta(dtype: torch.dtype) -> dict[str, object]:
    """Constexprs for the kernels' dots."""
    return {
        # fp32 inputs: full-precision dots, not tf32, so fp32 results match fp32 PyTorch.
        "INPUT_PRECISION": "ieee" if dtype == torch.float32 else "tf32",
        # Triton's CPU interpreter mishandles bf16 dots and casts; emulate GPU behaviour there.
        "EMULATE_BF16": _INTERPRETED and dtype == torch.bfloat16,
    }


def triton_forward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_padding_mask: torch.Tensor | None,
    config: LaunchConfig | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the forward kernel; returns O (B, H, T, D) in q's dtype and LSE (B*H, T) fp32 (log2
    units; +inf for rows with no real key)."""
    B, H, T, D = q.shape
    cfg = config or pick_config(T, D, q.element_size())
    poison = _poison_enabled()
    o = _new_buffer((B, H, T, D), q.dtype, q.device, poison)  # (B, H, T, D)
    lse = _new_buffer((B * H, T), torch.float32, q.device, poison)  # (B*H, T)
    mask, stride_mb, stride_mt = _mask_args(key_padding_mask, q)
    sm_scale = 1.0 / math.sqrt(D)
    use_tma = cfg.fwd_tma and _tma_ok(k, v)
    if use_tma:
        _ensure_allocator()
    _launch(
        _kernel.attn_fwd_kernel,
        (B * H, triton.cdiv(T, cfg.block_m)),
        (q, k, v, mask, o, lse, *q.stride(), *k.stride(), *v.stride(), *o.stride(),
         stride_mb, stride_mt, H, T, sm_scale * math.log2(math.e)),
        dict(HAS_MASK=key_padding_mask is not None, HEAD_DIM=D, BLOCK_M=cfg.block_m,
             BLOCK_N=cfg.block_n, **_dot_meta(q.dtype), USE_TMA=use_tma),
        dict(num_warps=cfg.num_warps, num_stages=cfg.num_stages),
    )  # fmt: skip
    return o, lse


def triton_backward(
    do: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    o: torch.Tensor,
    lse: torch.Tensor,
    key_padding_mask: torch.Tensor | None,
    config: LaunchConfig | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients (dq, dk, dv), each (B, H, T, D) contiguous in q's dtype, from dO = dL/dO."""
    B, H, T, D = q.shape
    cfg = config or pick_config(T, D, q.element_size())
    if do.dtype != q.dtype:
        do = do.to(q.dtype)
    poison = _poison_enabled()
    dq = _new_buffer((B, H, T, D), q.dtype, q.device, poison)
    dk = _new_buffer((B, H, T, D), q.dtype, q.device, poison)
    dv = _new_buffer((B, H, T, D), q.dtype, q.device, poison)
    mask, stride_mb, stride_mt = _mask_args(key_padding_mask, q)
    sm_scale = 1.0 / math.sqrt(D)
    qk_scale = sm_scale * math.log2(math.e)
    has_mask = key_padding_mask is not None
    dot_meta = _dot_meta(q.dtype)

    if cfg.uses_fused_bwd(T):
        _launch(
            _kernel.attn_bwd_fused_kernel,
            (B * H,),
            (q, k, v, o, do, mask, lse, dq, dk, dv, *q.stride(), *k.stride(), *v.stride(),
             *o.stride(), *do.stride(), stride_mb, stride_mt, H, T, sm_scale, qk_scale),
            dict(HAS_MASK=has_mask, HEAD_DIM=D, BLOCK=fused_block(T), **dot_meta),
            dict(num_warps=cfg.fused_warps),
        )  # fmt: skip
        return dq, dk, dv

    delta = _new_buffer((B * H, T), torch.float32, q.device, poison)  # (B*H, T)
    # each program owns bwd_owned keys (dK/dV) or queries (dQ) and loops over the other side
    grid = (B * H, triton.cdiv(T, cfg.bwd_owned))
    _launch(
        _kernel.attn_bwd_preprocess_kernel,
        grid,
        (o, do, delta, *o.stride(), *do.stride(), H, T),
        dict(HEAD_DIM=D, BLOCK_M=cfg.bwd_owned),
        dict(num_warps=cfg.bwd_warps),
    )
    common = (*q.stride(), *k.stride(), *v.stride(), *do.stride(), stride_mb, stride_mt, H, T,
              sm_scale, qk_scale)  # fmt: skip
    options = dict(num_warps=cfg.bwd_warps, num_stages=cfg.bwd_stages)
    use_tma = cfg.bwd_tma and _tma_ok(q, k, v, do)
    if use_tma:
        _ensure_allocator()
    _launch(
        _kernel.attn_bwd_dkdv_kernel,
        grid,
        (q, k, v, do, mask, lse, delta, dk, dv, *common),
        dict(HAS_MASK=has_mask, HEAD_DIM=D, BLOCK_M=cfg.bwd_inner, BLOCK_N=cfg.bwd_owned,
             **dot_meta, USE_TMA=use_tma),
        options,
    )  # fmt: skip
    _launch(
        _kernel.attn_bwd_dq_kernel,
        grid,
        (q, k, v, do, mask, lse, delta, dq, *common),
        dict(HAS_MASK=has_mask, HEAD_DIM=D, BLOCK_M=cfg.bwd_owned, BLOCK_N=cfg.bwd_inner,
             **dot_meta, USE_TMA=use_tma),
        options,
    )  # fmt: skip
    return dq, dk, dv


class _TritonAttention(torch.autograd.Function):
    """Autograd wrapper: saves (q, k, v, O, LSE); the backward recomputes probabilities."""

    @staticmethod
    def forward(ctx, q, k, v, key_padding_mask):  # type: ignore[override]
        o, lse = triton_forward(q, k, v, key_padding_mask)
        ctx.save_for_backward(q, k, v, o, lse)
        ctx.key_padding_mask = key_padding_mask  # bool, never differentiated
        return o

    @staticmethod
    def backward(ctx, do):  # type: ignore[override]
        q, k, v, o, lse = ctx.saved_tensors
        dq, dk, dv = triton_backward(do, q, k, v, o, lse, ctx.key_padding_mask)
        return dq, dk, dv, None


# --------------------------------------------------------------------------------------------
# SDPA fallback.
# --------------------------------------------------------------------------------------------


def sdpa_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_padding_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Same contract through PyTorch's SDPA. Rows with no real key give zeros, not NaN."""
    if key_padding_mask is None:
        return F.scaled_dot_product_attention(q, k, v)
    # SDPA's bool mask uses our convention (True = attend). A row with no real key would give
    # softmax over all -inf = NaN, so let it attend to everything and zero it afterwards; this
    # stays branch-free (no GPU->CPU sync to ask whether such rows exist).
    has_key = key_padding_mask.any(dim=1)  # (B,)
    attend = key_padding_mask | ~has_key[:, None]  # (B, T)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attend[:, None, None, :])
    return out * has_key[:, None, None, None].to(out.dtype)  # (B, H, T, D)


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_padding_mask: torch.Tensor | None = None,
    *,
    backend: str | None = None,
) -> torch.Tensor:
    """Non-causal scaled dot-product attention, softmax(q k^T / sqrt(D)) v.

    Args:
        q, k, v: (B, H, T, D) tensors of one float dtype on one device.
        key_padding_mask: optional bool (B, T); True = real key (attend), False = padding (zero
            weight). A batch row with no True gives zeros.
        backend: "triton", "sdpa", or None (auto; see the module docstring and the
            SELFPLAY_ATTENTION environment variable).

    Returns:
        (B, H, T, D) in the input dtype.

    Raises:
        ValueError: bad shapes, dtypes, devices or mask, an unknown backend, or a forced Triton
            backend that cannot run these inputs — always before any kernel launch.
    """
    _check_inputs(q, k, v, key_padding_mask)
    chosen = _resolve_backend(backend, q)
    if chosen == "sdpa":
        return sdpa_attention(q, k, v, key_padding_mask)
    reason = _triton_unsupported(q)
    if reason is None and torch.jit.is_tracing():
        # A trace records torch ops only: the kernel's output would be frozen in as a constant.
        reason = "torch.jit.trace cannot record a Triton launch (use sdpa, or torch.compile)"
    if reason is not None:
        raise ValueError(f"cannot use backend='triton': {reason}")
    if not (torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad)):
        # Inference (self-play, search): no autograd node. Making one costs about 25 us a call
        # on the H100 machine (attention() 68 us against 38 us for triton_forward alone at
        # B = H = 1), as much as the launch itself.
        return triton_forward(q, k, v, key_padding_mask)[0]
    return _TritonAttention.apply(q, k, v, key_padding_mask)
