"""Custom compute kernels (torch, plus triton when importable). Imports nothing else of ours.

``kernels.attention`` is the attention *function* (it shadows the subpackage's name as an
attribute); reach the subpackage's modules with ``from kernels.attention import op, ref``.
"""

from .attention import attention

__all__ = ["attention"]
