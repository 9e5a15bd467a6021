"""Fused attention for short board-game sequences: Triton kernel with an SDPA fallback."""

from .op import BACKENDS, TRITON_DTYPES, TRITON_HEAD_DIMS, attention, sdpa_attention
from .ref import attention_ref

__all__ = [
    "BACKENDS",
    "TRITON_DTYPES",
    "TRITON_HEAD_DIMS",
    "attention",
    "attention_ref",
    "sdpa_attention",
]
