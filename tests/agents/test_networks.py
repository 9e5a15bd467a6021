"""Tests of the policy-value networks in `agents.networks` (CPU, a few seconds in all)."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator

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
    ThreatPlanes,
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
@pytest.mark.parametrize(
    "family",
    ["mlp", "convnet", "transformer", "mlp+threats", "convnet+threats", "mlp+filters"],
)
def test_inference_model_matches_eval_net(family: str, backend: str, chunk: int | None) -> None:
    if backend == "onednn" and not torch.backends.mkldnn.is_available():
        pytest.skip("this torch build has no oneDNN")
    torch.manual_seed(0)
    kind, _, extra = family.partition("+")
    config = small_configs(6, 7, 7)[kind]
    if extra == "threats":
        config = dataclasses.replace(config, threat_length=4)
    if extra == "filters":
        config = dataclasses.replace(config, threat_length=4, line_filters=8)
    net = build_network(config).eval()
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


def test_line_filters_shape_count_and_checkpoint_keys() -> None:
    """line_filters: an unpadded filter_size-square convolution before the hidden layers, its
    window the game's winning length by default; without it the MLP's state dict keeps the
    keys it always had (checkpoints from before the option load)."""
    config = network_config_for_game("connect_four", "mlp", hidden=(32,), line_filters=16)
    assert (config.filter_size, config.line_filters) == (4, 16)
    assert network_config_for_game("tictactoe", "mlp", line_filters=4).filter_size == 3
    net = build_network(config)
    conv = 2 * 16 * 4 * 4 + 16  # 2 planes in, 16 filters of 4 x 4
    windows = (6 - 4 + 1) * (7 - 4 + 1)  # 3 x 4 places a 4 x 4 window fits on 6 x 7
    assert net.num_parameters() == conv + (16 * windows * 32 + 32) + (32 * 7 + 7) + (32 + 1)
    x, legal = random_inputs(net, 5, torch.Generator().manual_seed(2))
    logits, value = net(x, legal)
    assert logits.shape == (5, 7) and value.shape == (5,)
    assert torch.equal(torch.isinf(logits), ~legal)
    # the same filter reads every window: a pattern moved by one column moves its response
    stones = torch.zeros(1, 2, 6, 7)
    stones[0, 0, 5, 0:3] = 1.0  # three in the bottom row, columns 0-2
    moved = torch.roll(stones, 1, dims=3)  # columns 1-3
    with torch.no_grad():
        a, b = net.filters(stones), net.filters(moved)
    torch.testing.assert_close(a[..., 2, 0], b[..., 2, 1])
    plain = build_network(MLPConfig(hidden=(32,)))
    assert sorted(plain.state_dict()) == [
        "body.0.bias", "body.0.weight", "policy_head.bias", "policy_head.weight",
        "value_head.bias", "value_head.weight",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: TransformerConfig(width=128, heads=3), ["heads 3", "width 128"]),
        (lambda: ConvNetConfig(channels=0), ["channels", "positive", "0"]),
        (lambda: ConvNetConfig(blocks=-1), ["blocks", ">= 0", "-1"]),
        (lambda: MLPConfig(hidden=(64, 0)), ["hidden[1]", "positive"]),
        (lambda: build_network("convnet"), ["ConvNetConfig", "TransformerConfig", "MLPConfig"]),
        (lambda: MLPConfig(threat_length=8), ["threat_length", "2 to 7", "8"]),
        (lambda: MLPConfig(line_filters=-1), ["line_filters", ">= 0", "-1"]),
        (lambda: MLPConfig(line_filters=8, filter_size=7), ["filter_size", "1 to 6", "7"]),
        (lambda: MLPConfig(line_filters=8, filter_size=True), ["filter_size", "1 to 6", "True"]),
        (lambda: ConvNetConfig(threat_length=4, in_planes=3), ["in_planes 2", "in_planes 3"]),
        (lambda: MLPConfig(drop_planes=True), ["drop_planes", "threat_length > 0", "0"]),
        (lambda: ConvNetConfig(threat_length=4, drop_planes=1), ["drop_planes", "true or", "1"]),
        (
            lambda: network_config_for_game("tictactoe", "mlp", threats=True, drop_planes=True),
            ["drop_planes", "gravity", "tictactoe"],
        ),
        (
            lambda: network_config_for_game("connect_four", "transformer", drop_planes=True),
            ["drop_planes needs threats"],
        ),
        (
            lambda: network_config_for_game("connect_four", "transformer", threats=True),
            ["convnet, mlp", "transformer"],
        ),
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


def _completes_line(board: np.ndarray, side: int, r: int, c: int, length: int) -> bool:
    """Whether a stone of ``side`` on empty cell (r, c) of ``board`` (0 empty, 1 mover,
    2 opponent) makes ``length`` in a row: runs counted outward from the cell, no windows."""
    rows, cols = board.shape
    for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
        run = 1
        for sign in (1, -1):
            rr, cc = r + sign * dr, c + sign * dc
            while 0 <= rr < rows and 0 <= cc < cols and board[rr, cc] == side:
                run += 1
                rr, cc = rr + sign * dr, cc + sign * dc
        if run >= length:
            return True
    return False


def _random_play_planes(game: str, seed: int, games: int = 64) -> Iterator[torch.Tensor]:
    """The observation planes of ``games`` random games, every ply, unfinished games only."""
    import envs

    rng = np.random.default_rng(seed)
    core = envs.make(game, games)
    for _ in range(core.max_moves - 1):
        live = ~core.terminated
        if not live.any():
            return
        yield torch.from_numpy(core.observation()[live])
        core.step(core.random_legal_actions(rng), where=live)


@pytest.mark.parametrize("game", ["connect_four", "tictactoe"])
def test_threat_planes_match_a_brute_force_count(game: str) -> None:
    """Planes 2 and 3 mark exactly the empty cells where the mover's (opponent's) stone would
    complete a line, on positions from random play, every ply; planes 0-1 pass through."""
    import envs

    core = envs.make(game, 1)
    layer = ThreatPlanes(core.rows, core.cols, core.win_length)
    checked = 0
    for x in _random_play_planes(game, seed=0):
        out = layer(x).numpy()
        assert out.shape == (len(x), 4, core.rows, core.cols)
        assert np.array_equal(out[:, :2], x.numpy())
        for planes, features in zip(x.numpy(), out, strict=True):
            board = planes[0] + 2 * planes[1]
            for side in (1, 2):
                want = np.zeros_like(board)
                for r, c in zip(*np.nonzero(board == 0), strict=True):
                    want[r, c] = _completes_line(board, side, r, c, core.win_length)
                assert np.array_equal(features[1 + side], want)
                checked += int(want.sum())
    assert checked > 100  # the positions held threats to find


def test_drop_planes_match_a_brute_force_count() -> None:
    """Planes 4-7 (`drop`) on positions from random Connect Four play, every ply: zero except on
    the cells a stone drops into now, and there a win, a forced block, an opponent's threat on
    the cell above, the mover's threat above, each counted by walking the lines of the board."""
    import envs

    core = envs.make("connect_four", 1)
    layer = ThreatPlanes(core.rows, core.cols, core.win_length, drop=True)
    assert layer.out_planes == 8
    seen = np.zeros(4, dtype=int)
    for x in _random_play_planes("connect_four", seed=1):
        out = layer(x).numpy()
        assert out.shape == (len(x), 8, core.rows, core.cols)
        assert np.array_equal(out[:, :4], ThreatPlanes(6, 7, 4)(x).numpy())
        for planes, features in zip(x.numpy(), out, strict=True):
            board = planes[0] + 2 * planes[1]
            want = np.zeros((4, core.rows, core.cols), dtype=np.float32)
            for c in range(core.cols):
                empty = np.flatnonzero(board[:, c] == 0)
                if len(empty) == 0:
                    continue
                r = empty.max()  # the lowest empty cell: where a stone in column c lands
                want[0, r, c] = _completes_line(board, 1, r, c, 4)
                want[1, r, c] = _completes_line(board, 2, r, c, 4)
                if r > 0:
                    want[2, r, c] = _completes_line(board, 2, r - 1, c, 4)
                    want[3, r, c] = _completes_line(board, 1, r - 1, c, 4)
            assert np.array_equal(features[4:], want)
            seen += want.sum(axis=(1, 2)).astype(int)
    assert (seen > 20).all(), seen  # every kind of plane was lit on many positions


