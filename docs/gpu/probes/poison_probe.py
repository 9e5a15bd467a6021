# Throwaway GPU probe, kept as the record of what it measured (not maintained, not linted):
# it produced the poison lines of h100_torch_compile_probe.txt. Ran from the repo root as gpu_scratch/<name>.py.
import os, sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch
from kernels.attention import op, op_head
g = torch.Generator(device="cuda").manual_seed(0)
q, k, v, do = (torch.randn(4, 4, 42, 64, device="cuda", dtype=torch.bfloat16, generator=g) for _ in range(4))
for t in (q, k, v): t.requires_grad_(True)
os.environ[op.ENV_POISON] = "1"
for label, mod in (("HEAD op, poison on", op_head), ("new op, poison on", op)):
    torch._dynamo.reset()
    f = lambda q, k, v: mod.attention(q, k, v, backend="triton") * 2
    c = torch.compile(f)
    oc = c(q, k, v); gc = torch.autograd.grad(oc, (q, k, v), do)
    oe = f(q, k, v); ge = torch.autograd.grad(oe, (q, k, v), do)
    print(label, [round((a.float() - b.float()).abs().max().item(), 4) for a, b in zip((oc, *gc), (oe, *ge))], flush=True)
