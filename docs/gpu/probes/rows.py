# Throwaway GPU probe, kept as the record of what it measured (not maintained, not linted):
# it produced h100_launch_bound_rows_repeat.txt. Ran from the repo root as gpu_scratch/<name>.py.
import sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import torch
import bench_attention as ba
from kernels.attention import op
timer = ba.Timer("cuda", target_ms=20.0)
ours = lambda q, k, v: op.attention(q, k, v, backend="triton")
print("repeat of the launch-bound rows (ms): ours fwd, ours f+b, best sdpa f+b (backend), speedup f+b", flush=True)
for rep in range(2):
    for B, T, D in [(1, 9, 64), (256, 9, 32), (256, 9, 64), (256, 42, 32), (256, 42, 64), (256, 81, 32), (256, 81, 64), (256, 361, 32), (4096, 9, 32), (4096, 9, 64)]:
        H = 1 if B == 1 else 8
        q, k, v, do = ba._inputs(B, H, T, D, "cuda", torch.bfloat16)
        f, fb, _ = ba.measure(ours, q, k, v, do, timer)
        best = None
        for name in ba.SDPA_BACKENDS[:3]:
            r = ba.measure(ba.sdpa_with(name), q, k, v, do, timer)
            if r and (best is None or r[1] < best[1]):
                best = (name, r[1])
        print(f"rep{rep} B={B:5d} H={H} T={T:3d} D={D:2d} | {f:.4f} {fb:.4f} | {best[1]:.4f} ({best[0]}) | {best[1] / fb:.2f}x", flush=True)
