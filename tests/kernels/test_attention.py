"""Fused attention: the Triton kernel and the SDPA fallback against the float64 reference.

On a CPU the Triton tests run through Triton's interpreter: start pytest with
``TRITON_INTERPRET=1`` (the Makefile does). Accuracy rule, from the Triton fused-attention
tutorial: our max error against the float64 reference is at most twice PyTorch's own error at the
same precision (the plain-torch reference computed in that dtype), plus a tiny floor for fp32,
where both errors are ~1e-7 and recomputing probabilities from the log-sum-exp costs a few ulps
(and a far tinier one for fp16/bf16, where at T = 1 PyTorch's error can be exactly 0).
"""

from __future__ import annotations

import dataclasses
import math
import os

import pytest
import torch

import kernels
from kernels.attention import op
from kernels.attention.ref import attention_ref
from kernels.graphs import capture

HAS_CUDA = torch.cuda.is_available()
TRITON_OK = op._kernel is not None and (HAS_CUDA or op._INTERPRETED)

needs_triton = pytest.mark.skipif(
    not TRITON_OK,
    reason=(
        "the triton backend needs CUDA or Triton's interpreter: run with TRITON_INTERPRET=1 "
        f"(TRITON_INTERPRET={os.environ.get('TRITON_INTERPRET')!r}, cuda={HAS_CUDA}, "
        f"triton import error={op._TRITON_IMPORT_ERROR})"
    ),
)
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")

# The interpreter runs on CPU tensors; with a GPU (and no interpreter) the kernel needs CUDA ones.
TRITON_DEVICE = "cpu" if op._INTERPRETED else "cuda"
ERROR_FLOOR = {torch.float32: 2e-5, torch.float16: 1e-5, torch.bfloat16: 1e-5}


