"""Policy-value networks: `net(x, legal_mask) -> (logits, value)`.

Three families share one interface (`PolicyValueNet`):

- `ConvNet`: a residual tower over observation planes (the AlexNet -> ResNet line), with
  BatchNorm that folds into the convolutions for inference (`fuse_for_inference`);
- `Transformer`: board cells as tokens with learned positions and a prepended value token,
  pre-norm blocks whose attention goes through `kernels.attention`;
- `MLP`: a small fully connected net (the PPO preset's policy).

Convnet and MLP can also take `ThreatPlanes` (``threat_length``): two input planes computed
inside the net, the empty cells where either side would complete a line, and, for a game with
gravity (``drop_planes``), four more on the cells a stone can drop into now.

Inputs: planes are float32 (N, 2, rows, cols) (plane 0 = the mover's stones, plane 1 = the
opponent's); tokens are int64 (N, rows * cols), row-major, 0 = empty, 1 = mover, 2 = opponent.
Outputs: logits (N, A) with illegal actions at -inf (set once, by `mask_illegal` in
`PolicyValueNet.forward`), and a value (N,) in [-1, 1] from the mover's point of view.

`inference_model(net, example_x)` returns the fastest evaluation callable this machine offers
(BatchNorm folded, channels-last, traced and frozen by TorchScript, run under inference mode).
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import kernels

InputKind = Literal["planes", "tokens"]


# --------------------------------------------------------------------------------------------
# Configs
# --------------------------------------------------------------------------------------------


def _require_positive(name: str, value: int) -> None:
    if not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_threat_length(config: ConvNetConfig | MLPConfig) -> None:
    k = config.threat_length
    if k == 0:
        return
    longest = max(config.rows, config.cols)
    if not isinstance(k, int) or isinstance(k, bool) or not 2 <= k <= longest:
        raise ValueError(
            f"threat_length must be 0 (off) or an integer from 2 to {longest} (the board's "
            f"longer side), got {k!r}"
        )
    if config.in_planes != 2:
        raise ValueError(
            f"threat_length needs in_planes 2 (the mover's and the opponent's stones), got "
            f"in_planes {config.in_planes}"
        )


def _check_drop_planes(config: ConvNetConfig | MLPConfig) -> None:
    if type(config.drop_planes) is not bool:
        raise ValueError(f"drop_planes must be true or false, got {config.drop_planes!r}")
    if config.drop_planes and not config.threat_length:
        raise ValueError(
            "drop_planes needs threat_length > 0 (they are read off the threat planes), got "
            "threat_length 0"
        )


@dataclass(frozen=True)
class ConvNetConfig:
    """A residual tower over observation planes (AlphaZero-style heads)."""

    rows: int = 6
    """Board rows (6 for Connect Four, 3 for Tic-Tac-Toe)."""
    cols: int = 7
    """Board columns (7 for Connect Four, 3 for Tic-Tac-Toe)."""
    num_actions: int = 7
    """Size of the action space A (columns for Connect Four, cells for Tic-Tac-Toe)."""
    in_planes: int = 2
    """Observation planes per position (mover's stones, opponent's stones)."""
    channels: int = 64
    """Channels of the stem and of every residual block."""
    blocks: int = 4
    """Residual blocks (each two 3x3 convolutions); 0 leaves the stem alone."""
    policy_channels: int = 2
    """Channels of the policy head's 1x1 convolution, before the linear layer to A."""
    value_channels: int = 1
    """Channels of the value head's 1x1 convolution, before its hidden layer."""
    value_hidden: int = 64
    """Width of the value head's hidden layer."""
    threat_length: int = 0
    """k > 0: two more input planes computed inside the net (`ThreatPlanes`): the empty cells
    where the mover's, and the opponent's, stone would complete k in a row. 0: off."""
    drop_planes: bool = False
    """With threat_length: four more planes for a game with gravity (Connect Four), on the cells
    a stone can drop into now: where it completes the mover's line (a win), where it completes
    the opponent's (a forced block), under an opponent's threat (a gift: the reply there wins)
    and under the mover's own threat (which the opponent could then block). See
    `ThreatPlanes`."""

    def __post_init__(self) -> None:
        for name in ("rows", "cols", "num_actions", "in_planes", "channels"):
            _require_positive(name, getattr(self, name))
        for name in ("policy_channels", "value_channels", "value_hidden"):
            _require_positive(name, getattr(self, name))
        if not isinstance(self.blocks, int) or self.blocks < 0:
            raise ValueError(f"blocks must be an integer >= 0, got {self.blocks!r}")
        _check_threat_length(self)
        _check_drop_planes(self)