def test_drop_planes_on_a_known_position() -> None:
    """Connect Four after 4 4 5 5 6 (columns), the second player to move: the first player's
    bottom row threatens columns 3 and 7, so both are forced blocks; the second player's stones
    on the second row (columns 4, 5) make no threat yet."""
    import envs

    core = envs.game_class("connect_four").from_moves("44556")
    out = ThreatPlanes(6, 7, 4, drop=True)(torch.from_numpy(core.observation()))[0].numpy()
    bottom = 5
    assert set(zip(*np.nonzero(out[5]), strict=True)) == {(bottom, 2), (bottom, 6)}
    assert not out[4].any() and not out[6].any() and not out[7].any()
    # after 4 4 5 5 6 6, the first player to move: columns 3 and 7 win now, and the same cells
    # lie under the second player's threats on the second row (a gift, were the game to go on)
    core = envs.game_class("connect_four").from_moves("445566")
    out = ThreatPlanes(6, 7, 4, drop=True)(torch.from_numpy(core.observation()))[0].numpy()
    for plane in (4, 6):
        assert set(zip(*np.nonzero(out[plane]), strict=True)) == {(bottom, 2), (bottom, 6)}
    assert not out[5].any() and not out[7].any()


def test_threat_planes_on_a_known_position() -> None:
    """Connect Four after 4 4 5 5 6 6 (columns): the mover (first player) completes four on
    the bottom row at columns 3 or 7, the opponent on the second row at the same columns."""
    import envs

    core = envs.game_class("connect_four").from_moves("445566")
    x = torch.from_numpy(core.observation())
    out = ThreatPlanes(6, 7, 4)(x)[0]
    bottom, second = 5, 4  # row 0 is the top
    assert x[0, 0, bottom, 3] == 1 and x[0, 1, second, 3] == 1
    assert set(zip(*np.nonzero(out[2].numpy()), strict=True)) == {(bottom, 2), (bottom, 6)}
    assert set(zip(*np.nonzero(out[3].numpy()), strict=True)) == {(second, 2), (second, 6)}


