"""Plain-torch reference attention: the ground truth for the kernel tests.

It materialises the full (B, H, T, T) score matrix, so it is only for tests and small inputs.
"""

from __future__ import annotations

import math

import torch


def attention_ref(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_padding_mask: torch.Tensor | None = None,
    *,
    upcast: bool = True,
) -> torch.Tensor:
    """softmax(q k^T / sqrt(D)) v with the same contract as :func:`kernels.attention`.

    Args:
        q, k, v: (B, H, T, D).
        key_padding_mask: optional bool (B, T); True = real key, False = padding. A batch row
            with no real key gives zeros (and zero gradients).
        upcast: compute in float64 (the accuracy reference). False computes in the input dtype,
            which measures how much error PyTorch itself makes at that precision.

    Returns:
        (B, H, T, D) in float64 when ``upcast`` else in the input dtype.
    """
    if upcast:
        q, k, v = q.double(), k.double(), v.double()
    scale = 1.0 / math.sqrt(q.shape[-1])
    scores = (q @ k.transpose(-2, -1)) * scale  # (B, H, T, T)
    if key_padding_mask is None:
        return torch.softmax(scores, dim=-1) @ v  # (B, H, T, D)
    keep = key_padding_mask[:, None, None, :]  # (B, 1, 1, T)
    has_key = key_padding_mask.any(dim=1)[:, None, None, None]  # (B, 1, 1, 1)
    scores = scores.masked_fill(~keep, float("-inf"))
    # A row with every key padded would be softmax(all -inf) = NaN, and NaN leaks into the
    # gradients even when masked afterwards; give it finite scores, then zero its weights.
    scores = scores.masked_fill(~has_key, 0.0)
    probs = torch.softmax(scores, dim=-1).masked_fill(~has_key, 0.0)  # (B, H, T, T)
    return probs @ v  # (B, H, T, D)
