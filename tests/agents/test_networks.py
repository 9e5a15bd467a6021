"""Tests of the policy-value networks in `agents.networks` (CPU, a few seconds in all)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import kernels
from agents.networks import (
    MLP,
    ConvNet,
    ConvNetConfig,
    MLPConfig,
    PolicyValueNet,
    SymmetryIndex,
    Transformer,
    TransformerConfig,
    build_network,
    inference_model,
    mask_illegal,
    network_config_for_game,
    symmetric_forward,
)

# (rows, cols, num_actions): Connect Four (actions = columns) and Tic-Tac-Toe (actions = cells).
BOARDS = {"connect_four": (6, 7, 7), "tictactoe": (3, 3, 9)}


@pytest.fixture(autouse=True)
def one_thread():
    """Run these tiny nets on one thread: with two, OpenMP barriers stall for tens of ms
    whenever another process holds a core, which made the tests 10x slower, not faster."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small_configs(rows: int, cols: int, num_actions: int) -> dict[str, object]:
    """Small versions of each family, so the tests stay fast."""
    board = {"rows": rows, "cols": cols, "num_actions": num_actions}
    return {
        "mlp": MLPConfig(**board, hidden=(32, 32)),
        "convnet": ConvNetConfig(**board, channels=16, blocks=2),
        "transformer": TransformerConfig(**board, width=32, heads=2, depth=2),
    }


