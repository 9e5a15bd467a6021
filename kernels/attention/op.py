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
  tensors, an unsupported head dim or dtype, or triton not importable).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

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
        return "triton" if q.is_cuda and _triton_unsupported(q) is None else "sdpa"
    return backend


# --------------------------------------------------------------------------------------------
# Triton launchers.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LaunchConfig:
    """Tile sizes and warps for one (T, D); chosen for short sequences at large batch."""

    block_m: int
    """Query rows per program."""
    block_n: int
    """Keys per inner-loop step."""
    num_warps: int
    """Warps per program for the forward, dK/dV and dQ kernels."""
    fused_bwd: bool
    """Whole backward in one kernel (the sequence fits one tile)."""
    fused_bwd_warps: int
    """Warps per program for the fused backward kernel."""


def pick_config(T: int, D: int) -> LaunchConfig:
    """Tiles sized to the sequence: the smallest power of two >= T, from 16 (the smallest tile
    ``tl.dot`` takes) up to 64; a general 128-row tile would be >90 % padding at T = 9."""
    block = min(64, max(16, 1 << (T - 1).bit_length()))  # next power of two >= T
    num_warps = 2 if block == 16 else 4
    # The fused backward keeps q, k, v, o, dO, dq, dk, dv and a (T, T) tile live at once; past
    # 64 x 64 elements per operand it would spill registers, so longer heads use 3 kernels.
    fused = T <= block and block * D <= 64 * 64
    fused_warps = 4 if block * D <= 2048 else 8
    return LaunchConfig(block, block, num_warps, fused, fused_warps)


def _poison_enabled() -> bool:
    return os.environ.get(ENV_POISON, "") == "1"


def _new_buffer(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """An output buffer for a kernel: uninitialised, or NaN-filled in poison (debug) mode."""
    out = torch.empty(shape, dtype=dtype, device=device)
    if _poison_enabled():
        out.fill_(float("nan"))
    return out


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
    cfg = config or pick_config(T, D)
    o = _new_buffer((B, H, T, D), q.dtype, q.device)  # (B, H, T, D)
    lse = _new_buffer((B * H, T), torch.float32, q.device)  # (B*H, T)
    mask, stride_mb, stride_mt = _mask_args(key_padding_mask, q)
    sm_scale = 1.0 / math.sqrt(D)
    grid = (B * H, triton.cdiv(T, cfg.block_m))
    _kernel.attn_fwd_kernel[grid](
        q,
        k,
        v,
        mask,
        o,
        lse,
        *q.stride(),
        *k.stride(),
        *v.stride(),
        *o.stride(),
        stride_mb,
        stride_mt,
        H,
        T,
        sm_scale * math.log2(math.e),
        HAS_MASK=key_padding_mask is not None,
        HEAD_DIM=D,
        BLOCK_M=cfg.block_m,
        BLOCK_N=cfg.block_n,
        num_warps=cfg.num_warps,
        **_dot_meta(q.dtype),
    )
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
    cfg = config or pick_config(T, D)
    if do.dtype != q.dtype:
        do = do.to(q.dtype)
    dq = _new_buffer((B, H, T, D), q.dtype, q.device)
    dk = _new_buffer((B, H, T, D), q.dtype, q.device)
    dv = _new_buffer((B, H, T, D), q.dtype, q.device)
    mask, stride_mb, stride_mt = _mask_args(key_padding_mask, q)
    sm_scale = 1.0 / math.sqrt(D)
    qk_scale = sm_scale * math.log2(math.e)
    has_mask = key_padding_mask is not None
    dot_meta = _dot_meta(q.dtype)

    if cfg.fused_bwd:
        _kernel.attn_bwd_fused_kernel[(B * H,)](
            q,
            k,
            v,
            o,
            do,
            mask,
            lse,
            dq,
            dk,
            dv,
            *q.stride(),
            *k.stride(),
            *v.stride(),
            *o.stride(),
            *do.stride(),
            stride_mb,
            stride_mt,
            H,
            T,
            sm_scale,
            qk_scale,
            HAS_MASK=has_mask,
            HEAD_DIM=D,
            BLOCK=cfg.block_m,
            num_warps=cfg.fused_bwd_warps,
            **dot_meta,
        )
        return dq, dk, dv

    delta = _new_buffer((B * H, T), torch.float32, q.device)  # (B*H, T)
    _kernel.attn_bwd_preprocess_kernel[(B * H, triton.cdiv(T, cfg.block_m))](
        o,
        do,
        delta,
        *o.stride(),
        *do.stride(),
        H,
        T,
        HEAD_DIM=D,
        BLOCK_M=cfg.block_m,
        num_warps=cfg.num_warps,
    )
    common = (
        *q.stride(),
        *k.stride(),
        *v.stride(),
        *do.stride(),
        stride_mb,
        stride_mt,
        H,
        T,
        sm_scale,
        qk_scale,
    )
    meta = dict(
        HAS_MASK=has_mask,
        HEAD_DIM=D,
        BLOCK_M=cfg.block_m,
        BLOCK_N=cfg.block_n,
        num_warps=cfg.num_warps,
        **dot_meta,
    )
    _kernel.attn_bwd_dkdv_kernel[(B * H, triton.cdiv(T, cfg.block_n))](
        q, k, v, do, mask, lse, delta, dk, dv, *common, **meta
    )
    _kernel.attn_bwd_dq_kernel[(B * H, triton.cdiv(T, cfg.block_m))](
        q, k, v, do, mask, lse, delta, dq, *common, **meta
    )
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
    if reason is not None:
        raise ValueError(f"cannot use backend='triton': {reason}")
    return _TritonAttention.apply(q, k, v, key_padding_mask)