@dataclass(frozen=True)
class TransformerConfig:
    """A pre-norm transformer over board cells, with a value token."""

    rows: int = 6
    """Board rows (6 for Connect Four, 3 for Tic-Tac-Toe)."""
    cols: int = 7
    """Board columns (7 for Connect Four, 3 for Tic-Tac-Toe)."""
    num_actions: int = 7
    """Size of the action space A (columns for Connect Four, cells for Tic-Tac-Toe)."""
    vocab_size: int = 3
    """Token vocabulary: 0 = empty, 1 = the mover's stone, 2 = the opponent's stone."""
    width: int = 128
    """Model width (embedding size) d_model."""
    heads: int = 4
    """Attention heads; must divide `width` (head dim = width // heads)."""
    depth: int = 4
    """Number of pre-norm blocks (attention + MLP)."""
    mlp_ratio: int = 4
    """Hidden width of each block's MLP, as a multiple of `width`."""

    def __post_init__(self) -> None:
        for name in ("rows", "cols", "num_actions", "vocab_size", "width", "heads", "depth"):
            _require_positive(name, getattr(self, name))
        _require_positive("mlp_ratio", self.mlp_ratio)
        if self.width % self.heads != 0:
            divisors = [h for h in range(1, self.width + 1) if self.width % h == 0]
            raise ValueError(
                f"heads {self.heads} must divide width {self.width}; "
                f"allowed heads for this width: {divisors}"
            )


@dataclass(frozen=True)
class MLPConfig:
    """A small fully connected net over flattened planes (the PPO preset's policy)."""

    rows: int = 6
    """Board rows (6 for Connect Four, 3 for Tic-Tac-Toe)."""
    cols: int = 7
    """Board columns (7 for Connect Four, 3 for Tic-Tac-Toe)."""
    num_actions: int = 7
    """Size of the action space A."""
    in_planes: int = 2
    """Observation planes per position."""
    hidden: tuple[int, ...] = (128, 128)
    """Widths of the hidden layers (ReLU after each)."""
    threat_length: int = 0
    """k > 0: two more input planes computed inside the net (`ThreatPlanes`): the empty cells
    where the mover's, and the opponent's, stone would complete k in a row. 0: off."""
    drop_planes: bool = False
    """With threat_length: four more planes for a game with gravity (Connect Four), on the cells
    a stone can drop into now: where it completes the mover's line (a win), where it completes
    the opponent's (a forced block), under an opponent's threat (a gift: the reply there wins)
    and under the mover's own threat (which the opponent could then block). See
    `ThreatPlanes`."""
    line_filters: int = 0
    """f > 0: a first layer of f filters of filter_size x filter_size cells, each slid over
    every window that fits on the board (no padding) and followed by a ReLU, whose outputs
    feed the hidden layers: pattern detectors shared by the whole board, as a convnet's, at an
    MLP's cost. 0: the planes go straight into the hidden layers."""
    filter_size: int = 4
    """side of the line filters' square window (Connect Four's winning length: every line of 4
    lies in some 4 x 4 window); 1..min(rows, cols) when line_filters is on"""

    def __post_init__(self) -> None:
        for name in ("rows", "cols", "num_actions", "in_planes"):
            _require_positive(name, getattr(self, name))
        f = self.line_filters
        if not isinstance(f, int) or isinstance(f, bool) or f < 0:
            raise ValueError(
                f"line_filters must be an integer >= 0 (0: off), got {self.line_filters!r}"
            )
        side = min(self.rows, self.cols)
        if self.line_filters and not (
            type(self.filter_size) is int and 1 <= self.filter_size <= side
        ):
            raise ValueError(
                f"filter_size must be an integer from 1 to {side} (the board's shorter side), "
                f"got {self.filter_size!r}"
            )
        if len(self.hidden) == 0:
            raise ValueError("hidden must name at least one layer width, got ()")
        for i, width in enumerate(self.hidden):
            _require_positive(f"hidden[{i}]", width)
        _check_threat_length(self)
        _check_drop_planes(self)


NetworkConfig = ConvNetConfig | TransformerConfig | MLPConfig


# --------------------------------------------------------------------------------------------
# Shared pieces
# --------------------------------------------------------------------------------------------


def mask_illegal(logits: torch.Tensor, legal_mask: torch.Tensor) -> torch.Tensor:
    """Set the logits of illegal actions to -inf: the one place the networks mask.

    A softmax over the result is then exactly zero on illegal actions. A row with no legal
    action (a finished game) becomes all -inf, and its softmax NaN: do not evaluate those.
    """
    return logits.masked_fill(~legal_mask, float("-inf"))  # (N, A)