def random_inputs(
    net: PolicyValueNet, n: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random positions for `net` (planes or tokens) and a legal mask with >= 1 legal action."""
    c = net.config
    cells = torch.randint(0, 3, (n, c.rows * c.cols), generator=generator)  # (N, T) 0/1/2
    if net.input_kind == "tokens":
        x = cells
    else:
        planes = torch.stack([cells == 1, cells == 2], dim=1).float()  # (N, 2, T)
        x = planes.view(n, 2, c.rows, c.cols)  # (N, 2, rows, cols)
    legal = torch.rand(n, c.num_actions, generator=generator) < 0.6  # (N, A)
    legal[torch.arange(n), torch.randint(0, c.num_actions, (n,), generator=generator)] = True
    return x, legal


@pytest.mark.parametrize("board", sorted(BOARDS))
@pytest.mark.parametrize("family", ["mlp", "convnet", "transformer"])
def test_shapes_mask_and_value_range(board: str, family: str) -> None:
    rows, cols, num_actions = BOARDS[board]
    torch.manual_seed(0)
    net = build_network(small_configs(rows, cols, num_actions)[family])
    x, legal = random_inputs(net, 11, torch.Generator().manual_seed(1))

    logits, value = net(x, legal)

    assert logits.shape == (11, num_actions) and logits.dtype == torch.float32
    assert value.shape == (11,)
    assert torch.all(value.abs() <= 1.0)
    assert torch.all(logits[~legal] == float("-inf"))
    assert torch.all(torch.isfinite(logits[legal]))
    probs = torch.softmax(logits, dim=1)  # (N, A)
    assert torch.all(probs[~legal] == 0.0)  # exactly zero, not merely small
    assert torch.all(probs[legal] > 0.0)
    torch.testing.assert_close(probs.sum(1), torch.ones(11))


def test_input_kind_matches_family() -> None:
    assert build_network(MLPConfig()).input_kind == "planes"
    assert build_network(ConvNetConfig()).input_kind == "planes"
    assert build_network(TransformerConfig()).input_kind == "tokens"


def test_mask_illegal_only_touches_illegal_actions() -> None:
    logits = torch.tensor([[1.0, 2.0, 3.0]])
    legal = torch.tensor([[True, False, True]])
    assert mask_illegal(logits, legal).tolist() == [[1.0, float("-inf"), 3.0]]


@pytest.mark.parametrize("family", ["mlp", "convnet", "transformer"])
def test_tiny_batch_overfits(family: str) -> None:
    """8 positions with random legal target moves and random values are memorised.

    Targets are one-hot moves (a random legal action per position), so the optimum of
    cross-entropy + MSE is 0; a net that learns nothing sits near ln(#legal) + Var(value)
    ~ 1.0 + 0.27. Below 0.05 each target move has probability > e^-0.05 ~ 0.95 and each value
    error is under ~0.22: the net has fitted every position, not just the average.
    """
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(2)
    net = build_network(small_configs(6, 7, 7)[family])
    x, legal = random_inputs(net, 8, generator)
    target_move = torch.multinomial(legal.float(), 1, generator=generator).squeeze(1)  # (8,)
    target_value = torch.rand(8, generator=generator) * 1.8 - 0.9  # (8,) in [-0.9, 0.9]
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)

    net.train()
    for _ in range(200):
        logits, value = net(x, legal)
        loss = F.cross_entropy(logits, target_move) + F.mse_loss(value, target_value)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    assert loss.item() < 0.05, f"{family} did not overfit 8 positions: loss {loss.item():.4f}"


def test_transformer_attention_goes_through_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    config = TransformerConfig(rows=6, cols=7, num_actions=7, width=64, heads=4, depth=3)
    net = build_network(config)
    x, legal = random_inputs(net, 5, torch.Generator().manual_seed(3))
    real_attention = kernels.attention
    calls: list[tuple[tuple[int, ...], ...]] = []

    def spy(q, k, v, key_padding_mask=None, *, backend=None):  # same signature as the real one
        calls.append((tuple(q.shape), tuple(k.shape), tuple(v.shape)))
        return real_attention(q, k, v, key_padding_mask, backend=backend)

    monkeypatch.setattr(kernels, "attention", spy)
    net(x, legal)

    # (B, H, T, D): 42 cells + the value token, head dim 64 / 4 = 16.
    assert calls == [((5, 4, 43, 16),) * 3] * config.depth


def test_batchnorm_folding_matches_eval_mode() -> None:
    torch.manual_seed(0)
    net = build_network(ConvNetConfig(channels=16, blocks=2))
    # Give every BN non-trivial statistics and affine parameters, as after training.
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    net.eval()
    x, legal = random_inputs(net, 16, torch.Generator().manual_seed(4))

    fused = net.fuse_for_inference()

    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())  # original intact
    want_logits, want_value = net(x, legal)
    got_logits, got_value = fused(x, legal)
    torch.testing.assert_close(got_logits, want_logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got_value, want_value, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("backend", "chunk"),
    [("eager", None), ("jit", None), ("onednn", None), ("jit", 4), ("auto", None)],
)
@pytest.mark.parametrize("family", ["mlp", "convnet", "transformer"])
def test_inference_model_matches_eval_net(family: str, backend: str, chunk: int | None) -> None:
    if backend == "onednn" and not torch.backends.mkldnn.is_available():
        pytest.skip("this torch build has no oneDNN")
    torch.manual_seed(0)
    net = build_network(small_configs(6, 7, 7)[family]).eval()
    generator = torch.Generator().manual_seed(5)
    example, _ = random_inputs(net, 32, generator)
    x, legal = random_inputs(net, 13, generator)  # another batch size than the example

    model = inference_model(net, example, backend=backend, chunk=chunk)
    got_logits, got_value = model(x, legal)  # with chunk 4: calls of 4, 4, 4 and 1

    want_logits, want_value = net(x, legal)
    assert model.backend in ("eager", "onednn", "jit")
    assert got_logits.shape == (13, 7) and got_value.shape == (13,)
    assert torch.equal(torch.isinf(got_logits), ~legal)
    torch.testing.assert_close(got_logits, want_logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got_value, want_value, atol=1e-5, rtol=1e-5)
    assert not got_logits.requires_grad


@pytest.mark.parametrize("family", ["mlp", "convnet", "transformer"])
def test_state_dict_round_trip(family: str) -> None:
    config = small_configs(3, 3, 9)[family]
    torch.manual_seed(0)
    net = build_network(config)
    net.train()
    x, legal = random_inputs(net, 8, torch.Generator().manual_seed(6))
    net(x, legal)  # one training-mode pass, so the BN running statistics leave their defaults
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    buffer.seek(0)

    torch.manual_seed(1)  # different initial weights in the fresh net
    fresh = build_network(config)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))

    net.eval()
    fresh.eval()
    want, got = net(x, legal), fresh(x, legal)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


def test_parameter_counts() -> None:
    counts = {
        name: build_network(config).num_parameters()
        for name, config in {
            "mlp": MLPConfig(),
            "convnet": ConvNetConfig(),
            "transformer": TransformerConfig(),
        }.items()
    }
    print("parameters per default Connect Four net:", counts)  # shown with pytest -s
    # MLP 84 -> 128 -> 128 -> (7 logits, 1 value), weights plus biases.
    assert counts["mlp"] == (84 * 128 + 128) + (128 * 128 + 128) + (128 * 7 + 7) + (128 + 1)
    # ConvNet: stem conv + BN, 4 blocks of 2 x (conv + BN), then the two heads.
    stem = 2 * 64 * 9 + 2 * 64
    blocks = 4 * 2 * (64 * 64 * 9 + 2 * 64)
    policy = (64 * 2 + 2 * 2) + (2 * 42 * 7 + 7)
    value = (64 * 1 + 2 * 1) + (42 * 64 + 64) + (64 + 1)
    assert counts["convnet"] == stem + blocks + policy + value
    # Transformer: embeddings, 4 blocks (2 LN, qkv, proj, 2-layer MLP), final LN, heads.
    w = 128
    embed = 3 * w + 42 * w + w
    block = 2 * (2 * w) + (w * 3 * w + 3 * w) + (w * w + w) + (w * 4 * w + 4 * w) + (4 * w * w + w)
    heads = 2 * w + (42 * w * 7 + 7) + (w * w + w) + (w + 1)
    assert counts["transformer"] == embed + 4 * block + heads


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: TransformerConfig(width=128, heads=3), ["heads 3", "width 128"]),
        (lambda: ConvNetConfig(channels=0), ["channels", "positive", "0"]),
        (lambda: ConvNetConfig(blocks=-1), ["blocks", ">= 0", "-1"]),
        (lambda: MLPConfig(hidden=(64, 0)), ["hidden[1]", "positive"]),
        (lambda: build_network("convnet"), ["ConvNetConfig", "TransformerConfig", "MLPConfig"]),
    ],
)
def test_bad_config_raises_clear_error(make, words: list[str]) -> None:
    with pytest.raises(ValueError) as error:
        make()
    for word in words:
        assert word in str(error.value)


def test_wrong_input_shapes_raise_clear_errors() -> None:
    conv = build_network(ConvNetConfig(channels=8, blocks=1))
    legal = torch.ones(4, 7, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"\(N, 2, 6, 7\).*\(4, 2, 7, 6\)"):
        conv(torch.zeros(4, 2, 7, 6), legal)
    with pytest.raises(ValueError, match=r"legal_mask.*\(4, 7\).*\(4, 9\)"):
        conv(torch.zeros(4, 2, 6, 7), torch.ones(4, 9, dtype=torch.bool))
    transformer = build_network(TransformerConfig(width=16, heads=2, depth=1))
    with pytest.raises(ValueError, match=r"tokens of shape \(N, 42\).*\(4, 2, 6, 7\)"):
        transformer(torch.zeros(4, 2, 6, 7), legal)
    with pytest.raises(ValueError, match="integer"):
        transformer(torch.zeros(4, 42), legal)


def test_classes_are_the_documented_families() -> None:
    assert isinstance(build_network(MLPConfig()), MLP)
    assert isinstance(build_network(ConvNetConfig()), ConvNet)
    assert isinstance(build_network(TransformerConfig()), Transformer)


def test_symmetric_forward_is_symmetric_and_takes_a_prebuilt_index() -> None:
    """Averaged over the mirror image, a net's policy mirrors with the board and its value
    stays; a SymmetryIndex built once gives what the symmetries give when passed as arrays."""
    import envs

    core = envs.make("connect_four", 5)
    core.step(core.random_legal_actions(np.random.default_rng(0)))
    net = build_network(network_config_for_game("connect_four", "mlp", hidden=(16,))).eval()
    x = torch.from_numpy(core.observation())  # (N, 2, rows, cols)
    legal = torch.from_numpy(core.legal_mask())
    symmetries = core.symmetries()
    with torch.no_grad():
        logits, value = symmetric_forward(net.forward_unchecked, x, legal, symmetries)
        index = SymmetryIndex(symmetries, "cpu")
        again = symmetric_forward(net.forward_unchecked, x, legal, index)
        mirrored = symmetric_forward(net.forward_unchecked, x.flip(-1), legal.flip(-1), index)
    assert torch.equal(logits, again[0]) and torch.equal(value, again[1])
    assert torch.allclose(mirrored[0], logits.flip(-1), atol=1e-6, equal_nan=True)
    assert torch.allclose(mirrored[1], value, atol=1e-6)
