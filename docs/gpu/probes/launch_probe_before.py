# Throwaway GPU probe, kept as the record of what it measured (not maintained, not linted):
# it produced h100_launch_probe_before.txt (the code of commit eacb0ac, plus an experimental
# kernel, gpu_scratch/kernel_old.py = eacb0ac's kernel.py, against a since-reverted trimmed one). Ran from the repo root as gpu_scratch/<name>.py.
"""GPU probe: per-call overhead breakdown of kernels.attention, and old vs new kernel timings."""
import cProfile, io, math, pstats, sys, time, os
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch, triton
import torch.nn.functional as F
from kernels.attention import op
import gpu_scratch.kernel_old as kernel_old
from kernels.attention import kernel as kernel_new

dev = "cuda"
print("gpu", torch.cuda.get_device_name(), "torch", torch.__version__, "triton", triton.__version__, flush=True)

def cpu_us(fn, n=2000):
    for _ in range(30): fn()
    torch.cuda.synchronize()
    best = []
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(n): fn()
        torch.cuda.synchronize()
        best.append((time.perf_counter() - t0) / n * 1e6)
    return min(best)

def inputs(B, H, T, D, dtype=torch.bfloat16):
    g = torch.Generator(device=dev).manual_seed(0)
    q, k, v, do = (torch.randn(B, H, T, D, device=dev, dtype=dtype, generator=g) for _ in range(4))
    for t in (q, k, v): t.requires_grad_(True)
    return q, k, v, do

# ---------------- overhead ----------------
B, H, T, D = 1, 1, 9, 64
q, k, v, do = inputs(B, H, T, D)
qd, kd, vd = q.detach(), k.detach(), v.detach()
rows = []
def row(name, fn, n=2000):
    try:
        us = cpu_us(fn, n)
        rows.append((name, us)); print(f"{name:55s} {us:8.1f} us/call", flush=True)
    except Exception as e:
        print(f"{name:55s} FAILED {type(e).__name__}: {e}", flush=True)

row("torch.empty (B,H,T,D) cuda", lambda: torch.empty((B, H, T, D), device=dev, dtype=q.dtype))
row("check_inputs + resolve_backend", lambda: (op._check_inputs(q, k, v, None), op._resolve_backend(None, q)))
with torch.no_grad():
    row("triton_forward direct", lambda: op.triton_forward(qd, kd, vd, None))
    o, lse = op.triton_forward(qd, kd, vd, None)
    # raw JITFunction launch with precomputed args
    cfg = op.pick_config(T, D, 2)
    args = (qd, kd, vd, qd, o, lse, *qd.stride(), *kd.stride(), *vd.stride(), *o.stride(), 0, 0, H, T, 0.18)
    meta = dict(HAS_MASK=False, HEAD_DIM=D, BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, num_warps=cfg.num_warps, num_stages=cfg.num_stages, **op._dot_meta(q.dtype))
    grid = (B * H, 1)
    row("raw kernel[grid](...) fwd launch (JITFunction.run)", lambda: op._kernel.attn_fwd_kernel[grid](*args, **meta))
    ck = op._kernel.attn_fwd_kernel[grid](*args, **meta)
    print("compiled kernel type", type(ck), "run", type(getattr(ck, "run", None)), flush=True)
    try:
        allargs = list(args) + [False, D, cfg.block_m, cfg.block_n, "tf32", False]
        stream = torch.cuda.current_stream().cuda_stream
        fnh = ck.function; pm = ck.packed_metadata
        row("compiled.run direct (all args)", lambda: ck.run(B * H, 1, 1, stream, fnh, pm, None, None, None, *allargs))
        row("compiled.run direct + current stream lookup", lambda: ck.run(B * H, 1, 1, torch._C._cuda_getCurrentRawStream(0), fnh, pm, None, None, None, *allargs))
    except Exception as e:
        print("direct run failed", type(e).__name__, e, flush=True)
    row("attention() no_grad", lambda: op.attention(q, k, v))
    row("sdpa no_grad (auto backend)", lambda: F.scaled_dot_product_attention(q, k, v))
row("triton_backward direct (main thread)", lambda: op.triton_backward(do, qd, kd, vd, o, lse, None))
row("attention() with grad, forward only", lambda: op.attention(q, k, v))
row("autograd.grad(attention) fwd+bwd", lambda: torch.autograd.grad(op.attention(q, k, v), (q, k, v), do), 1000)
row("autograd.grad(sdpa) fwd+bwd", lambda: torch.autograd.grad(F.scaled_dot_product_attention(q, k, v), (q, k, v), do), 1000)
class Id(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v):
        ctx.save_for_backward(q, k, v); return torch.empty_like(q)
    @staticmethod
    def backward(ctx, g):
        ctx.saved_tensors; return torch.empty_like(g), torch.empty_like(g), torch.empty_like(g)