@pytest.fixture(autouse=True)
def _poison(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every kernel output starts as NaN, so an element a kernel never writes fails the test."""
    monkeypatch.setenv(op.ENV_POISON, "1")
    monkeypatch.delenv(op.ENV_BACKEND, raising=False)


def _inputs(
    B: int, H: int, T: int, D: int, dtype: torch.dtype, device: str, seed: int = 0
) -> tuple[torch.Tensor, ...]:
    """q, k, v (B, H, T, D) requiring grad, and an upstream gradient dO."""
    gen = torch.Generator().manual_seed(seed)
    q, k, v, do = (torch.randn(B, H, T, D, generator=gen).to(device, dtype) for _ in range(4))
    for t in (q, k, v):
        t.requires_grad_(True)
    return q, k, v, do


def _padding_mask(lengths: list[int], T: int, device: str) -> torch.Tensor:
    """Bool (B, T): the first lengths[b] keys are real (True), the rest padding."""
    return torch.arange(T, device=device)[None, :] < torch.tensor(lengths, device=device)[:, None]


def _forward_backward(fn, q, k, v, mask, do) -> list[torch.Tensor]:
    """[out, dq, dk, dv] of fn(q, k, v, mask) for the upstream gradient do."""
    out = fn(q, k, v, mask)
    grads = torch.autograd.grad(out, (q, k, v), do.to(out.dtype))
    return [out, *grads]


def assert_close_to_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    do: torch.Tensor,
    backend: str,
) -> dict[str, float]:
    """Check output and dq, dk, dv; returns our error / allowed error per tensor (<= 1 passes)."""
    ours = _forward_backward(lambda *a: kernels.attention(*a, backend=backend), q, k, v, mask, do)
    exact = _forward_backward(lambda *a: attention_ref(*a, upcast=True), q, k, v, mask, do)
    torch_low = _forward_backward(lambda *a: attention_ref(*a, upcast=False), q, k, v, mask, do)
    ratios = {}
    for name, o, e, t in zip(("out", "dq", "dk", "dv"), ours, exact, torch_low, strict=True):
        assert o.dtype == q.dtype and o.shape == q.shape, (name, o.dtype, o.shape)
        # NaN would also fail the comparison below, but say plainly what it means.
        assert torch.isfinite(o).all(), f"{name}: non-finite values (unwritten by a kernel?)"
        err = (o.double() - e).abs().max().item()
        torch_err = (t.double() - e).abs().max().item()
        # The floor grows with sqrt(T) past 256 tokens: dK and dQ sum T rounding residues of
        # FlashAttention's row term rowsum(dO * O) against dP (torch's softmax backward uses
        # rowsum(P * dP) instead, which cancels exactly for a row with a single live key).
        floor = ERROR_FLOOR[q.dtype] * max(1.0, math.sqrt(q.shape[2] / 256))
        allowed = 2 * torch_err + floor
        assert err <= allowed, (
            f"{name}: max error {err:.3g} > allowed {allowed:.3g} "
            f"(torch {q.dtype} error {torch_err:.3g}), shape {tuple(q.shape)}"
        )
        ratios[name] = err / allowed if allowed > 0 else 0.0
    return ratios


# --------------------------------------------------------------------------------------------
# Triton path (interpreter on CPU).
# --------------------------------------------------------------------------------------------

# (T, D): the board-game lengths, not powers of two; the D values cover the fused single-tile
# backward (T <= 64) and the three-kernel backward with several tiles and a ragged tail.
CASES = [(1, 16), (9, 32), (42, 16), (81, 32), (361, 16)]


@needs_triton
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize(("T", "D"), CASES, ids=[f"T{t}-D{d}" for t, d in CASES])
def test_triton_matches_reference(T: int, D: int, dtype: torch.dtype) -> None:
    q, k, v, do = _inputs(2, 2, T, D, dtype, TRITON_DEVICE)
    assert_close_to_reference(q, k, v, None, do, backend="triton")


@needs_triton
@pytest.mark.parametrize(("T", "D"), [(9, 64), (42, 64), (42, 128), (81, 16)])
def test_triton_fp16_and_wide_heads(T: int, D: int) -> None:
    q, k, v, do = _inputs(1, 2, T, D, torch.float16, TRITON_DEVICE, seed=1)
    assert_close_to_reference(q, k, v, None, do, backend="triton")


@needs_triton
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("T", [9, 42, 81])
def test_triton_padded(T: int, dtype: torch.dtype) -> None:
    """Variable lengths per batch row: full, a single real key, half, scattered, none."""
    q, k, v, do = _inputs(5, 2, T, 16, dtype, TRITON_DEVICE, seed=2)
    mask = _padding_mask([T, 1, (T + 1) // 2, T, 0], T, TRITON_DEVICE)
    gen = torch.Generator().manual_seed(3)
    mask[3] = torch.rand(T, generator=gen).to(TRITON_DEVICE) < 0.5  # holes, not just a tail
    mask[3, T // 2] = True
    assert_close_to_reference(q, k, v, mask, do, backend="triton")


@needs_triton
@pytest.mark.parametrize("T", [9, 81])
def test_triton_fully_padded_row_gives_zeros(T: int) -> None:
    q, k, v, do = _inputs(2, 2, T, 16, torch.float32, TRITON_DEVICE, seed=4)
    mask = _padding_mask([T, 0], T, TRITON_DEVICE)
    out, dq, dk, dv = _forward_backward(
        lambda *a: kernels.attention(*a, backend="triton"), q, k, v, mask, do
    )
    for name, t in (("out", out), ("dq", dq), ("dk", dk), ("dv", dv)):
        assert torch.equal(t[1], torch.zeros_like(t[1])), f"{name} of the padded row is not 0"
        assert torch.isfinite(t).all(), name
    assert out[0].abs().sum() > 0  # the real row is not zeroed along with it


MULTI_TILE_CONFIGS = {
    # several tiles each way with a ragged tail, in the forward and the split backward
    "16x16": op.LaunchConfig(16, 16, 2, bwd_owned=16, bwd_inner=16, bwd_warps=2),
    # tile sizes that differ between the two sides catch a swapped BLOCK_M / BLOCK_N
    "32x16": op.LaunchConfig(32, 16, 2, bwd_owned=32, bwd_inner=16, bwd_warps=2),
    "16x32": op.LaunchConfig(16, 32, 2, num_stages=1, bwd_owned=16, bwd_inner=32, bwd_warps=1),
}


@needs_triton
@pytest.mark.parametrize("name", list(MULTI_TILE_CONFIGS))
def test_triton_multi_tile_configs(name: str) -> None:
    """The tiled kernels with small tiles: T = 42 spans 2-3 tiles, with a key padding mask."""
    T, D = 42, 16
    q, k, v, do = _inputs(3, 2, T, D, torch.float32, TRITON_DEVICE, seed=5)
    mask = _padding_mask([T, 1, 20], T, TRITON_DEVICE)
    with op.override_config(T, D, MULTI_TILE_CONFIGS[name]):
        assert op.pick_config(T, D) == MULTI_TILE_CONFIGS[name]
        assert_close_to_reference(q, k, v, mask, do, backend="triton")
    assert op.pick_config(T, D) != MULTI_TILE_CONFIGS[name]  # the override ends with the block


@needs_triton
@pytest.mark.parametrize("T", [32, 42])
@pytest.mark.parametrize("name", list(MULTI_TILE_CONFIGS))
def test_triton_multi_tile_configs_unpadded(name: str, T: int) -> None:
    """Without a mask, T = 32 is a whole number of tiles (no ragged last key block) and T = 42
    has a ragged one."""
    D = 16
    q, k, v, do = _inputs(2, 2, T, D, torch.float32, TRITON_DEVICE, seed=6)
    with op.override_config(T, D, MULTI_TILE_CONFIGS[name]):
        assert_close_to_reference(q, k, v, None, do, backend="triton")


@needs_triton
@pytest.mark.slow
def test_every_tma_sweep_candidate_is_correct() -> None:
    """Every TMA candidate of the long-sequence sweep (the lease's T = 361 sweep times them) on
    the reference with padding: tiles of 32-128 keys and 16-64 inner rows over a ragged end."""
    T, D = 361, 16
    q, k, v, do = _inputs(2, 2, T, D, torch.float32, TRITON_DEVICE, seed=T)
    mask = _padding_mask([T, 100], T, TRITON_DEVICE)
    candidates = [c for c in op.candidate_configs(T, D) if c.fwd_tma or c.bwd_tma]
    assert len(candidates) == 12
    for config in candidates:
        with op.override_config(T, D, config):
            assert_close_to_reference(q, k, v, mask, do, backend="triton")


@needs_triton
@pytest.mark.slow
@pytest.mark.parametrize("T", [9, 42])
def test_every_sweep_candidate_is_correct(T: int) -> None:
    """Every configuration the benchmark's --sweep may pick computes the same attention."""
    D = 16
    q, k, v, do = _inputs(2, 2, T, D, torch.float32, TRITON_DEVICE, seed=T)
    mask = _padding_mask([T, T // 2], T, TRITON_DEVICE)
    candidates = op.candidate_configs(T, D)
    assert candidates[0] == op.pick_config(T, D)
    assert any(c.uses_fused_bwd(T) for c in candidates)
    assert any(not c.uses_fused_bwd(T) for c in candidates)
    for config in candidates:
        with op.override_config(T, D, config):
            assert_close_to_reference(q, k, v, mask, do, backend="triton")


def _record_tma(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """The USE_TMA value of every kernel launch from now on (launches without it are left out)."""
    used: list[bool] = []
    real = op._launch

    def launch(kernel, grid, args, meta, options):
        if "USE_TMA" in meta:
            used.append(bool(meta["USE_TMA"]))
        real(kernel, grid, args, meta, options)

    monkeypatch.setattr(op, "_launch", launch)
    return used


@needs_triton
@pytest.mark.parametrize(
    ("T", "dtype"),
    [(81, torch.float32), (361, torch.float32), (361, torch.bfloat16)],
    ids=["T81-fp32", "T361-fp32", "T361-bf16"],
)
def test_tma_candidates_match_reference(
    T: int, dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sweep's TMA candidates (tensor-descriptor loads, rows past T read as zeros) on the
    reference with a padding mask, and the descriptors really used: forward at T = 81 (its
    backward is fused and has none), forward and both split backward kernels at T = 361."""
    D = 16 if dtype == torch.float32 else 32
    q, k, v, do = _inputs(2, 2, T, D, dtype, TRITON_DEVICE, seed=T + 7)
    mask = _padding_mask([T, T // 3], T, TRITON_DEVICE)
    candidates = op.candidate_configs(T, D)
    fwd_tma = next(c for c in candidates if c.fwd_tma)
    assert not fwd_tma.bwd_tma
    picked = [fwd_tma]
    if T > op.FUSED_MAX_T:
        bwd_tma = next(c for c in candidates if c.bwd_tma)
        picked += [fwd_tma.with_backward_of(bwd_tma)]
    used = _record_tma(monkeypatch)
    for config in picked:
        used.clear()
        with op.override_config(T, D, config):
            assert_close_to_reference(q, k, v, mask, do, backend="triton")
        # forward, then the backward's kernels (preprocess has no loads to replace)
        want = [True] + [config.bwd_tma] * (0 if config.uses_fused_bwd(T) else 2)
        assert used == want, (config, used)


@needs_triton
def test_tma_refused_where_descriptors_cannot_address_the_tensor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A TMA configuration on tensors TMA cannot read (a pointer off 16-byte alignment, a
    non-contiguous head dim, a stride-0 upstream gradient), or inside torch.compile, takes the
    ordinary loads, with the same results."""
    T, D = 361, 16
    q, k, v, do = _inputs(2, 2, T, D, torch.float32, TRITON_DEVICE, seed=3)
    assert op._tma_ok(q, k, v, do)
    flat = torch.empty(q.numel() + 1, device=TRITON_DEVICE)[1:]  # 4 bytes off
    misaligned = flat.view(q.shape).copy_(q.detach())
    head_dim_strided = q.detach().transpose(2, 3).contiguous().transpose(2, 3)
    expanded = torch.ones(1, 1, 1, 1, device=TRITON_DEVICE).expand(q.shape)
    assert not op._tma_ok(misaligned)
    assert not op._tma_ok(head_dim_strided)
    assert not op._tma_ok(q, expanded)
    padded_rows = torch.zeros(2, 2, T, D + 1, device=TRITON_DEVICE)[..., :D]  # 68-byte rows
    assert not op._tma_ok(padded_rows)
    with monkeypatch.context() as patch:
        patch.setattr(torch.compiler, "is_compiling", lambda: True)
        assert not op._tma_ok(q, k, v, do)  # compiled code: fake tensors, Inductor's launches
    assert op._tma_ok(q, k, v, do)
    used = _record_tma(monkeypatch)
    config = op.LaunchConfig(64, 64, 4, fwd_tma=True, bwd_owned=64, bwd_inner=64, bwd_tma=True)
    with op.override_config(T, D, config):
        args = [misaligned.requires_grad_(True), k, v]
        assert_close_to_reference(*args, None, do, backend="triton")
        assert used == [True, False, False]  # k, v aligned; the backward reads q
        used.clear()
        out = kernels.attention(q, k, v, backend="triton")
        out.sum().backward()  # dO = ones expanded: stride 0
        assert used == [True, False, False]


@needs_triton
def test_descriptor_scratch_allocator_set_only_where_none_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Device-side descriptors need Triton's allocator: ours (torch's caching allocator) goes in
    where none is set, in the context of the calling thread, and a user's own stays."""
    import contextvars

    from triton.runtime import _allocation

    monkeypatch.setattr(op, "_INTERPRETED", False)

    def check() -> None:
        _allocation._allocator.set(_allocation.NullAllocator())
        op._ensure_allocator()
        assert _allocation._allocator.get() is op._scratch

        def theirs(size, alignment, stream):
            return torch.empty(size, dtype=torch.int8)

        _allocation._allocator.set(theirs)
        op._ensure_allocator()
        assert _allocation._allocator.get() is theirs

    contextvars.copy_context().run(check)  # the test's own context is left as it was


def test_measured_table_applies_to_16_bit_inputs_only() -> None:
    """bf16/fp16 at D = 32, 64 take the swept winners; fp32 and other head dims the heuristic."""
    assert op.pick_config(9, 64) == op.LaunchConfig(16, 16, 2, 2, fused_bwd=True, fused_warps=2)
    long = op.pick_config(361, 32)
    assert (long.block_m, long.block_n, long.num_stages) == (128, 64, 3)
    assert not long.uses_fused_bwd(361) and (long.bwd_owned, long.bwd_inner) == (128, 16)
    long = op.pick_config(200, 64)  # the T = 361 winners serve every T past the fused backward
    assert (long.block_m, long.block_n, long.num_stages) == (128, 64, 4)
    assert (long.bwd_owned, long.bwd_inner, long.bwd_stages) == (128, 32, 3)
    assert op.pick_config(81, 64).uses_fused_bwd(81)  # one 128-token tile
    assert not op.pick_config(81, 64, itemsize=4).uses_fused_bwd(81)  # fp32: the heuristic
    assert op.pick_config(81, 128) == op.pick_config(81, 128, itemsize=4)  # D = 128: heuristic


def test_measured_table_rows_may_pick_tma(monkeypatch: pytest.MonkeyPatch) -> None:
    """A trailing True in a table row's forward or split-backward settings turns on TMA loads."""
    monkeypatch.setattr(op, "_TABLE_CACHE", {})
    monkeypatch.setitem(
        op._MEASURED_LONG, 64, ((128, 64, 4, 4, True), ("split", 128, 32, 4, 3, True))
    )
    config = op.pick_config(361, 64)
    assert config.fwd_tma and config.bwd_tma and config.num_stages == 4
    assert not op.pick_config(361, 32).fwd_tma and not op.pick_config(361, 32).bwd_tma


@needs_triton
@pytest.mark.parametrize("T", [9, 42, 81, 361])
def test_measured_table_configs_are_correct(T: int) -> None:
    """The table's configurations (as bf16 inputs get them) on the reference, with padding."""
    q, k, v, do = _inputs(2, 2, T, 32, torch.bfloat16, TRITON_DEVICE, seed=T + 1)
    mask = _padding_mask([T, max(1, T // 3)], T, TRITON_DEVICE)
    assert_close_to_reference(q, k, v, mask, do, backend="triton")


def test_with_backward_of_takes_every_backward_field() -> None:
    fwd = op.LaunchConfig(128, 64, 4, 3)
    bwd = op.LaunchConfig(16, 16, 1, 1, fused_bwd=True, fused_warps=2, bwd_owned=32,
                          bwd_inner=16, bwd_warps=2, bwd_stages=3, bwd_tma=True)  # fmt: skip
    both = fwd.with_backward_of(bwd)
    forward = ("block_m", "block_n", "num_warps", "num_stages", "fwd_tma")
    assert {f.name for f in dataclasses.fields(op.LaunchConfig)} == {*forward, *op._BACKWARD_FIELDS}
    assert all(getattr(both, name) == getattr(fwd, name) for name in forward)
    assert all(getattr(both, name) == getattr(bwd, name) for name in op._BACKWARD_FIELDS)


def test_launch_config_refuses_bad_values() -> None:
    with pytest.raises(ValueError, match="block_m must be a power of two >= 16, got 24"):
        op.LaunchConfig(24, 16, 2)
    with pytest.raises(ValueError, match="bwd_warps must be 1, 2, 4, 8 or 16, got 3"):
        op.LaunchConfig(16, 16, 2, bwd_warps=3)


@needs_triton
def test_triton_strided_inputs_and_expanded_grad() -> None:
    """q, k, v as views of one (B, T, 3, H, D) projection, and a stride-0 dO from .sum()."""
    B, T, H, D = 2, 9, 2, 16
    gen = torch.Generator().manual_seed(6)
    qkv = torch.randn(B, T, 3, H, D, generator=gen).to(TRITON_DEVICE).requires_grad_(True)
    q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, T, D), non-contiguous
    assert not q.is_contiguous()
    kernels.attention(q, k, v, backend="triton").sum().backward()
    ours = qkv.grad.clone()
    qkv.grad = None
    attention_ref(q, k, v).sum().backward()
    torch.testing.assert_close(ours, qkv.grad.float(), rtol=0, atol=2e-5)


@needs_triton
def test_poisoned_buffers_are_nan_and_fail_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """The poison mode really fills outputs with NaN, and the accuracy check rejects one NaN."""
    buf = op._new_buffer((2, 3), torch.float32, torch.device(TRITON_DEVICE))
    assert torch.isnan(buf).all()
    q, k, v, do = _inputs(1, 1, 9, 16, torch.float32, TRITON_DEVICE)
    real_forward = op.triton_forward

    def forward_missing_one_row(*args, **kwargs):
        o, lse = real_forward(*args, **kwargs)
        o[0, 0, 3] = float("nan")  # as if the kernel had skipped row 3
        return o, lse

    monkeypatch.setattr(op, "triton_forward", forward_missing_one_row)
    with pytest.raises(AssertionError, match="non-finite"):
        assert_close_to_reference(q, k, v, None, do, backend="triton")


@needs_triton
def test_autograd_node_only_when_a_gradient_is_needed() -> None:
    """Inference calls skip the autograd.Function (its cost is per call), training calls don't."""
    q, k, v, _ = _inputs(1, 2, 9, 16, torch.float32, TRITON_DEVICE)
    qd, kd, vd = (t.detach() for t in (q, k, v))
    with_grad = kernels.attention(q, k, v, backend="triton")
    assert type(with_grad.grad_fn).__name__ == "_TritonAttentionBackward"
    plain = kernels.attention(qd, kd, vd, backend="triton")
    with torch.no_grad():
        no_grad = kernels.attention(q, k, v, backend="triton")
    assert plain.grad_fn is None and no_grad.grad_fn is None
    assert torch.equal(plain, with_grad.detach()) and torch.equal(no_grad, plain)


class _FakeCompiled:
    """Stands in for Triton's CompiledKernel (no GPU here): records direct launcher calls."""

    function, packed_metadata = "fn-handle", "packed"

    def __init__(self, calls: list) -> None:
        self.calls = calls

    def run(self, *args) -> None:
        self.calls.append(("direct", args))


class _FakeKernel:
    """Stands in for a JITFunction: kernel[grid](...) records the call and returns a compiled
    kernel, as Triton's launch path does."""

    arg_names = ("X", "stride", "n", "BLOCK", "FLAG")

    def __init__(self) -> None:
        self.calls: list = []

    def __getitem__(self, grid):
        def launch(*args, **kwargs):
            self.calls.append(("triton", grid, args, kwargs))
            return _FakeCompiled(self.calls)

        return launch


def test_launch_goes_through_triton_once_per_signature(monkeypatch: pytest.MonkeyPatch) -> None:
    """First call with a signature: Triton's path; repeats: the compiled launcher, constexprs
    appended in parameter order; a new int value, dtype or alignment: Triton's path again."""
    monkeypatch.setattr(op, "_LAUNCHERS", {})
    monkeypatch.setattr(op, "_INTERPRETED", False)
    monkeypatch.setattr(op, "_FAST_LAUNCH_TRITON", True)
    monkeypatch.setattr(op, "FAST_LAUNCH", True)
    monkeypatch.setattr(op, "_current_stream", lambda index: "stream")
    kernel = _FakeKernel()
    x = torch.zeros(64)
    meta, options = {"FLAG": True, "BLOCK": 16}, {"num_warps": 2}  # kwargs in any order

    op._launch(kernel, (3, 2), (x, 1, 7), meta, options)
    op._launch(kernel, (5,), (x, 1, 7), meta, options)
    assert [c[0] for c in kernel.calls] == ["triton", "direct"]
    assert kernel.calls[0][1:] == ((3, 2), (x, 1, 7), {"FLAG": True, "BLOCK": 16, "num_warps": 2})
    direct = kernel.calls[1][1]
    assert direct[:9] == (5, 1, 1, "stream", "fn-handle", "packed", None, None, None)
    assert direct[9:] == (x, 1, 7, 16, True)  # parameter order: X, stride, n, BLOCK, FLAG

    op._launch(kernel, (5,), (x, 16, 7), meta, options)  # stride 1 -> 16: new specialization
    op._launch(kernel, (5,), (x[1:], 1, 7), meta, options)  # 4-byte offset: not 16-aligned
    op._launch(kernel, (5,), (x.double(), 1, 7), meta, options)  # new dtype
    op._launch(kernel, (5,), (x, 1, 7), meta, {"num_warps": 4})  # new launch option
    assert [c[0] for c in kernel.calls[2:]] == ["triton"] * 4
    op._launch(kernel, (5,), (x[4:], 16, 7), meta, options)  # 16-byte offset: like x
    assert kernel.calls[-1][0] == "direct"

    monkeypatch.setattr(op, "FAST_LAUNCH", False)
    op._launch(kernel, (5,), (x, 1, 7), meta, options)
    assert kernel.calls[-1][0] == "triton"


# --------------------------------------------------------------------------------------------
# SDPA fallback and dispatch.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("T", [1, 9, 42])
def test_sdpa_matches_reference_with_padding(T: int) -> None:
    q, k, v, do = _inputs(3, 2, T, 24, torch.float32, "cpu", seed=7)  # D=24: any D works here
    mask = _padding_mask([T, 1, 0], T, "cpu")
    assert_close_to_reference(q, k, v, mask, do, backend="sdpa")
    out = kernels.attention(q, k, v, mask, backend="sdpa")
    assert torch.equal(out[2], torch.zeros_like(out[2]))  # no real key: zeros, not NaN


def test_auto_on_cpu_uses_sdpa_and_env_var_forces_backend(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    real_sdpa = op.sdpa_attention
    monkeypatch.setattr(op, "sdpa_attention", lambda *a: calls.append("sdpa") or real_sdpa(*a))
    q, k, v, _ = _inputs(1, 1, 9, 16, torch.float32, "cpu")
    kernels.attention(q, k, v)
    assert calls == ["sdpa"]

    monkeypatch.setenv(op.ENV_BACKEND, "sdpa")
    kernels.attention(q, k, v, backend=None)
    assert calls == ["sdpa", "sdpa"]

    monkeypatch.setenv(op.ENV_BACKEND, "triton")
    if TRITON_OK and TRITON_DEVICE == "cpu":
        kernels.attention(q, k, v)  # forced through the interpreter
    else:
        with pytest.raises(ValueError, match="backend='triton'"):
            kernels.attention(q, k, v)
    assert calls == ["sdpa", "sdpa"]
    kernels.attention(q, k, v, backend="sdpa")  # the argument beats the env var
    assert calls == ["sdpa", "sdpa", "sdpa"]

    monkeypatch.setenv(op.ENV_BACKEND, "cuda-magic")
    with pytest.raises(ValueError, match="SELFPLAY_ATTENTION='cuda-magic'"):
        kernels.attention(q, k, v)


# --------------------------------------------------------------------------------------------
# Bad input: a clear ValueError before any kernel launch.
# --------------------------------------------------------------------------------------------


def _x(*shape: int, dtype: torch.dtype = torch.float32, device: str = "cpu") -> torch.Tensor:
    return torch.zeros(shape, dtype=dtype, device=device)


BAD_INPUTS = {
    "rank": ((_x(2, 9, 16), _x(2, 9, 16), _x(2, 9, 16), None), "4 dims"),
    "shape": ((_x(2, 2, 9, 16), _x(2, 2, 8, 16), _x(2, 2, 9, 16), None), r"\(2, 2, 8, 16\)"),
    "dtype": (
        (_x(1, 1, 9, 16), _x(1, 1, 9, 16, dtype=torch.float16), _x(1, 1, 9, 16), None),
        "same dtype",
    ),
    "int": (
        tuple(_x(1, 1, 9, 16, dtype=torch.int32) for _ in range(3)) + (None,),
        "floating point",
    ),
    "device": (
        (_x(1, 1, 9, 16), _x(1, 1, 9, 16, device="meta"), _x(1, 1, 9, 16), None),
        "same device",
    ),
    "mask_shape": (
        (_x(2, 1, 9, 16), _x(2, 1, 9, 16), _x(2, 1, 9, 16), _x(2, 8, dtype=torch.bool)),
        r"\(B, T\) = \(2, 9\)",
    ),
    "mask_dtype": (
        (_x(2, 1, 9, 16), _x(2, 1, 9, 16), _x(2, 1, 9, 16), _x(2, 9, dtype=torch.int64)),
        "torch.bool",
    ),
    "mask_device": (
        (
            _x(2, 1, 9, 16),
            _x(2, 1, 9, 16),
            _x(2, 1, 9, 16),
            _x(2, 9, dtype=torch.bool, device="meta"),
        ),
        "same device",
    ),
}


@pytest.fixture
def no_kernel_launch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any launch (Triton or SDPA) fails the test: errors must come first."""

    def launched(*args, **kwargs):
        raise AssertionError("a kernel was launched before the input was rejected")

    for name in ("triton_forward", "triton_backward", "sdpa_attention"):
        monkeypatch.setattr(op, name, launched)


@pytest.mark.usefixtures("no_kernel_launch")
@pytest.mark.parametrize("backend", ["triton", "sdpa", None])
@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_raises_value_error(case: str, backend: str | None) -> None:
    args, message = BAD_INPUTS[case]
    with pytest.raises(ValueError, match=message):
        kernels.attention(*args, backend=backend)


@pytest.mark.usefixtures("no_kernel_launch")
@pytest.mark.parametrize(
    ("D", "dtype", "message"),
    [(24, torch.float32, "head dims"), (16, torch.float64, "dtypes")],
)
def test_triton_rejects_unsupported_head_dim_and_dtype(
    D: int, dtype: torch.dtype, message: str
) -> None:
    q = _x(1, 1, 9, D, dtype=dtype, device=TRITON_DEVICE if TRITON_OK else "cpu")
    # Without a usable triton the complaint is about triton/CUDA instead; still a ValueError.
    with pytest.raises(ValueError, match=message if TRITON_OK else "backend='triton'"):
        kernels.attention(q, q, q, backend="triton")


@pytest.mark.usefixtures("no_kernel_launch")
def test_unknown_backend() -> None:
    q = _x(1, 1, 9, 16)
    with pytest.raises(ValueError, match="'flash'.*one of"):
        kernels.attention(q, q, q, backend="flash")


# --------------------------------------------------------------------------------------------
# Real GPU: the same checks at larger shapes, every dtype and head dim.
# --------------------------------------------------------------------------------------------

GPU_DTYPES = [torch.float32, torch.float16, torch.bfloat16]


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("dtype", GPU_DTYPES, ids=["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("D", [16, 32, 64, 128])
@pytest.mark.parametrize("T", [1, 9, 16, 42, 64, 81, 361, 1024])
def test_gpu_matches_reference(T: int, D: int, dtype: torch.dtype) -> None:
    q, k, v, do = _inputs(4, 4, T, D, dtype, "cuda", seed=T + D)
    assert_close_to_reference(q, k, v, None, do, backend="triton")
    lengths = [T, 1, max(1, T // 3), 0]
    assert_close_to_reference(q, k, v, _padding_mask(lengths, T, "cuda"), do, backend="triton")


@pytest.mark.gpu
@needs_cuda
def test_gpu_large_batch_deterministic_and_auto_dispatch(monkeypatch: pytest.MonkeyPatch) -> None:
    q, k, v, do = _inputs(1024, 8, 81, 64, torch.bfloat16, "cuda", seed=9)
    mask = _padding_mask([81 - (b % 81) for b in range(1024)], 81, "cuda")
    first = _forward_backward(lambda *a: kernels.attention(*a), q, k, v, mask, do)  # auto
    second = _forward_backward(lambda *a: kernels.attention(*a), q, k, v, mask, do)
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)  # no atomics: bitwise reproducible
    sdpa = _forward_backward(lambda *a: kernels.attention(*a, backend="sdpa"), q, k, v, mask, do)
    for a, b in zip(first, sdpa, strict=True):
        torch.testing.assert_close(a, b, rtol=2e-2, atol=2e-2)
    calls: list[str] = []
    real = op.triton_forward
    monkeypatch.setattr(op, "triton_forward", lambda *a: calls.append("triton") or real(*a))
    kernels.attention(q, k, v, mask)
    assert calls == ["triton"]


@pytest.mark.gpu
@needs_cuda
def test_gpu_sdpa_fallback_matches_reference() -> None:
    q, k, v, do = _inputs(4, 4, 81, 48, torch.bfloat16, "cuda", seed=10)  # D=48: sdpa only
    mask = _padding_mask([81, 1, 40, 0], 81, "cuda")
    assert_close_to_reference(q, k, v, mask, do, backend=None)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("T", [9, 81, 361])  # fused backward (9, 81), three-kernel one (361)
def test_gpu_fast_launch_matches_triton_launch(T: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Repeat calls go through the compiled launchers and give bitwise the results of Triton's
    own path; a new layout (strides, a pointer off 16-byte alignment) gets its own kernel."""
    monkeypatch.setattr(op, "_LAUNCHERS", {})
    q, k, v, do = _inputs(8, 4, T, 64, torch.bfloat16, "cuda", seed=11)
    mask = _padding_mask([T, 1, T // 2, 0, T, 5 % T, T - 1, T], T, "cuda")

    def run() -> list[torch.Tensor]:
        return _forward_backward(
            lambda *a: kernels.attention(*a, backend="triton"), q, k, v, mask, do
        )

    monkeypatch.setattr(op, "FAST_LAUNCH", False)
    triton_path = run()
    assert not op._LAUNCHERS
    monkeypatch.setattr(op, "FAST_LAUNCH", True)
    for _ in range(3):  # the first fills the cache through Triton, the others use it
        for a, b in zip(triton_path, run(), strict=True):
            assert torch.equal(a, b)
    assert op._LAUNCHERS and all(entry is not None for entry in op._LAUNCHERS.values())
    with torch.no_grad():  # the inference path (no autograd node) too
        assert torch.equal(kernels.attention(q, k, v, mask, backend="triton"), triton_path[0])

    def misaligned(t: torch.Tensor) -> torch.Tensor:
        flat = torch.empty(t.numel() + 1, device="cuda", dtype=t.dtype)[1:]  # 2 bytes off
        return flat.view(t.shape).copy_(t.detach()).requires_grad_(True)

    def strided(t: torch.Tensor) -> torch.Tensor:  # (B, T, H, D) memory, (B, H, T, D) view
        return t.detach().transpose(1, 2).contiguous().transpose(1, 2).requires_grad_(True)

    for layout in (misaligned, strided):
        n_before = len(op._LAUNCHERS)
        args = [layout(t) for t in (q, k, v)]
        for _ in range(2):
            assert_close_to_reference(*args, mask, do, backend="triton")
        assert len(op._LAUNCHERS) > n_before, layout.__name__


@pytest.mark.gpu
@needs_cuda
def test_gpu_torch_compile_runs_our_kernel() -> None:
    """torch.compile traces the kernel launches (the network's compiled inference path uses
    this): compiled and eager agree, with and without gradients."""
    q, k, v, do = _inputs(4, 4, 42, 64, torch.bfloat16, "cuda", seed=12)

    def f(q, k, v, mask=None):
        return kernels.attention(q, k, v, mask, backend="triton") * 2

    compiled = torch.compile(f)
    eager_out = _forward_backward(f, q, k, v, None, do)
    compiled_out = _forward_backward(compiled, q, k, v, None, do)
    for a, b in zip(eager_out, compiled_out, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-2, atol=1e-2)
    with torch.no_grad():
        torch.testing.assert_close(compiled(q, k, v), eager_out[0], rtol=1e-2, atol=1e-2)


# TMA configurations on the GPU: the launch table picks one only where the sweep measured it
# faster, so these check every head dim and dtype directly.
def _tma_configs(T: int, D: int, dtype: torch.dtype) -> list[op.LaunchConfig]:
    small = op.LaunchConfig(64, 64, 4, 2, fwd_tma=True, bwd_owned=64, bwd_inner=32, bwd_tma=True)
    if D > 64 or dtype == torch.float32:
        return [small]
    big = op.LaunchConfig(128, 64, 4, 3, fwd_tma=True, bwd_owned=128, bwd_inner=32, bwd_tma=True)
    # 4 stages, as the sweep's deepest TMA candidates: a Triton bug report (triton-lang/triton
    # #10474) had descriptor loads in loops of >= 3 stages fault on misaligned addresses
    deep = dataclasses.replace(big, num_stages=4, bwd_stages=4)
    return [small, big, deep]


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("dtype", GPU_DTYPES, ids=["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("D", [16, 64, 128])  # 16: TMA's shortest rows (32 bytes at 16 bits)
@pytest.mark.parametrize("T", [81, 361])  # 2 and 3 forward query tiles; split backward both
def test_gpu_tma_configs_match_reference(
    T: int, D: int, dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    q, k, v, do = _inputs(4, 4, T, D, dtype, "cuda", seed=T + D + 1)
    mask = _padding_mask([T, 1, max(1, T // 3), 0], T, "cuda")
    has_tma = torch.cuda.get_device_capability()[0] >= 9
    used = _record_tma(monkeypatch)
    for config in _tma_configs(T, D, dtype):
        with op.override_config(T, D, config):
            for m in (None, mask):
                used.clear()
                assert_close_to_reference(q, k, v, m, do, backend="triton")
                split = not config.uses_fused_bwd(T)
                assert used == [has_tma] + [has_tma] * (2 if split else 0), (config, used)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("tma", [False, True], ids=["loads", "tma"])
@pytest.mark.parametrize("T", [9, 81, 361])  # fused backward (9, 81), three-kernel one (361)
def test_gpu_cuda_graph_replays_match_eager(
    T: int, tma: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forward+backward captured in a CUDA graph (what scripts/bench_attention.py --cuda-graphs
    times, and what a captured training step runs): replays on new input values give bitwise
    the eager results on those values. The TMA cases really capture descriptor loads on a GPU
    that has the unit."""
    D = 64
    used = _record_tma(monkeypatch)
    q, k, v, do = _inputs(8, 4, T, D, torch.bfloat16, "cuda", seed=13)
    mask = _padding_mask([T, 1, T // 2, 0, T, 5 % T, T - 1, T], T, "cuda")
    config = op.pick_config(T, D)
    if tma:
        config = replace_tma(config)
    results: list[torch.Tensor] = []

    def step() -> None:
        results[:] = _forward_backward(
            lambda *a: kernels.attention(*a, backend="triton"), q, k, v, mask, do
        )

    with op.override_config(T, D, config):
        graph = capture(step)  # the warm-up calls and the captured one go through _launch
        static = list(results)
        has_tma = torch.cuda.get_device_capability()[0] >= 9 and torch.version.hip is None
        # every launch with the choice: forward, and the split backward's dK/dV and dQ (T = 361)
        assert used and all(u == (tma and has_tma) for u in used), used
        for seed in (14, 15):
            fresh = _inputs(8, 4, T, D, torch.bfloat16, "cuda", seed=seed)
            with torch.no_grad():
                for dst, src in zip((q, k, v, do), fresh, strict=True):
                    dst.copy_(src)
            graph.replay()
            eager = _forward_backward(
                lambda *a: kernels.attention(*a, backend="triton"), q, k, v, mask, do
            )
            for got, want in zip(static, eager, strict=True):
                assert torch.equal(got, want)


def replace_tma(config: op.LaunchConfig) -> op.LaunchConfig:
    """config with TMA loads in the forward and the split backward."""
    return dataclasses.replace(config, fwd_tma=True, bwd_tma=True)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("T", [42, 361])  # fused backward (42), three-kernel one (361)
def test_gpu_torch_compile_reduce_overhead_runs_our_kernel(T: int) -> None:
    """torch.compile's CUDA-graph mode ("reduce-overhead") over a function calling our kernel,
    with a TMA launch configuration in force (compiled code keeps the ordinary loads: no graph
    break for it): forward and backward agree with eager over several calls (record, then
    replays), and Inductor skipped no CUDA graph."""
    from torch._dynamo.utils import counters

    D = 64

    def f(q, k, v, mask=None):
        return kernels.attention(q, k, v, mask, backend="triton") * 2

    torch._dynamo.reset()
    counters.clear()
    compiled = torch.compile(f, mode="reduce-overhead")
    with op.override_config(T, D, replace_tma(op.pick_config(T, D))):  # eager f: TMA loads
        for seed in (16, 17, 18, 19):
            q, k, v, do = _inputs(16, 4, T, D, torch.bfloat16, "cuda", seed=seed)
            got = [t.clone() for t in _forward_backward(compiled, q, k, v, None, do)]
            want = _forward_backward(f, q, k, v, None, do)
            for a, b in zip(got, want, strict=True):
                torch.testing.assert_close(a, b, rtol=1e-2, atol=1e-2)
    assert counters["inductor"]["cudagraph_skips"] == 0, dict(counters["inductor"])


def test_capture_refuses_a_capture_without_warm_up() -> None:
    with pytest.raises(ValueError, match="warmup must be at least 1 .*, got 0"):
        capture(lambda: None, warmup=0)