@pytest.mark.parametrize("drop", [False, True], ids=["threats", "threats+drop"])
@pytest.mark.parametrize("family", ["mlp", "convnet"])
def test_nets_with_threat_planes_train_save_and_trace(family: str, drop: bool) -> None:
    """A net with threat planes: its input layer sees 4 planes (8 with drop planes), its
    state dict holds no buffer of them (old checkpoints load), the fast inference path gives
    its outputs, and it differs from the same weights fed zeros in the computed planes (the
    planes reach the net)."""
    import envs

    sizes = {"mlp": {"hidden": (32,)}, "convnet": {"channels": 8, "blocks": 1}}[family]
    config = network_config_for_game(
        "connect_four", family, threats=True, drop_planes=drop, **sizes
    )
    assert config.threat_length == 4 and config.drop_planes == drop
    net = build_network(config).eval()
    first = net.body[0] if family == "mlp" else net.stem.conv
    assert first.weight.shape[1] == (8 if drop else 4) * (42 if family == "mlp" else 1)
    assert not any("windows" in k or "incidence" in k for k in net.state_dict())
    core = envs.game_class("connect_four").from_moves("445566")
    x = torch.from_numpy(core.observation())
    legal = torch.from_numpy(core.legal_mask())
    with torch.no_grad():
        logits, value = net(x, legal)
        fast_logits, fast_value = inference_model(net, x, backend="jit")(x, legal)
        blind = net.threats.forward
        net.threats.forward = lambda t: torch.cat([t, torch.zeros_like(blind(t)[:, 2:])], 1)
        assert not torch.allclose(net(x, legal)[0], logits)
    assert torch.allclose(fast_logits, logits, atol=1e-5)
    assert torch.allclose(fast_value, value, atol=1e-5)
    again = build_network(config)
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    buffer.seek(0)
    again.load_state_dict(torch.load(buffer))