def line_windows(rows: int, cols: int, length: int) -> np.ndarray:
    """Every straight line of ``length`` cells on a rows x cols board (rows, columns and both
    diagonals), as row-major cell indices: int64 (L, length)."""
    grid = np.arange(rows * cols).reshape(rows, cols)
    windows = []
    for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
        for r in range(rows):
            for c in range(cols):
                end_r, end_c = r + dr * (length - 1), c + dc * (length - 1)
                if 0 <= end_r < rows and 0 <= end_c < cols:
                    windows.append([grid[r + dr * i, c + dc * i] for i in range(length)])
    return np.asarray(windows, dtype=np.int64).reshape(-1, length)


class ThreatPlanes(nn.Module):
    """(N, 2, rows, cols) planes -> (N, 4, rows, cols): the two stone planes, then the empty
    cells where the mover's stone (plane 2) and the opponent's (plane 3) would complete
    ``length`` in a row — the "threats" of Connect Four strategy, at any height, so the net
    sees wins in one, forced blocks and the cells it must not give away under an opponent's
    threat. A hand-made input feature (as AlphaGo's first networks had theirs), computed from
    the board by the net itself, so every caller (RLlib, search, arena) and every board
    symmetry gets the same planes; it has no parameters.

    ``drop``: for a game with gravity (row 0 the top), four more planes (N, 8, rows, cols), all
    on the cells a stone can drop into now (empty, on the bottom row or on a stone): plane 4 a
    mover's threat there (a win in one), plane 5 an opponent's (a forced block), plane 6 an
    opponent's threat on the cell above (a gift: the opponent's reply there wins), plane 7 the
    mover's own threat on the cell above (the opponent may then block it)."""

    def __init__(self, rows: int, cols: int, length: int, *, drop: bool = False) -> None:
        super().__init__()
        self.length, self.drop = length, drop
        self.out_planes = 8 if drop else 4
        windows = torch.as_tensor(line_windows(rows, cols, length))  # (L, k)
        incidence = torch.zeros(len(windows), rows * cols)  # (L, cells): 1 where a line runs
        incidence.scatter_(1, windows, 1.0)
        self.register_buffer("incidence", incidence, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        flat = x.flatten(2)  # (N, 2, cells)
        counts = flat @ self.incidence.T.to(flat.dtype)  # (N, 2, L) each side's stones per line
        own, other = counts[:, 0], counts[:, 1]
        k = self.length
        # a line one stone short for a side and free of the other side's: its empty cell wins
        open_lines = torch.stack([(own == k - 1) & (other == 0), (other == k - 1) & (own == 0)], 1)
        hits = open_lines.to(self.incidence.dtype) @ self.incidence  # (N, 2, cells)
        empty = 1.0 - flat.sum(1, keepdim=True)  # (N, 1, cells)
        threats = (hits > 0).to(x.dtype) * empty  # (N, 2, cells)
        planes = torch.cat([flat, threats], 1).reshape(n, 4, *x.shape[2:])
        if not self.drop:
            return planes
        empty_grid = empty.reshape(n, 1, *x.shape[2:])  # (N, 1, rows, cols)
        # supported: the bottom row, or a stone on the cell below
        below = F.pad(1.0 - empty_grid[:, :, 1:], (0, 0, 0, 1), value=1.0)  # (N, 1, rows, cols)
        playable = empty_grid * below  # (N, 1, rows, cols)
        threat_grid = planes[:, 2:4]  # (N, 2, rows, cols): mover's, opponent's
        above = F.pad(threat_grid[:, :, :-1], (0, 0, 1, 0))  # (N, 2, rows, cols): the cell above
        drops = torch.cat([threat_grid, above.flip(1)], 1) * playable  # (N, 4, rows, cols)
        return torch.cat([planes, drops], 1)  # (N, 8, rows, cols)


def _threat_planes(config: ConvNetConfig | MLPConfig) -> ThreatPlanes | None:
    """The `ThreatPlanes` a planes net's config asks for (None: the stone planes only)."""
    if not config.threat_length:
        return None
    return ThreatPlanes(config.rows, config.cols, config.threat_length, drop=config.drop_planes)


class PolicyValueNet(nn.Module):
    """Base of every network: input checks, then `_logits_value`, then the mask, once."""

    input_kind: InputKind
    """What `forward` takes: "planes" (float (N, C, rows, cols)) or "tokens" (int (N, T))."""

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config

    def num_parameters(self) -> int:
        """The number of trainable scalars."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def expected_input_shape(self) -> tuple[int, ...]:
        """The shape of one position's input, without the batch dimension."""
        c = self.config
        if self.input_kind == "tokens":
            return (c.rows * c.cols,)
        return (c.in_planes, c.rows, c.cols)  # type: ignore[union-attr]

    def check_inputs(self, x: torch.Tensor, legal_mask: torch.Tensor) -> None:
        """Raise a ValueError naming the shapes when `x` or `legal_mask` do not fit this net."""
        per_position = self.expected_input_shape()
        want = f"(N, {', '.join(str(d) for d in per_position)})"
        if x.dim() != 1 + len(per_position) or tuple(x.shape[1:]) != per_position:
            raise ValueError(
                f"{type(self).__name__} takes {self.input_kind} of shape {want}, "
                f"got {tuple(x.shape)}"
            )
        if self.input_kind == "tokens" and x.dtype.is_floating_point:
            raise ValueError(f"tokens must be an integer tensor, got dtype {x.dtype}")
        if self.input_kind == "planes" and not x.dtype.is_floating_point:
            raise ValueError(f"planes must be a floating-point tensor, got dtype {x.dtype}")
        mask_shape = (x.shape[0], self.config.num_actions)
        if tuple(legal_mask.shape) != mask_shape or legal_mask.dtype != torch.bool:
            raise ValueError(
                f"legal_mask must be bool of shape {mask_shape} for input {tuple(x.shape)}, "
                f"got {legal_mask.dtype} {tuple(legal_mask.shape)}"
            )

    def _logits_value(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw logits (N, A) and value (N,) in [-1, 1]; each subclass writes this."""
        raise NotImplementedError

    def forward_unchecked(
        self, x: torch.Tensor, legal_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`forward` without the input checks: what tracing and compiling see."""
        logits, value = self._logits_value(x)
        return mask_illegal(logits, legal_mask), value

    def forward(
        self, x: torch.Tensor, legal_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Masked policy logits (N, A) and value (N,) for a batch of positions."""
        self.check_inputs(x, legal_mask)
        return self.forward_unchecked(x, legal_mask)


# --------------------------------------------------------------------------------------------
# ConvNet
# --------------------------------------------------------------------------------------------


class ConvBN(nn.Module):
    """Convolution followed by BatchNorm; `fuse()` folds the BN into the convolution."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        # No conv bias: the BN's shift plays that role (and absorbs it when folded).
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False
        )
        self.bn: nn.Module = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))

    @torch.no_grad()
    def fuse(self) -> None:
        """Fold the BN (its running statistics, i.e. eval mode) into the conv, in place.

        BN(conv(x)) = gamma * (W x + b - mean) / sqrt(var + eps) + beta, which is a conv with
        weight W * s and bias (b - mean) * s + beta, where s = gamma / sqrt(var + eps).
        """
        bn = self.bn
        if not isinstance(bn, nn.BatchNorm2d):
            return  # already fused
        assert bn.running_mean is not None and bn.running_var is not None
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (C_out,)
        conv = self.conv
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        fused = nn.Conv2d(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,  # type: ignore[arg-type]
            padding=conv.padding,  # type: ignore[arg-type]
            bias=True,
        ).to(conv.weight.device, conv.weight.dtype)
        fused.weight.copy_(conv.weight * scale[:, None, None, None])  # (C_out, C_in, k, k)
        fused.bias.copy_((bias - bn.running_mean) * scale + bn.bias)  # (C_out,)
        self.conv = fused
        self.bn = nn.Identity()


