# Throwaway GPU probe, kept as the record of what it measured (not maintained, not linted):
# it produced the first part of h100_torch_compile_probe.txt (op_head.py = eacb0ac's op.py). Ran from the repo root as gpu_scratch/<name>.py.
import sys, time, traceback
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch
from kernels.attention import op, op_head
torch.manual_seed(0)
dev = "cuda"

def inputs(B, H, T, D):
    g = torch.Generator(device=dev).manual_seed(0)
    q, k, v, do = (torch.randn(B, H, T, D, device=dev, dtype=torch.bfloat16, generator=g) for _ in range(4))
    for t in (q, k, v): t.requires_grad_(True)
    return q, k, v, do

def check(label, mod, B=4, H=4, T=42, D=64):
    q, k, v, do = inputs(B, H, T, D)
    f = lambda q, k, v: mod.attention(q, k, v, backend="triton") * 2
    torch._dynamo.reset()
    try:
        ex = torch._dynamo.explain(f)(q, k, v)
        print(label, "explain: graphs", ex.graph_count, "breaks", ex.graph_break_count, [str(b.reason)[:150] for b in ex.break_reasons], flush=True)
    except Exception as e:
        print(label, "explain failed", type(e).__name__, str(e)[:300], flush=True)
    torch._dynamo.reset()
    c = torch.compile(f)
    try:
        with torch.no_grad():
            d = (c(q, k, v).float() - f(q, k, v).float()).abs().max().item()
        print(label, "no_grad compiled-vs-eager max diff", d, flush=True)
    except Exception as e:
        print(label, "no_grad compile failed", type(e).__name__, str(e)[:400], flush=True)
    torch._dynamo.reset()
    c = torch.compile(f)
    try:
        oc = c(q, k, v); gc = torch.autograd.grad(oc, (q, k, v), do)
        oe = f(q, k, v); ge = torch.autograd.grad(oe, (q, k, v), do)
        for n, a, b in zip(("out", "dq", "dk", "dv"), (oc, *gc), (oe, *ge)):
            print(label, "grad-mode", n, "max diff", (a.float() - b.float()).abs().max().item(), "compiled absmax", a.float().abs().max().item(), "eager absmax", b.float().abs().max().item(), flush=True)
    except Exception as e:
        print(label, "grad compile failed", type(e).__name__, str(e)[:400], flush=True)
        traceback.print_exc()

check("HEAD op", op_head)
op.FAST_LAUNCH = True
check("new op", op)
op.FAST_LAUNCH = False
check("new op, FAST_LAUNCH off", op)