row("trivial autograd.Function fwd+bwd (cuda)", lambda: torch.autograd.grad(Id.apply(q, k, v), (q, k, v), do), 1000)
try:
    torch.autograd.set_multithreading_enabled(False)
    row("[no autograd threads] attention fwd+bwd", lambda: torch.autograd.grad(op.attention(q, k, v), (q, k, v), do), 1000)
    row("[no autograd threads] sdpa fwd+bwd", lambda: torch.autograd.grad(F.scaled_dot_product_attention(q, k, v), (q, k, v), do), 1000)
    row("[no autograd threads] trivial Function fwd+bwd", lambda: torch.autograd.grad(Id.apply(q, k, v), (q, k, v), do), 1000)
finally:
    torch.autograd.set_multithreading_enabled(True)

def prof(name, fn, n=500):
    pr = cProfile.Profile(); pr.enable()
    for _ in range(n): fn()
    pr.disable(); torch.cuda.synchronize()
    s = io.StringIO(); pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(18)
    print(f"---- cProfile {name} ({n} calls) ----\n" + s.getvalue()[:5000], flush=True)
with torch.no_grad():
    prof("attention() no_grad", lambda: op.attention(q, k, v))
prof("triton_backward direct", lambda: op.triton_backward(do, qd, kd, vd, o, lse, None))

# ---------------- old vs new kernel ----------------
def gpu_ms(fn, iters=None):
    fn(); torch.cuda.synchronize()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record(); fn(); e.record(); torch.cuda.synchronize()
    per = max(s.elapsed_time(e), 1e-3); iters = max(3, min(500, int(25 / per)))
    out = []
    for _ in range(5):
        s.record()
        for _ in range(iters): fn()
        e.record(); torch.cuda.synchronize(); out.append(s.elapsed_time(e) / iters)
    return sorted(out)[2]

print("\nold vs new kernel (bf16, H=8); ms; err = max |ours - sdpa_fp32| over out,dq,dk,dv", flush=True)
print(f"{'B':>5} {'T':>4} {'D':>3} | {'old fwd':>8} {'new fwd':>8} | {'old f+b':>8} {'new f+b':>8} | {'cudnn fwd':>9} {'cudnn f+b':>9} | err old / new", flush=True)
from torch.nn.attention import SDPBackend, sdpa_kernel
def compare(B, T, D):
    q, k, v, do = inputs(B, 8, T, D)
    ref = [t.float() for t in (q, k, v)]
    for t in ref: t.requires_grad_(True)
    ro = F.scaled_dot_product_attention(*ref)
    rg = torch.autograd.grad(ro, ref, do.float())
    res = {}
    for name, mod in (("old", kernel_old), ("new", kernel_new)):
        op._kernel = mod
        def f():
            with torch.no_grad(): return op.attention(q, k, v, backend="triton")
        def fb(): return torch.autograd.grad(op.attention(q, k, v, backend="triton"), (q, k, v), do)
        out = op.attention(q, k, v, backend="triton"); g = torch.autograd.grad(out, (q, k, v), do)
        err = max((a.float() - b).abs().max().item() for a, b in zip([out, *g], [ro, *rg]))
        res[name] = (gpu_ms(f), gpu_ms(fb), err)
    op._kernel = kernel_new
    with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
        try:
            cf = gpu_ms(lambda: F.scaled_dot_product_attention(q.detach(), k.detach(), v.detach()))
            cfb = gpu_ms(lambda: torch.autograd.grad(F.scaled_dot_product_attention(q, k, v), (q, k, v), do))
        except Exception:
            cf = cfb = float("nan")
    print(f"{B:5d} {T:4d} {D:3d} | {res['old'][0]:8.3f} {res['new'][0]:8.3f} | {res['old'][1]:8.3f} {res['new'][1]:8.3f} | {cf:9.3f} {cfb:9.3f} | {res['old'][2]:.4f} / {res['new'][2]:.4f}", flush=True)

for (B, T, D) in [(4096, 361, 64), (1024, 361, 64), (256, 361, 64), (4096, 361, 32), (1024, 361, 32), (4096, 81, 64), (1024, 81, 64), (4096, 42, 64), (4096, 9, 64)]:
    try:
        compare(B, T, D)
    except Exception as e:
        print(B, T, D, "FAILED", type(e).__name__, e, flush=True)