class ResidualBlock(nn.Module):
    """conv-BN-ReLU-conv-BN, plus the skip, then ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.a = ConvBN(channels, channels, 3)
        self.b = ConvBN(channels, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.a(x))  # (N, C, H, W)
        return F.relu(x + self.b(h))  # (N, C, H, W)


class ConvNet(PolicyValueNet):
    """Residual tower over planes; AlphaZero-style policy and value heads."""

    input_kind: InputKind = "planes"

    def __init__(self, config: ConvNetConfig) -> None:
        super().__init__(config)
        c = config
        cells = c.rows * c.cols
        self.threats = _threat_planes(c)
        planes = self.threats.out_planes if self.threats is not None else c.in_planes
        self.stem = ConvBN(planes, c.channels, 3)
        self.tower = nn.Sequential(*[ResidualBlock(c.channels) for _ in range(c.blocks)])
        self.policy_conv = ConvBN(c.channels, c.policy_channels, 1)
        # A generic linear from the head's features to A: works whether actions are columns
        # (Connect Four) or cells (Tic-Tac-Toe) without a per-game head.
        self.policy_fc = nn.Linear(c.policy_channels * cells, c.num_actions)
        self.value_conv = ConvBN(c.channels, c.value_channels, 1)
        self.value_fc1 = nn.Linear(c.value_channels * cells, c.value_hidden)
        self.value_fc2 = nn.Linear(c.value_hidden, 1)

    def _logits_value(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.threats is not None:
            x = self.threats(x)  # (N, 4 or 8, H, W)
        h = self.tower(F.relu(self.stem(x)))  # (N, C, H, W)
        # flatten(1) of a channels-last tensor still yields the (C, H, W) order, so the
        # linear layers see the same features in either memory format.
        p = F.relu(self.policy_conv(h)).flatten(1)  # (N, P*H*W)
        logits = self.policy_fc(p)  # (N, A)
        v = F.relu(self.value_conv(h)).flatten(1)  # (N, V*H*W)
        v = F.relu(self.value_fc1(v))  # (N, hidden)
        value = torch.tanh(self.value_fc2(v)).squeeze(1)  # (N,)
        return logits, value

    def fuse_for_inference(self) -> ConvNet:
        """An eval-mode copy with every BatchNorm folded into its convolution.

        Same outputs as `self.eval()` up to float rounding; this copy cannot be trained on
        (its BN layers are gone), and `self` is left untouched.
        """
        fused = copy.deepcopy(self).eval()
        for module in fused.modules():
            if isinstance(module, ConvBN):
                module.fuse()
        return fused


# --------------------------------------------------------------------------------------------
# Transformer
# --------------------------------------------------------------------------------------------


class SelfAttention(nn.Module):
    """Multi-head self-attention whose core is `kernels.attention` (fused on CUDA)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, W = x.shape
        H = self.heads
        qkv = self.qkv(x).view(B, T, 3, H, W // H)  # (B, T, 3, H, D)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, T, D)
        # Looked up on the module at call time, so a spy on `kernels.attention` sees the call.
        y = kernels.attention(q, k, v)  # (B, H, T, D)
        y = y.transpose(1, 2).reshape(B, T, W)  # (B, T, W)
        return self.proj(y)


class TransformerBlock(nn.Module):
    """Pre-norm block: x + attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, width: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(width)
        self.attn = SelfAttention(width, heads)
        self.ln2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, mlp_ratio * width),
            nn.GELU(),
            nn.Linear(mlp_ratio * width, width),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))  # (B, T, W)
        return x + self.mlp(self.ln2(x))  # (B, T, W)


class Transformer(PolicyValueNet):
    """Cells as tokens with learned positions, a value token first, pre-norm blocks."""

    input_kind: InputKind = "tokens"

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__(config)
        c = config
        cells = c.rows * c.cols
        self.token_embedding = nn.Embedding(c.vocab_size, c.width)
        self.position_embedding = nn.Parameter(torch.zeros(cells, c.width))
        self.value_token = nn.Parameter(torch.zeros(1, 1, c.width))
        nn.init.normal_(self.position_embedding, std=0.02)
        nn.init.normal_(self.value_token, std=0.02)
        self.blocks = nn.ModuleList(
            TransformerBlock(c.width, c.heads, c.mlp_ratio) for _ in range(c.depth)
        )
        self.final_norm = nn.LayerNorm(c.width)
        # Policy: a linear map from all final cell tokens (flattened) to A. Generic over
        # action spaces (columns or cells) and it lets each action read every cell it needs.
        self.policy_head = nn.Linear(cells * c.width, c.num_actions)
        self.value_head = nn.Sequential(
            nn.Linear(c.width, c.width), nn.GELU(), nn.Linear(c.width, 1)
        )

    def _logits_value(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        N = x.shape[0]
        h = self.token_embedding(x) + self.position_embedding  # (N, T, W)
        h = torch.cat([self.value_token.expand(N, -1, -1), h], dim=1)  # (N, 1+T, W)
        for block in self.blocks:
            h = block(h)  # (N, 1+T, W)
        h = self.final_norm(h)  # (N, 1+T, W)
        logits = self.policy_head(h[:, 1:].flatten(1))  # (N, A)
        value = torch.tanh(self.value_head(h[:, 0])).squeeze(1)  # (N,)
        return logits, value


# --------------------------------------------------------------------------------------------
# MLP
# --------------------------------------------------------------------------------------------


class MLP(PolicyValueNet):
    """Flattened planes (or, with ``line_filters``, the outputs of one unpadded convolution)
    -> ReLU hidden layers -> policy and value heads."""

    input_kind: InputKind = "planes"

    def __init__(self, config: MLPConfig) -> None:
        super().__init__(config)
        c = config
        layers: list[nn.Module] = []
        self.threats = _threat_planes(c)
        planes = self.threats.out_planes if self.threats is not None else c.in_planes
        width = planes * c.rows * c.cols
        self.filters = None
        if c.line_filters:
            k = c.filter_size
            self.filters = nn.Sequential(nn.Conv2d(planes, c.line_filters, k), nn.ReLU())
            width = c.line_filters * (c.rows - k + 1) * (c.cols - k + 1)
        for hidden in c.hidden:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.policy_head = nn.Linear(width, c.num_actions)
        self.value_head = nn.Linear(width, 1)

    def _logits_value(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.threats is not None:
            x = self.threats(x)  # (N, 4 or 8, rows, cols)
        if self.filters is not None:
            x = self.filters(x)  # (N, line_filters, rows - k + 1, cols - k + 1)
        h = self.body(x.flatten(1))  # (N, hidden)
        return self.policy_head(h), torch.tanh(self.value_head(h)).squeeze(1)  # (N, A), (N,)


# --------------------------------------------------------------------------------------------
# Factory
# --------------------------------------------------------------------------------------------


NETWORK_CONFIGS: dict[str, type] = {
    "convnet": ConvNetConfig,
    "transformer": TransformerConfig,
    "mlp": MLPConfig,
}


class SymmetryIndex:
    """A game's board symmetries as index tensors on one device, built once for
    :func:`symmetric_forward` (making them from numpy arrays on every call cost more than the
    arithmetic for the small batches of self-play)."""

    def __init__(
        self, symmetries: Sequence[tuple[np.ndarray, np.ndarray]], device: torch.device | str
    ) -> None:
        self.pairs = [(np.asarray(c), np.asarray(a)) for c, a in symmetries]
        self.device = torch.device(device)
        self.cells = [torch.as_tensor(c, device=device) for c, _ in self.pairs]
        self.actions = [torch.as_tensor(a, device=device) for _, a in self.pairs]
        # each transform's logits back to the original action order: the inverse permutation
        self.back = [torch.as_tensor(np.argsort(a), device=device) for _, a in self.pairs]

    def __len__(self) -> int:
        return len(self.cells)


def symmetric_forward(
    forward: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    x: torch.Tensor,
    legal_mask: torch.Tensor,
    symmetries: Sequence[tuple[np.ndarray, np.ndarray]] | SymmetryIndex,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``forward`` averaged over board symmetries: exactly symmetric logits and value.

    ``symmetries``: a game's ``symmetries()``, ``(cell_perm, action_perm)`` each, or a
    :class:`SymmetryIndex` of them on ``x``'s device; ``x`` planes (N, C, rows, cols) or tokens
    (N, cells); ``forward(x, legal_mask) -> (logits, value)`` with illegal logits -inf. All
    transformed boards go through ``forward`` in one batch; each one's logits are mapped back
    by the inverse action permutation (illegal moves stay -inf: every transform agrees on
    them), then logits and values are averaged.
    """
    index = symmetries
    if not isinstance(index, SymmetryIndex):
        index = SymmetryIndex(index, x.device)
    elif index.device != x.device:
        index = SymmetryIndex(index.pairs, x.device)
    k, n = len(index), x.shape[0]
    flat = x.flatten(-2) if x.dim() == 4 else x  # (N, C, cells) or (N, cells)
    inputs = torch.cat([flat[..., c] for c in index.cells]).reshape(k * n, *x.shape[1:])
    masks = torch.cat([legal_mask[:, a] for a in index.actions])
    logits, value = forward(inputs, masks)  # (kN, A), (kN,)
    logits = torch.stack([logits[i * n : (i + 1) * n, index.back[i]] for i in range(k)]).mean(0)
    return logits, value.reshape(k, n).mean(0)


def network_config_for_game(
    game: str,
    net: str = "convnet",
    *,
    threats: bool = False,
    drop_planes: bool = False,
    **sizes: object,
) -> NetworkConfig:
    """A network config of kind ``net`` shaped for ``game`` (rows, columns, actions from its
    core); ``sizes``: channels/blocks, width/heads/depth, or hidden (a tuple of widths) and
    line_filters (their window: the game's winning length unless filter_size is given);
    ``threats``: add `ThreatPlanes` for the game's winning line length (convnet, mlp);
    ``drop_planes`` (with threats): their four planes of the cells a stone drops into, for a
    game with gravity."""
    import envs

    if net not in NETWORK_CONFIGS:
        raise ValueError(f"net must be one of {', '.join(NETWORK_CONFIGS)}, got {net!r}")
    core = envs.make(game, 1)
    shape = {"rows": core.rows, "cols": core.cols, "num_actions": core.num_actions}
    if threats:
        if "threat_length" not in {f.name for f in fields(NETWORK_CONFIGS[net])}:
            raise ValueError(f"threat planes work with the planes nets (convnet, mlp), got {net}")
        shape["threat_length"] = core.win_length
    if drop_planes:
        if not threats:
            raise ValueError("drop_planes needs threats (they are read off the threat planes)")
        if not core.gravity:
            raise ValueError(
                f"drop_planes works with games with gravity (connect_four), got game {game}"
            )
        shape["drop_planes"] = True
    if sizes.get("line_filters") and "filter_size" not in sizes:
        shape["filter_size"] = min(core.win_length, core.rows, core.cols)
    return NETWORK_CONFIGS[net](**shape, **sizes)


def build_network(config: NetworkConfig) -> PolicyValueNet:
    """A freshly initialised network for `config` (a ConvNet/Transformer/MLP config)."""
    if isinstance(config, ConvNetConfig):
        return ConvNet(config)
    if isinstance(config, TransformerConfig):
        return Transformer(config)
    if isinstance(config, MLPConfig):
        return MLP(config)
    raise ValueError(
        f"unknown network config {type(config).__name__}; "
        "expected ConvNetConfig, TransformerConfig or MLPConfig"
    )


# --------------------------------------------------------------------------------------------
# Inference fast path
# --------------------------------------------------------------------------------------------

InferenceBackend = Literal["auto", "eager", "onednn", "jit", "compile"]
INFERENCE_BACKENDS: tuple[str, ...] = ("auto", "eager", "onednn", "jit", "compile")
CHUNK_CANDIDATES: tuple[int, ...] = (128, 256)
"""Batch chunks "auto" tries: a few hundred positions keep a layer's activations in cache
(measured here: 1.3-2.8x faster than one 1,024-position call for both nets)."""


class _Unchecked(nn.Module):
    """Wraps a net so tracing/compiling sees `forward_unchecked` (no Python shape checks)."""

    def __init__(self, net: PolicyValueNet) -> None:
        super().__init__()
        self.net = net

    def forward(
        self, x: torch.Tensor, legal_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net.forward_unchecked(x, legal_mask)


class _OneDNNLinear(nn.Module):
    """An inference-only nn.Linear on oneDNN with the weight pre-packed once.

    Why: torch's CPU linear goes through MKL, which on non-Intel CPUs (this machine: AMD) runs
    at less than half the speed oneDNN reaches on the same products; pre-packing also saves a
    weight reorder per call, and the MLP's GELU fuses into its first product.
    """

    def __init__(self, linear: nn.Linear, activation: str = "none") -> None:
        super().__init__()
        weight = linear.weight.detach()  # (out, in)
        self.packed_weight = torch.ops.mkldnn._reorder_linear_weight(weight)  # opaque tensor
        self.bias = None if linear.bias is None else linear.bias.detach()  # (out,)
        self.activation = activation
        # Same argument conventions as torch's inductor uses for this op.
        self.algorithm = "none" if activation == "gelu" else ""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(
            x, self.packed_weight, self.bias, self.activation, [], self.algorithm
        )  # (..., out)


def _to_onednn_linears(module: nn.Module) -> None:
    """Swap every nn.Linear under `module` for `_OneDNNLinear`, fusing a following exact GELU."""
    children = list(module.named_children())
    for i, (name, child) in enumerate(children):
        if isinstance(child, nn.Linear):
            following = children[i + 1][1] if i + 1 < len(children) else None
            if (
                isinstance(module, nn.Sequential)
                and isinstance(following, nn.GELU)
                and following.approximate == "none"
            ):
                setattr(module, name, _OneDNNLinear(child, "gelu"))
                setattr(module, children[i + 1][0], nn.Identity())
            else:
                setattr(module, name, _OneDNNLinear(child))
        else:  # (a GELU already fused above is a leaf: recursing into it does nothing)
            _to_onednn_linears(child)


class InferenceModel:
    """A fast, frozen evaluation callable: `model(x, legal_mask) -> (logits, value)`.

    It runs under `torch.inference_mode`, optionally in batch chunks, and snapshots the weights
    when built: rebuild it after the net's weights change.
    """

    def __init__(
        self,
        fn: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
        net: PolicyValueNet,
        backend: str,
        channels_last: bool,
        chunk: int | None = None,
    ) -> None:
        self._fn = fn
        self.net = net
        """The eval-mode (for a convnet: BN-folded) copy the callable was built from."""
        self.backend = backend
        """Which path was chosen: "eager", "onednn", "jit" or "compile"."""
        self.channels_last = channels_last
        """Whether planes are converted to channels-last memory before the call."""
        self.chunk = chunk
        """Largest batch per underlying call (None: the whole batch at once)."""

    @property
    def input_kind(self) -> InputKind:
        return self.net.input_kind

    def with_chunk(self, chunk: int | None) -> InferenceModel:
        """The same compiled path, run in batch chunks of at most `chunk` positions."""
        if chunk is not None and chunk <= 0:
            raise ValueError(f"chunk must be a positive integer or None, got {chunk}")
        return InferenceModel(self._fn, self.net, self.backend, self.channels_last, chunk)

    def __call__(
        self, x: torch.Tensor, legal_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self.net.check_inputs(x, legal_mask)
        with torch.inference_mode():
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            if self.chunk is None or x.shape[0] <= self.chunk:
                return self._fn(x, legal_mask)
            parts = [
                self._fn(x[i : i + self.chunk], legal_mask[i : i + self.chunk])
                for i in range(0, x.shape[0], self.chunk)
            ]
            logits = torch.cat([p[0] for p in parts])  # (N, A)
            value = torch.cat([p[1] for p in parts])  # (N,)
            return logits, value


def _example_mask(net: PolicyValueNet, x: torch.Tensor) -> torch.Tensor:
    return torch.ones(x.shape[0], net.config.num_actions, dtype=torch.bool, device=x.device)


def _build_path(net: PolicyValueNet, example_x: torch.Tensor, backend: str) -> InferenceModel:
    """Build one inference path; may raise if tracing/compiling fails on this machine."""
    device = example_x.device
    inner = net.fuse_for_inference() if isinstance(net, ConvNet) else copy.deepcopy(net).eval()
    inner = inner.to(device)
    for p in inner.parameters():
        p.requires_grad_(False)
    # Channels-last lets oneDNN (CPU) and cuDNN (GPU) run the 3x3 convs without reorders.
    channels_last = isinstance(net, ConvNet)
    if channels_last:
        inner = inner.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        example_x = example_x.contiguous(memory_format=torch.channels_last)
    example_mask = _example_mask(net, example_x)
    wrapper = _Unchecked(inner).eval()
    fn: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    if backend == "eager":
        fn = wrapper
    elif backend == "onednn":
        if device.type != "cpu" or not torch.backends.mkldnn.is_available():
            raise ValueError(f"the onednn path needs a CPU with oneDNN, got device {device}")
        _to_onednn_linears(inner)
        fn = wrapper
    elif backend == "jit":
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer chatter about shapes read as ints
            traced = torch.jit.trace(wrapper, (example_x, example_mask), check_trace=False)
            fn = torch.jit.freeze(traced.eval())
    elif backend == "compile":
        fn = torch.compile(wrapper, dynamic=False)  # type: ignore[assignment]
    else:
        raise ValueError(f"unknown inference backend {backend!r}; choose from {INFERENCE_BACKENDS}")
    model = InferenceModel(fn, inner, backend, channels_last)
    model(example_x, example_mask)  # warm-up: first calls trace, compile or optimize
    return model


def _fastest(models: list[InferenceModel], x: torch.Tensor, mask: torch.Tensor) -> InferenceModel:
    """The model with the best time per call on (x, mask), timed round-robin.

    Round-robin (every candidate once per round, best of 3 rounds) so that a burst of load from
    another process slows all candidates alike instead of disqualifying whichever ran then.
    """
    best = [float("inf")] * len(models)
    for model in models:
        model(x, mask)  # warm-up at this batch and chunk size
    for _ in range(3):
        for i, model in enumerate(models):
            start = time.perf_counter()
            model(x, mask)
            if x.is_cuda:
                torch.cuda.synchronize(x.device)
            best[i] = min(best[i], time.perf_counter() - start)
    return models[best.index(min(best))]


def inference_model(
    net: PolicyValueNet,
    example_x: torch.Tensor,
    *,
    backend: InferenceBackend = "auto",
    chunk: int | None = None,
) -> InferenceModel:
    """The fastest evaluation callable for `net` on `example_x`'s device and batch size.

    Paths: "eager" folds BN and uses channels-last; "onednn" (CPU) also runs every linear
    layer on oneDNN with pre-packed weights; "jit" traces and freezes the graph with
    TorchScript (constant weights, fused oneDNN convolutions); "compile" uses `torch.compile`.
    "auto" builds eager, onednn and jit on the CPU (eager, jit and compile on CUDA), times each
    on `example_x` whole and in chunks of `CHUNK_CANDIDATES`, and keeps the fastest; a path
    that fails to build is skipped with a warning (eager always remains). That costs a few
    dozen calls: pass `backend` (and `chunk`) to skip the search. The weights are a snapshot:
    build a new one after training steps.
    """
    if backend not in INFERENCE_BACKENDS:
        raise ValueError(f"unknown inference backend {backend!r}; choose from {INFERENCE_BACKENDS}")
    net.check_inputs(example_x, _example_mask(net, example_x))
    if backend != "auto":
        return _build_path(net, example_x, backend).with_chunk(chunk)
    if example_x.is_cuda:
        paths = ["eager", "jit", "compile"]
    else:
        paths = ["eager", "jit"] + (["onednn"] if torch.backends.mkldnn.is_available() else [])
    batch = example_x.shape[0]
    chunks: list[int | None] = (
        [chunk] if chunk is not None else [None, *(c for c in CHUNK_CANDIDATES if c < batch)]
    )
    candidates: list[InferenceModel] = []
    for name in paths:
        try:
            built = _build_path(net, example_x, name)
        except Exception as error:  # a broken optional path must not stop evaluation
            warnings.warn(f"inference path {name!r} failed, skipped: {error}", stacklevel=2)
            continue
        candidates += [built.with_chunk(size) for size in chunks]
    # (eager cannot fail where the net itself runs, so there is always a candidate)
    return _fastest(candidates, example_x, _example_mask(net, example_x))
