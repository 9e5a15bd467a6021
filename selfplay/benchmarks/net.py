"""Network evaluations per second (inference fast path) against the measured matmul peak."""

from __future__ import annotations

import argparse
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from agents.networks import (
    INFERENCE_BACKENDS,
    ConvNetConfig,
    MLPConfig,
    PolicyValueNet,
    TransformerConfig,
    build_network,
    inference_model,
)
from selfplay.benchmarks.common import (
    cpu_model,
    emit_json,
    gpu_name,
    matmul_peaks,
    print_table,
    time_callable,
)

# Default configs for Connect Four (6x7 board, 7 column actions).
NETS = {
    "convnet": ConvNetConfig,
    "transformer": TransformerConfig,
    "mlp": MLPConfig,
}
DEVICES = ("auto", "cpu", "cuda")


def _comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `selfplay bench net`."""
    parser.add_argument(
        "--batches", default="256,1024", help="comma-separated batch sizes (default 256,1024)"
    )
    parser.add_argument(
        "--nets",
        default="convnet,transformer,mlp",
        help=f"comma-separated networks from {', '.join(NETS)} (default: all)",
    )
    parser.add_argument(
        "--device",
        default="auto",
        choices=DEVICES,
        help="auto = the CPU, plus the GPU when there is one (default auto)",
    )
    parser.add_argument(
        "--backends",
        default="auto",
        help="comma-separated inference paths from "
        f"{', '.join(INFERENCE_BACKENDS)} (default auto: the fastest of them)",
    )
    parser.add_argument(
        "--chunk",
        type=int,
        default=None,
        help="largest batch per network call (default: auto picks one; else the whole batch)",
    )
    parser.add_argument(
        "--seconds", type=float, default=2.0, help="timing budget per measurement (default 2)"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="CPU threads (default: torch's, = cores)"
    )
    parser.set_defaults(func=run)


def flops_per_eval(net: PolicyValueNet, device: torch.device) -> int:
    """FLOPs of one evaluation (matmuls, convolutions, attention; a multiply-add = 2).

    Counted by torch's FlopCounterMode on a batch of 2 (halved), so the figure comes from the
    layer shapes actually run; elementwise work (BN, ReLU, LayerNorm, softmax) is not counted.
    """
    x, legal = _inputs(net, 2, device)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        net.eval()(x, legal)
    return counter.get_total_flops() // 2


def _inputs(net: PolicyValueNet, batch: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Random positions (stones at random) with every action legal: speed ignores content."""
    c = net.config
    generator = torch.Generator().manual_seed(0)
    cells = torch.randint(0, 3, (batch, c.rows * c.cols), generator=generator)  # (N, T)
    if net.input_kind == "tokens":
        x = cells
    else:
        x = torch.stack([cells == 1, cells == 2], dim=1).float().view(batch, 2, c.rows, c.cols)
    legal = torch.ones(batch, c.num_actions, dtype=torch.bool)  # (N, A)
    return x.to(device), legal.to(device)


def _parse(args: argparse.Namespace) -> tuple[list[str], list[int], list[str], list[str]]:
    """Validate the options, failing with the bad value and the valid choices."""
    nets = _comma_list(args.nets)
    for name in nets:
        if name not in NETS:
            raise ValueError(f"unknown net {name!r}; choose from {', '.join(NETS)}")
    try:
        batches = [int(b) for b in _comma_list(args.batches)]
    except ValueError:
        raise ValueError(
            f"--batches must be comma-separated integers, got {args.batches!r}"
        ) from None
    if not batches or min(batches) <= 0:
        raise ValueError(f"--batches must be positive integers, got {args.batches!r}")
    backends = _comma_list(args.backends)
    for name in backends:
        if name not in INFERENCE_BACKENDS:
            raise ValueError(f"unknown backend {name!r}; choose from {INFERENCE_BACKENDS}")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but torch sees no CUDA GPU")
    devices = ["cpu"] if args.device in ("auto", "cpu") else []
    if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()):
        devices.append("cuda")
    if args.seconds <= 0:
        raise ValueError(f"--seconds must be > 0, got {args.seconds}")
    if args.chunk is not None and args.chunk <= 0:
        raise ValueError(f"--chunk must be a positive integer, got {args.chunk}")
    if args.threads is not None and args.threads <= 0:
        raise ValueError(f"--threads must be a positive integer, got {args.threads}")
    return nets, batches, devices, backends


def run(args: argparse.Namespace) -> int:
    """Time every (device, net, batch, backend); print a table, then one JSON line each."""
    nets, batches, devices, backends = _parse(args)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    machine = {"cpu": cpu_model(), "gpu": gpu_name(), "threads": torch.get_num_threads()}
    rows: list[dict[str, Any]] = []
    for device_name in devices:
        device = torch.device(device_name)
        # Measured in the same run as the nets, before and after them (the best of the two
        # counts): on a shared machine only ratios are stable, and a peak measured in a
        # noisy moment would flatter every share.
        peaks = matmul_peaks(device, seconds=args.seconds)
        device_rows: list[dict[str, Any]] = []
        for net_name in nets:
            net = build_network(NETS[net_name]()).to(device).eval()
            flops = flops_per_eval(net, device)
            for batch in batches:
                x, legal = _inputs(net, batch, device)
                for backend in backends:
                    model = inference_model(
                        net,
                        x,
                        backend=backend,
                        chunk=args.chunk,  # type: ignore[arg-type]
                    )
                    seconds = time_callable(
                        lambda m=model, x=x, legal=legal: m(x, legal),
                        args.seconds,
                        device=device,
                    )
                    evals_per_s = batch / seconds
                    achieved = evals_per_s * flops / 1e9
                    device_rows.append(
                        {
                            "bench": "net",
                            "net": net_name,
                            "batch": batch,
                            "device": device_name,
                            "backend": model.backend,
                            "chunk": model.chunk,
                            "evals_per_s": round(evals_per_s, 1),
                            "flops_per_eval": flops,
                            "params": net.num_parameters(),
                            "gflops": round(achieved, 2),
                        }
                    )
                    print(
                        f"{device_name} {net_name} batch {batch} [{model.backend}]: "
                        f"{evals_per_s:,.0f} evals/s",
                        flush=True,
                    )
        after = matmul_peaks(device, seconds=args.seconds)
        peaks = {k: max(v, after[k]) for k, v in peaks.items()}
        peak = max(peaks.values())
        for row in device_rows:
            row["peak_gflops"] = round(peak, 2)
            row["peak_share"] = round(row["gflops"] / peak, 4)
            row["matmul_peaks"] = {k: round(v, 2) for k, v in peaks.items()}
            row.update(machine, torch=torch.__version__)
        rows += device_rows
    print()
    print(
        f"CPU: {machine['cpu']} ({machine['threads']} threads); GPU: {machine['gpu']}; "
        "peak = best fp32 GEMM (torch.matmul, or oneDNN on the CPU), measured in this run"
    )
    columns = ["device", "net", "batch", "backend", "chunk", "evals_per_s", "flops_per_eval"]
    print_table(rows, [*columns, "gflops", "peak_gflops", "peak_share"])
    for row in rows:
        emit_json(row)
    return 0
