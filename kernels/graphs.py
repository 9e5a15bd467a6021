"""CUDA-graph capture of a callable, after the warm-up capture needs.

A replay launches the captured kernels with no Python, no dispatch and no autograd bookkeeping,
which is what small board-game batches are otherwise made of. Whatever the callable allocates
during capture lives in the graph's private memory pool: a replay rewrites those same tensors,
and new input values go in by copying into the tensors the callable read.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def capture(fn: Callable[[], object], warmup: int = 3) -> torch.cuda.CUDAGraph:
    """``fn`` captured in a CUDA graph on the current device; returns the graph (``.replay()``).

    ``fn`` runs ``warmup`` times first on a side stream, as PyTorch's CUDA-graph notes
    prescribe: first calls compile kernels, fill launch caches and set up cuBLAS and cuDNN
    workspaces, none of which capture may see. It may run forward and backward
    (``torch.autograd.grad`` inside ``fn`` is captured too).
    """
    if warmup < 1:
        raise ValueError(
            f"warmup must be at least 1 (capture must not see first calls), got {warmup}"
        )
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(warmup):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    caller_stream = torch.cuda.current_stream()
    try:
        with torch.cuda.graph(graph):
            fn()
    except BaseException:
        # a capture that fails at its end leaves the capture stream current: put ours back
        torch.cuda.set_stream(caller_stream)
        raise
    return graph
