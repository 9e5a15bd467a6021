"""Triton kernels for non-causal fused attention (FlashAttention-style), forward and backward.

Layout: every tensor is (B, H, T, D) addressed through its four strides, so views such as a
split QKV projection need no copy. Program ids: axis 0 walks the B*H (batch, head) pairs (axis 0
allows 2**31 programs, axis 1 only 65535), axis 1 walks the row blocks of one head.

Conventions shared by all kernels:
- scores are kept in the log2 domain: ``s = (q @ k^T) * sm_scale * log2(e)`` so the kernels can
  use ``exp2``; the saved log-sum-exp ``LSE`` is in the same log2 units;
- a key column is *live* when it is inside ``T`` and, with a padding mask, marked True;
- a query row whose keys are all padded gets ``O = 0`` and ``LSE = +inf``: the backward pass
  then recomputes ``p = exp2(s - inf) = 0`` for it, so its gradients are exactly zero (never NaN);
- products with the scales are cast back to fp32 (``torch.compile`` may pass a scale as fp64,
  which would otherwise turn the loop-carried row statistics into fp64);
- matmul inputs stay in the input dtype (bf16/fp16 tensor cores), accumulators are fp32; fp32
  inputs use ``INPUT_PRECISION="ieee"`` so they are not silently rounded to tf32.
- ``USE_TMA`` (forward, dK/dV and dQ kernels): the tiles a program's loop streams come through
  tensor descriptors (:func:`_head_desc`), else through masked pointer loads; same results.

No kernel writes a T x T matrix to global memory: probabilities live in registers, one
(BLOCK_M, BLOCK_N) tile at a time, and the backward pass recomputes them from ``LSE``.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _dot(a, b, INPUT_PRECISION: tl.constexpr, EMULATE_BF16: tl.constexpr):
    """a @ b with an fp32 accumulator.

    EMULATE_BF16 (only under Triton's CPU interpreter, never on a GPU): the interpreter's dot
    multiplies bf16 operands as their raw uint16 bits, so the (already bf16) operands are
    widened to fp32 first; that is exact, so it computes what bf16 tensor cores compute.
    """
    if EMULATE_BF16:
        out = tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision="ieee")
    else:
        out = tl.dot(a, b, input_precision=INPUT_PRECISION)
    return out


@triton.jit
def _cast(x, dtype: tl.constexpr, EMULATE_BF16: tl.constexpr):
    """x.to(dtype), rounding to nearest even as GPUs do.

    EMULATE_BF16 (interpreter only): the interpreter truncates fp32 -> bf16, which biases every
    rounded probability and output down by up to one bf16 ulp; round in integer bits instead.
    """
    if EMULATE_BF16:
        bits = x.to(tl.float32).to(tl.uint32, bitcast=True)
        bits = bits + 0x7FFF + ((bits >> 16) & 1)  # round half to even at bit 16
        y = ((bits >> 16) << 16).to(tl.float32, bitcast=True).to(dtype)
    else:
        y = x.to(dtype)
    return y


@triton.jit
def _live_keys(Mask, stride_mb, stride_mt, b, cols, T, HAS_MASK: tl.constexpr):
    """Bool (BLOCK_N,): key column inside the sequence and not padded."""
    live = cols < T
    if HAS_MASK:
        keep = tl.load(Mask + b * stride_mb + cols * stride_mt, mask=live, other=0)
        live = live & (keep != 0)
    return live


@triton.jit
def _head_desc(base, T, stride_t, HEAD_DIM: tl.constexpr, BLOCK: tl.constexpr):
    """A tensor descriptor over one (batch, head)'s (T, D) rows, loading (BLOCK, D) tiles.

    On Hopper and later the loads go through the TMA unit: one instruction moves a whole tile,
    and rows past T arrive as zeros, so the loop needs no address arithmetic or bounds masks
    for them. The host (``op._tma_ok``) guarantees what TMA needs: a 16-byte aligned base,
    row strides that are multiples of 16 bytes, and contiguous head dims.
    """
    return tl.make_tensor_descriptor(
        base, shape=[T, HEAD_DIM], strides=[stride_t, 1], block_shape=[BLOCK, HEAD_DIM]
    )


@triton.jit
def attn_fwd_kernel(
    Q,
    K,
    V,
    Mask,
    O,
    LSE,
    stride_qb,
    stride_qh,
    stride_qt,
    stride_qd,
    stride_kb,
    stride_kh,
    stride_kt,
    stride_kd,
    stride_vb,
    stride_vh,
    stride_vt,
    stride_vd,
    stride_ob,
    stride_oh,
    stride_ot,
    stride_od,
    stride_mb,
    stride_mt,
    H,
    T,
    qk_scale,
    HAS_MASK: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    INPUT_PRECISION: tl.constexpr,
    EMULATE_BF16: tl.constexpr,
    USE_TMA: tl.constexpr,
):
    """One program: BLOCK_M query rows of one (batch, head); online softmax over key blocks.

    Writes O (B, H, T, D) in the input dtype and LSE (B*H, T) fp32 in log2 units. USE_TMA: K
    and V blocks come through tensor descriptors (Hopper's TMA unit; see :func:`_head_desc`).
    """
    pid_bh = tl.program_id(0)
    pid_m = tl.program_id(1)
    # int64 base offsets: B*H*T*D can exceed 2**31 at large batch.
    b = (pid_bh // H).to(tl.int64)
    h = (pid_bh % H).to(tl.int64)

    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)  # (BLOCK_M,)
    offs_n = tl.arange(0, BLOCK_N)  # (BLOCK_N,)
    offs_d = tl.arange(0, HEAD_DIM)  # (D,)
    row_in = rows < T

    q_ptrs = (
        Q + b * stride_qb + h * stride_qh + rows[:, None] * stride_qt + offs_d[None, :] * stride_qd
    )
    q = tl.load(q_ptrs, mask=row_in[:, None], other=0.0)  # (BLOCK_M, D)

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)  # running row max (log2 units)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)  # running sum of exp2(s - m_i)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)  # running sum of p @ v

    k_base = K + b * stride_kb + h * stride_kh
    v_base = V + b * stride_vb + h * stride_vh
    if USE_TMA:
        k_desc = _head_desc(k_base, T, stride_kt, HEAD_DIM, BLOCK_N)
        v_desc = _head_desc(v_base, T, stride_vt, HEAD_DIM, BLOCK_N)
    for start_n in range(0, T, BLOCK_N):
        cols = start_n + offs_n  # (BLOCK_N,)
        col_in = cols < T
        live = _live_keys(Mask, stride_mb, stride_mt, b, cols, T, HAS_MASK)
        if USE_TMA:
            kT = tl.trans(k_desc.load([start_n, 0]))  # (D, BLOCK_N); rows past T read as 0
            v = v_desc.load([start_n, 0])  # (BLOCK_N, D)
        else:
            # K loaded transposed, (D, BLOCK_N), so the score tile is a plain q @ kT.
            kT = tl.load(
                k_base + offs_d[:, None] * stride_kd + cols[None, :] * stride_kt,
                mask=col_in[None, :],
                other=0.0,
            )
            v = tl.load(
                v_base + cols[:, None] * stride_vt + offs_d[None, :] * stride_vd,
                mask=col_in[:, None],
                other=0.0,
            )  # (BLOCK_N, D)
        s = (_dot(q, kT, INPUT_PRECISION, EMULATE_BF16) * qk_scale).to(tl.float32)  # (BM, BN)
        s = tl.where(live[None, :], s, float("-inf"))

        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        # While a row has seen no live key its max is -inf; subtracting 0 instead keeps
        # exp2(-inf - (-inf)) = NaN out of alpha and p (both become exp2(-inf) = 0).
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        alpha = tl.exp2(m_i - m_safe)  # (BLOCK_M,) rescales the old partial sums
        p = tl.exp2(s - m_safe[:, None])  # (BLOCK_M, BLOCK_N)
        l_i = l_i * alpha + tl.sum(p, axis=1)
        acc = acc * alpha[:, None] + _dot(
            _cast(p, v.dtype, EMULATE_BF16), v, INPUT_PRECISION, EMULATE_BF16
        )
        m_i = m_new

    has_key = l_i > 0.0
    acc = acc / tl.where(has_key, l_i, 1.0)[:, None]
    lse = tl.where(has_key, m_i + tl.log2(tl.where(has_key, l_i, 1.0)), float("inf"))

    o_ptrs = (
        O + b * stride_ob + h * stride_oh + rows[:, None] * stride_ot + offs_d[None, :] * stride_od
    )
    tl.store(o_ptrs, _cast(acc, O.dtype.element_ty, EMULATE_BF16), mask=row_in[:, None])
    tl.store(LSE + pid_bh.to(tl.int64) * T + rows, lse, mask=row_in)


@triton.jit
def attn_bwd_preprocess_kernel(
    O,
    DO,
    Delta,
    stride_ob,
    stride_oh,
    stride_ot,
    stride_od,
    stride_dob,
    stride_doh,
    stride_dot,
    stride_dod,
    H,
    T,
    HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr,
):
    """Delta[bh, t] = sum_d dO * O (fp32), the softmax-backward row term, for BLOCK_M rows."""
    pid_bh = tl.program_id(0)
    pid_m = tl.program_id(1)
    b = (pid_bh // H).to(tl.int64)
    h = (pid_bh % H).to(tl.int64)
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    row_in = rows < T
    o = tl.load(
        O + b * stride_ob + h * stride_oh + rows[:, None] * stride_ot + offs_d[None, :] * stride_od,
        mask=row_in[:, None],
        other=0.0,
    ).to(tl.float32)
    do = tl.load(
        DO
        + b * stride_dob
        + h * stride_doh
        + rows[:, None] * stride_dot
        + offs_d[None, :] * stride_dod,
        mask=row_in[:, None],
        other=0.0,
    ).to(tl.float32)
    tl.store(Delta + pid_bh.to(tl.int64) * T + rows, tl.sum(o * do, axis=1), mask=row_in)


@triton.jit
def attn_bwd_dkdv_kernel(
    Q,
    K,
    V,
    DO,
    Mask,
    LSE,
    Delta,
    DK,
    DV,
    stride_qb,
    stride_qh,
    stride_qt,
    stride_qd,
    stride_kb,
    stride_kh,
    stride_kt,
    stride_kd,
    stride_vb,
    stride_vh,
    stride_vt,
    stride_vd,
    stride_dob,
    stride_doh,
    stride_dot,
    stride_dod,
    stride_mb,
    stride_mt,
    H,
    T,
    sm_scale,
    qk_scale,
    HAS_MASK: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    INPUT_PRECISION: tl.constexpr,
    EMULATE_BF16: tl.constexpr,
    USE_TMA: tl.constexpr,
):
    """One program: dK and dV for BLOCK_N keys of one (batch, head), looping over query blocks.

    Works on transposed tiles (keys along rows) so dV = P^T dO and dK = dS^T Q are plain dots.
    DK and DV are contiguous (B, H, T, D). Each key block is owned by one program: no atomics,
    so the result is deterministic.
    """
    pid_bh = tl.program_id(0)
    pid_n = tl.program_id(1)
    b = (pid_bh // H).to(tl.int64)
    h = (pid_bh % H).to(tl.int64)

    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)  # key indices, (BLOCK_N,)
    offs_m = tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    col_in = cols < T
    live = _live_keys(Mask, stride_mb, stride_mt, b, cols, T, HAS_MASK)

    k = tl.load(
        K + b * stride_kb + h * stride_kh + cols[:, None] * stride_kt + offs_d[None, :] * stride_kd,
        mask=col_in[:, None],
        other=0.0,
    )  # (BLOCK_N, D)
    v = tl.load(
        V + b * stride_vb + h * stride_vh + cols[:, None] * stride_vt + offs_d[None, :] * stride_vd,
        mask=col_in[:, None],
        other=0.0,
    )  # (BLOCK_N, D)
    dk = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)

    q_base = Q + b * stride_qb + h * stride_qh
    do_base = DO + b * stride_dob + h * stride_doh
    row_base = pid_bh.to(tl.int64) * T
    if USE_TMA:  # Q and dO blocks through TMA (see _head_desc)
        q_desc = _head_desc(q_base, T, stride_qt, HEAD_DIM, BLOCK_M)
        do_desc = _head_desc(do_base, T, stride_dot, HEAD_DIM, BLOCK_M)
    for start_m in range(0, T, BLOCK_M):
        rows = start_m + offs_m  # (BLOCK_M,)
        row_in = rows < T
        if USE_TMA:
            qT = tl.trans(q_desc.load([start_m, 0]))  # (D, BLOCK_M)
            do = do_desc.load([start_m, 0])  # (BLOCK_M, D)
        else:
            qT = tl.load(
                q_base + offs_d[:, None] * stride_qd + rows[None, :] * stride_qt,
                mask=row_in[None, :],
                other=0.0,
            )  # (D, BLOCK_M)
            do = tl.load(
                do_base + rows[:, None] * stride_dot + offs_d[None, :] * stride_dod,
                mask=row_in[:, None],
                other=0.0,
            )  # (BLOCK_M, D)
        # Rows past T load LSE = +inf, so their recomputed probabilities are exactly 0.
        lse = tl.load(LSE + row_base + rows, mask=row_in, other=float("inf"))  # (BLOCK_M,)
        delta = tl.load(Delta + row_base + rows, mask=row_in, other=0.0)  # (BLOCK_M,)

        sT = (_dot(k, qT, INPUT_PRECISION, EMULATE_BF16) * qk_scale).to(tl.float32)  # (BN, BM)
        pT = tl.where(live[:, None], tl.exp2(sT - lse[None, :]), 0.0)
        dv += _dot(_cast(pT, do.dtype, EMULATE_BF16), do, INPUT_PRECISION, EMULATE_BF16)
        dpT = _dot(v, tl.trans(do), INPUT_PRECISION, EMULATE_BF16)  # (BLOCK_N, BLOCK_M)
        dsT = pT * (dpT - delta[None, :])
        dk += _dot(_cast(dsT, qT.dtype, EMULATE_BF16), tl.trans(qT), INPUT_PRECISION, EMULATE_BF16)

    dk = (dk * sm_scale).to(tl.float32)
    out_offs = (pid_bh.to(tl.int64) * T + cols[:, None]) * HEAD_DIM + offs_d[None, :]
    tl.store(DK + out_offs, _cast(dk, DK.dtype.element_ty, EMULATE_BF16), mask=col_in[:, None])
    tl.store(DV + out_offs, _cast(dv, DV.dtype.element_ty, EMULATE_BF16), mask=col_in[:, None])


@triton.jit
def attn_bwd_dq_kernel(
    Q,
    K,
    V,
    DO,
    Mask,
    LSE,
    Delta,
    DQ,
    stride_qb,
    stride_qh,
    stride_qt,
    stride_qd,
    stride_kb,
    stride_kh,
    stride_kt,
    stride_kd,
    stride_vb,
    stride_vh,
    stride_vt,
    stride_vd,
    stride_dob,
    stride_doh,
    stride_dot,
    stride_dod,
    stride_mb,
    stride_mt,
    H,
    T,
    sm_scale,
    qk_scale,
    HAS_MASK: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    INPUT_PRECISION: tl.constexpr,
    EMULATE_BF16: tl.constexpr,
    USE_TMA: tl.constexpr,
):
    """One program: dQ for BLOCK_M query rows of one (batch, head), looping over key blocks.

    DQ is contiguous (B, H, T, D).
    """
    pid_bh = tl.program_id(0)
    pid_m = tl.program_id(1)
    b = (pid_bh // H).to(tl.int64)
    h = (pid_bh % H).to(tl.int64)

    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)  # (BLOCK_M,)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    row_in = rows < T
    row_base = pid_bh.to(tl.int64) * T

    q = tl.load(
        Q + b * stride_qb + h * stride_qh + rows[:, None] * stride_qt + offs_d[None, :] * stride_qd,
        mask=row_in[:, None],
        other=0.0,
    )  # (BLOCK_M, D)
    do = tl.load(
        DO
        + b * stride_dob
        + h * stride_doh
        + rows[:, None] * stride_dot
        + offs_d[None, :] * stride_dod,
        mask=row_in[:, None],
        other=0.0,
    )  # (BLOCK_M, D)
    lse = tl.load(LSE + row_base + rows, mask=row_in, other=float("inf"))  # (BLOCK_M,)
    delta = tl.load(Delta + row_base + rows, mask=row_in, other=0.0)  # (BLOCK_M,)
    dq = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)

    k_base = K + b * stride_kb + h * stride_kh
    v_base = V + b * stride_vb + h * stride_vh
    if USE_TMA:  # K and V blocks through TMA (see _head_desc)
        k_desc = _head_desc(k_base, T, stride_kt, HEAD_DIM, BLOCK_N)
        v_desc = _head_desc(v_base, T, stride_vt, HEAD_DIM, BLOCK_N)
    for start_n in range(0, T, BLOCK_N):
        cols = start_n + offs_n  # (BLOCK_N,)
        col_in = cols < T
        live = _live_keys(Mask, stride_mb, stride_mt, b, cols, T, HAS_MASK)
        if USE_TMA:
            k = k_desc.load([start_n, 0])  # (BLOCK_N, D)
            vT = tl.trans(v_desc.load([start_n, 0]))  # (D, BLOCK_N)
        else:
            k = tl.load(
                k_base + cols[:, None] * stride_kt + offs_d[None, :] * stride_kd,
                mask=col_in[:, None],
                other=0.0,
            )  # (BLOCK_N, D)
            vT = tl.load(
                v_base + offs_d[:, None] * stride_vd + cols[None, :] * stride_vt,
                mask=col_in[None, :],
                other=0.0,
            )  # (D, BLOCK_N)
        s = (_dot(q, tl.trans(k), INPUT_PRECISION, EMULATE_BF16) * qk_scale).to(tl.float32)
        p = tl.where(live[None, :], tl.exp2(s - lse[:, None]), 0.0)  # (BLOCK_M, BLOCK_N)
        dp = _dot(do, vT, INPUT_PRECISION, EMULATE_BF16)  # (BLOCK_M, BLOCK_N)
        ds = p * (dp - delta[:, None])
        dq += _dot(_cast(ds, k.dtype, EMULATE_BF16), k, INPUT_PRECISION, EMULATE_BF16)

    dq = (dq * sm_scale).to(tl.float32)
    out_offs = (row_base + rows[:, None]) * HEAD_DIM + offs_d[None, :]
    tl.store(DQ + out_offs, _cast(dq, DQ.dtype.element_ty, EMULATE_BF16), mask=row_in[:, None])


@triton.jit
def attn_bwd_fused_kernel(
    Q,
    K,
    V,
    O,
    DO,
    Mask,
    LSE,
    DQ,
    DK,
    DV,
    stride_qb,
    stride_qh,
    stride_qt,
    stride_qd,
    stride_kb,
    stride_kh,
    stride_kt,
    stride_kd,
    stride_vb,
    stride_vh,
    stride_vt,
    stride_vd,
    stride_ob,
    stride_oh,
    stride_ot,
    stride_od,
    stride_dob,
    stride_doh,
    stride_dot,
    stride_dod,
    stride_mb,
    stride_mt,
    H,
    T,
    sm_scale,
    qk_scale,
    HAS_MASK: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    BLOCK: tl.constexpr,
    INPUT_PRECISION: tl.constexpr,
    EMULATE_BF16: tl.constexpr,
):
    """Whole backward for one (batch, head) when the sequence fits one tile (T <= BLOCK).

    Short board-game sequences (9, 42 tokens) are the common case: here one program holds all
    of Q, K, V, dO, so Delta, dQ, dK and dV come out of one launch with no recomputation of the
    probability tile and no separate preprocess kernel.
    """
    pid_bh = tl.program_id(0)
    b = (pid_bh // H).to(tl.int64)
    h = (pid_bh % H).to(tl.int64)

    idx = tl.arange(0, BLOCK)  # token index, used for both rows and columns
    offs_d = tl.arange(0, HEAD_DIM)
    tok_in = idx < T
    live = _live_keys(Mask, stride_mb, stride_mt, b, idx, T, HAS_MASK)
    row_base = pid_bh.to(tl.int64) * T

    tile = idx[:, None] < T  # (BLOCK, 1) broadcast mask for (BLOCK, D) loads
    q = tl.load(
        Q + b * stride_qb + h * stride_qh + idx[:, None] * stride_qt + offs_d[None, :] * stride_qd,
        mask=tile,
        other=0.0,
    )  # (BLOCK, D)
    k = tl.load(
        K + b * stride_kb + h * stride_kh + idx[:, None] * stride_kt + offs_d[None, :] * stride_kd,
        mask=tile,
        other=0.0,
    )
    v = tl.load(
        V + b * stride_vb + h * stride_vh + idx[:, None] * stride_vt + offs_d[None, :] * stride_vd,
        mask=tile,
        other=0.0,
    )
    o = tl.load(
        O + b * stride_ob + h * stride_oh + idx[:, None] * stride_ot + offs_d[None, :] * stride_od,
        mask=tile,
        other=0.0,
    )
    do = tl.load(
        DO
        + b * stride_dob
        + h * stride_doh
        + idx[:, None] * stride_dot
        + offs_d[None, :] * stride_dod,
        mask=tile,
        other=0.0,
    )
    lse = tl.load(LSE + row_base + idx, mask=tok_in, other=float("inf"))  # (BLOCK,)
    delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), axis=1)  # (BLOCK,)

    s = (_dot(q, tl.trans(k), INPUT_PRECISION, EMULATE_BF16) * qk_scale).to(tl.float32)
    p = tl.where(live[None, :], tl.exp2(s - lse[:, None]), 0.0)
    dv = _dot(
        tl.trans(_cast(p, do.dtype, EMULATE_BF16)), do, INPUT_PRECISION, EMULATE_BF16
    )  # (BLOCK, D)
    dp = _dot(do, tl.trans(v), INPUT_PRECISION, EMULATE_BF16)  # (BLOCK, BLOCK)
    ds = _cast(p * (dp - delta[:, None]), q.dtype, EMULATE_BF16)
    dq = (_dot(ds, k, INPUT_PRECISION, EMULATE_BF16) * sm_scale).to(tl.float32)  # (BLOCK, D)
    dk = (_dot(tl.trans(ds), q, INPUT_PRECISION, EMULATE_BF16) * sm_scale).to(tl.float32)

    out_offs = (row_base + idx[:, None]) * HEAD_DIM + offs_d[None, :]
    tl.store(DQ + out_offs, _cast(dq, DQ.dtype.element_ty, EMULATE_BF16), mask=tile)
    tl.store(DK + out_offs, _cast(dk, DK.dtype.element_ty, EMULATE_BF16), mask=tile)
    tl.store(DV + out_offs, _cast(dv, DV.dtype.element_ty, EMULATE_BF16), mask=tile)
