"""The RLlib bridge: our nets as RLModules (masking inside), our games through RLlib's PettingZoo
wrapper, and real PPO self-play on tic-tac-toe with frozen snapshots, checkpoints and resume."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

ray = pytest.importorskip("ray")

import envs  # noqa: E402
from selfplay import rllib_bridge as rb  # noqa: E402
from selfplay.league import LeagueConfig  # noqa: E402

GAME = "tictactoe"


def tiny_settings(**changes) -> rb.PPOSettings:
    """A PPO that trains in about a second per iteration on this 2-core machine."""
    fields = {
        "train_batch_size": 256,
        "minibatch_size": 64,
        "num_epochs": 2,
        "lr": 1e-3,
        "num_env_runners": 0,
        "num_envs_per_env_runner": 4,
        "snapshot_every": 2,
        "max_snapshots": 2,
        "self_play": 0.3,
        "eval_opponents": ("random",),
        "eval_games": 10,
    }
    return rb.PPOSettings(**{**fields, **changes})


def mlp() -> rb.NetworkConfig:
    return rb.network_config_for_game(GAME, "mlp", hidden=(32, 32))


def module_for(network) -> rb.PolicyValueRLModule:
    torch.manual_seed(0)
    return rb.module_spec(network, GAME).build()


def weights_equal(a: dict, b: dict) -> bool:
    return set(a) == set(b) and all(np.array_equal(np.asarray(a[k]), np.asarray(b[k])) for k in a)


# --------------------------------------------------------------------------------------------
# the module, without Ray running


def pettingzoo_batch(game) -> dict[str, torch.Tensor]:
    """The RLlib batch the module would see for the movers of ``game`` (a batched core)."""
    planes = game.observation().transpose(0, 2, 3, 1).astype(np.int8)  # (N, rows, cols, 2)
    return {
        "obs": {
            "observation": torch.from_numpy(planes),
            "action_mask": torch.from_numpy(game.legal_mask().astype(np.int8)),
        }
    }


@pytest.mark.parametrize("net", ["mlp", "convnet", "transformer"])
def test_module_masks_illegal_actions_and_matches_the_net(net: str) -> None:
    sizes = {
        "mlp": {"hidden": (16,)},
        "convnet": {"channels": 8, "blocks": 1},
        "transformer": {"width": 16, "heads": 2, "depth": 1},
    }[net]
    module = module_for(rb.network_config_for_game(GAME, net, **sizes))
    game = envs.TicTacToe.from_moves(["", "5", "51", "5193"])
    legal = game.legal_mask()  # (4, 9)
    batch = pettingzoo_batch(game)
    for forward in (module.forward_inference, module.forward_exploration, module.forward_train):
        logits = forward(batch)["action_dist_inputs"]  # (4, 9)
        assert torch.isfinite(logits).all()
        assert (logits[torch.from_numpy(~legal)] == rb.MASKED_LOGIT).all()
        assert (logits[torch.from_numpy(legal)] > -1e6).all()
    # the module's inputs are exactly what our net reads from the core (planes or tokens)
    x = game.tokens() if module.net.input_kind == "tokens" else game.observation()
    module.eval()
    want_logits, want_value = module.net(torch.from_numpy(x), torch.from_numpy(legal))
    got = module.forward_inference(batch)["action_dist_inputs"]
    assert torch.allclose(got[torch.from_numpy(legal)], want_logits[torch.from_numpy(legal)])
    assert torch.allclose(module.compute_values(batch), want_value, atol=1e-6)
    # greedy play through the module: always legal
    actions = rb.greedy_actions(module, game.observation(), legal)
    assert legal[np.arange(4), actions].all()


def some_positions(game: str) -> envs.BatchedGame:
    """A batch of positions a few random plies deep (none finished)."""
    core = envs.make(game, 32)
    rng = np.random.default_rng(1)
    for _ in range(3):
        legal = core.legal_mask()
        core.step(np.array([rng.choice(np.flatnonzero(row)) for row in legal]))
    return core


@pytest.mark.parametrize(
    ("game", "net", "sizes"),
    [
        ("connect_four", "mlp", {"hidden": (32, 32)}),
        ("connect_four", "convnet", {"channels": 8, "blocks": 1}),
        ("tictactoe", "transformer", {"width": 16, "heads": 2, "depth": 1}),
        ("connect_four", "mlp", {"hidden": (32, 32), "threats": True}),
        ("tictactoe", "convnet", {"channels": 8, "blocks": 1, "threats": True}),
        ("connect_four", "mlp", {"hidden": (32,), "threats": True, "line_filters": 8}),
        ("connect_four", "mlp", {"hidden": (32,), "threats": True, "drop_planes": True}),
        ("tictactoe", "mlp", {"hidden": (32,), "line_filters": 4}),
    ],
)
def test_symmetric_module_is_exactly_symmetric(game: str, net: str, sizes: dict) -> None:
    torch.manual_seed(0)
    network = rb.network_config_for_game(game, net, **sizes)
    module = rb.module_spec(network, game, symmetric=True).build()
    plain = rb.module_spec(network, game).build()
    plain.set_state(module.get_state())
    positions = some_positions(game)
    planes, legal = positions.observation(), positions.legal_mask()  # (N, 2, r, c), (N, A)

    def forward(m, planes, legal):
        batch = {
            "obs": {
                "observation": torch.from_numpy(planes.transpose(0, 2, 3, 1).astype(np.int8)),
                "action_mask": torch.from_numpy(legal.astype(np.int8)),
            }
        }
        out = m.forward_train(batch)
        return out["action_dist_inputs"], out["embeddings"]

    logits, value = forward(module, planes, legal)
    plain_logits, _ = forward(plain, planes, legal)
    assert not torch.allclose(logits, plain_logits)  # the averaging does something
    symmetries = positions.symmetries()
    assert len(symmetries) > 1
    for cells, actions in symmetries:
        n = len(planes)
        moved = planes.reshape(n, 2, -1)[:, :, cells].reshape(planes.shape)
        t_logits, t_value = forward(module, moved, legal[:, actions])
        assert torch.allclose(t_logits, logits[:, actions], atol=1e-5)
        assert torch.allclose(t_value, value, atol=1e-6)
    assert (logits[torch.from_numpy(~legal)] == rb.MASKED_LOGIT).all()


@pytest.mark.parametrize(
    ("net", "sizes", "symmetric"),
    [
        ("mlp", {"hidden": (64, 64)}, False),
        ("mlp", {"hidden": (64, 64)}, True),
        ("convnet", {"channels": 8, "blocks": 1}, True),
        ("transformer", {"width": 16, "heads": 2, "depth": 1}, False),
    ],
)
def test_bfloat16_module_multiplies_in_bfloat16_and_trains_float32_weights(
    net: str, sizes: dict, symmetric: bool
) -> None:
    game = "connect_four"
    torch.manual_seed(0)
    network = rb.network_config_for_game(game, net, **sizes)
    fast = rb.module_spec(network, game, symmetric=symmetric, precision="bfloat16").build()
    exact = rb.module_spec(network, game, symmetric=symmetric).build()
    exact.set_state(fast.get_state())
    positions = some_positions(game)
    batch = pettingzoo_batch(positions)
    legal = torch.from_numpy(positions.legal_mask())
    linear = next(m for m in fast.net.modules() if isinstance(m, torch.nn.Linear))
    products: list[torch.dtype] = []
    hook = linear.register_forward_hook(lambda m, i, out: products.append(out.dtype))
    out = fast.forward_train(batch)
    hook.remove()
    assert products and set(products) == {torch.bfloat16}  # the matrix products ran in bfloat16
    logits, value = out["action_dist_inputs"], out["embeddings"]
    assert logits.dtype == value.dtype == torch.float32  # RLlib gets float32
    assert (logits[~legal] == rb.MASKED_LOGIT).all() and torch.isfinite(logits).all()
    want = exact.forward_train(batch)
    # bfloat16 keeps 8 bits of mantissa: close to float32, not equal
    assert torch.allclose(logits[legal], want["action_dist_inputs"][legal], atol=0.05)
    assert not torch.equal(logits[legal], want["action_dist_inputs"][legal])
    assert torch.allclose(value, want["embeddings"], atol=0.05)
    (logits[legal].logsumexp(0) + value.sum()).backward()
    grads = [p.grad for p in fast.parameters()]
    assert all(g is not None and g.dtype == torch.float32 for g in grads)
    assert all(p.dtype == torch.float32 for p in fast.parameters())
    # greedy play (evaluation) is the exported agent's: float32, bit for bit
    fast.eval()
    exact.eval()
    planes, mask = positions.observation(), positions.legal_mask()
    assert np.array_equal(
        rb.greedy_actions(fast, planes, mask), rb.greedy_actions(exact, planes, mask)
    )
    assert fast.bfloat16  # and the module trains in bfloat16 again afterwards
    with pytest.raises(
        ValueError, match="precision must be one of auto, float32, bfloat16, got 'fp8'"
    ):
        rb.module_spec(network, game, precision="fp8").build()


def test_auto_precision_is_bfloat16_only_where_the_cpu_multiplies_it(monkeypatch) -> None:
    zen4 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512vl\n"
    sapphire = "flags\t\t: avx512f amx_tile amx_bf16 amx_int8\n"
    graviton3 = "Features\t: fp asimd sve bf16 i8mm\n"
    skylake = "flags\t\t: fpu sse2 avx2 avx512f avx512bw avx512vl\n"
    assert rb.cpu_has_bfloat16(zen4) and rb.cpu_has_bfloat16(sapphire)
    assert rb.cpu_has_bfloat16(graviton3)
    assert not rb.cpu_has_bfloat16(skylake) and not rb.cpu_has_bfloat16("")
    for native, want in ((True, "bfloat16"), (False, "float32")):
        monkeypatch.setattr(rb, "cpu_has_bfloat16", lambda native=native: native)
        assert rb.resolve_precision("auto") == want
        assert rb.resolve_precision("bfloat16") == "bfloat16"
    assert rb.resolve_precision("float32") == "float32"
    with pytest.raises(ValueError, match="precision must be one of auto, float32, bfloat16"):
        rb.resolve_precision("half")


@pytest.mark.parametrize(
    ("game", "threats", "filters", "drop"),
    [
        ("connect_four", False, 0, False),
        ("tictactoe", False, 0, False),  # rotations
        ("connect_four", True, 0, False),
        ("connect_four", True, 8, False),
        ("connect_four", True, 8, True),  # the preset's kind of net
    ],
)
def test_exported_symmetric_policy_plays_as_the_module(
    game: str, threats: bool, filters: int, drop: bool
) -> None:
    """The checkpoint a symmetric PPO run exports plays the module's greedy moves."""
    from selfplay.api import TrainedPlayer
    from selfplay.config import TrainConfig

    cfg = TrainConfig(
        game=game, algo="ppo", net="mlp", hidden=32, symmetric=True, threat_planes=threats,
        line_filters=filters, drop_planes=drop,
    )  # fmt: skip
    game, network, _ = rb._from_cfg(cfg)
    assert network.threat_length == (4 if threats else 0) and network.drop_planes == drop
    assert (network.line_filters, network.filter_size) == (filters, 4)
    torch.manual_seed(0)
    module = rb.module_spec(network, game, symmetric=True).build().eval()
    player = TrainedPlayer(cfg, module.net.state_dict(), simulations=0)
    positions = some_positions(game)
    expected = rb.greedy_actions(module, positions.observation(), positions.legal_mask())
    assert np.array_equal(player.act(positions), expected)
    logits, _ = player.evaluator.evaluate(positions)
    with torch.no_grad():
        module_logits = module.forward_inference(
            {
                "obs": {
                    "observation": torch.from_numpy(
                        positions.observation().transpose(0, 2, 3, 1).astype(np.int8)
                    ),
                    "action_mask": torch.from_numpy(positions.legal_mask().astype(np.int8)),
                }
            }
        )["action_dist_inputs"]
    legal = positions.legal_mask()
    assert np.allclose(logits[legal], module_logits.numpy()[legal], atol=1e-5)


def test_sampling_from_masked_logits_never_picks_an_illegal_action() -> None:
    from ray.rllib.core.distribution.torch.torch_distribution import TorchCategorical

    module = module_for(mlp())
    game = envs.TicTacToe.from_moves(["51937"] * 64)  # 4 legal cells of 9
    out = module.forward_exploration(pettingzoo_batch(game))["action_dist_inputs"]
    dist = TorchCategorical.from_logits(out)
    samples = torch.stack([dist.sample() for _ in range(50)])  # (50, 64)
    legal = torch.from_numpy(game.legal_mask())
    assert legal.gather(1, samples.T).all()
    # PPO's loss terms stay finite with masked logits (a -inf logit would make the KL NaN)
    assert torch.isfinite(dist.entropy()).all() and torch.isfinite(dist.kl(dist)).all()


def test_greedy_module_samples_only_its_most_likely_legal_move() -> None:
    """A greedy module (frozen snapshots with league_greedy) keeps only its best logits, so
    RLlib's sampling plays the argmax; the same weights without the flag sample freely."""
    import dataclasses

    from ray.rllib.core.distribution.torch.torch_distribution import TorchCategorical

    plain = module_for(mlp())
    spec = rb.module_spec(mlp(), GAME)
    greedy = dataclasses.replace(
        spec, model_config={**spec.model_config, rb.GREEDY_KEY: True}
    ).build()
    greedy.load_state_dict(plain.state_dict())
    assert greedy.greedy and not plain.greedy
    game = envs.TicTacToe.from_moves(["51937", "", "4"] * 20)  # 4, 9 and 8 legal cells
    batch = pettingzoo_batch(game)
    free = plain.forward_exploration(batch)["action_dist_inputs"]
    best_only = greedy.forward_exploration(batch)["action_dist_inputs"]
    best = free.argmax(dim=1)
    assert torch.equal(best_only.argmax(dim=1), best)
    kept = best_only > rb.MASKED_LOGIT
    assert (kept.sum(dim=1) == 1).all()  # random weights: no exact ties
    assert torch.equal(best_only[kept], free.gather(1, best[:, None]).squeeze(1))
    samples = torch.stack([TorchCategorical.from_logits(best_only).sample() for _ in range(20)])
    assert (samples == best).all()
    free_samples = torch.stack([TorchCategorical.from_logits(free).sample() for _ in range(20)])
    assert not (free_samples == best).all()


def test_compute_values_leaves_batchnorm_statistics_alone() -> None:
    module = module_for(rb.network_config_for_game(GAME, "convnet", channels=8, blocks=1))
    module.train()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    game = envs.TicTacToe.from_moves(["5", "51", "519"])
    module.compute_values(pettingzoo_batch(game))
    after = module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert module.training  # and the mode is restored


def test_env_is_turn_based_and_refuses_masked_actions() -> None:
    env = rb.make_env({"game": GAME})
    obs, _ = env.reset()
    assert list(obs) == ["player_0"]  # only the agent to move observes and acts
    obs, rewards, terminated, _, _ = env.step({"player_0": 4})
    assert list(obs) == ["player_1"] and not terminated["__all__"]
    with pytest.raises(rb.IllegalActionError, match="illegal"):
        env.step({"player_1": 4})  # the centre is taken
    assert env.illegal_actions == 1
    # a full game: both agents get their final reward, +1 and -1
    env.reset()
    moves = [4, 0, 1, 2, 7]  # player_0 wins the middle column
    for ply, move in enumerate(moves):
        obs, rewards, terminated, _, _ = env.step({f"player_{ply % 2}": move})
    assert terminated["__all__"]
    assert rewards == {"player_1": -1.0, "player_0": 1.0}


def test_registered_env_names() -> None:
    names = rb.register_envs()
    assert set(names) == {"selfplay_connect_four", "selfplay_tictactoe"}


def tiny_weights(value: float) -> dict[str, np.ndarray]:
    return {"w": np.full(2, value, np.float32)}


def test_episode_mapping_is_a_function_of_the_episode() -> None:
    config = LeagueConfig(latest=0.25, past=0.75, max_snapshots=3)
    league = rb.SelfPlayLeague(config)
    evicted = [league.add_snapshot(name, tiny_weights(i), step=i) for i, name in enumerate("abcd")]
    assert league.snapshot_names() == ["b", "c", "d"] and evicted[-1] == ["a"]  # oldest dropped
    # the live learner takes the latest share; past is uniform over the snapshots before the
    # newest (as in the AlphaZero engine: the newest is close to the live learner)
    names, probs = league.opponent_distribution(rb.LEARNER)
    expected = {"main": 0.25, "b": 0.375, "c": 0.375, "d": 0.0}
    assert dict(zip(names, probs, strict=True)) == pytest.approx(expected)
    mapping = rb.EpisodeMapping((names, probs), ("player_0", "player_1"), seed=7)
    names[1], probs[:] = "z", [0.0, 0.0, 0.0, 1.0]  # the mapping keeps its own copy

    class Episode:
        def __init__(self, id_: str) -> None:
            self.id_ = id_

    seats, opponents = [], []
    for i in range(400):
        episode = Episode(f"episode-{i}")
        first = [mapping(agent, episode) for agent in ("player_0", "player_1")]
        again = [mapping(agent, episode) for agent in ("player_1", "player_0")][::-1]
        assert first == again  # the same answer whenever and in whatever order it is asked
        assert rb.LEARNER in first
        seat, opponent = mapping.assignment(episode.id_)
        assert first[seat] == rb.LEARNER and first[1 - seat] == opponent
        seats.append(seat)
        opponents.append(opponent)
    assert 150 < sum(seats) < 250  # the learner's seat alternates (by the episode's hash)
    counts = {name: opponents.count(name) for name in ("main", "b", "c", "d")}
    assert 60 < counts["main"] < 140 and 110 < counts["b"] < 190 and 110 < counts["c"] < 190
    assert counts["d"] == 0
    assert "z" not in opponents
    # the league moving on changes nothing until a new mapping ships
    league.add_snapshot("e", tiny_weights(9), step=9)
    assert [mapping.assignment(f"episode-{i}")[1] for i in range(400)] == opponents
    # pickling (to the EnvRunners) keeps the assignments
    import pickle

    copy = pickle.loads(pickle.dumps(mapping))
    assert [copy.assignment(f"episode-{i}")[1] for i in range(400)] == opponents


def test_average_states_means_floats_and_keeps_the_newest_counters() -> None:
    states = [
        {"w": np.array([1.0, 2.0], np.float32), "steps": np.array(3, np.int64)},
        {"w": np.array([2.0, 4.0], np.float32), "steps": np.array(5, np.int64)},
        {"w": np.array([6.0, 0.0], np.float32), "steps": np.array(9, np.int64)},
    ]
    averaged = rb.average_states(states)
    assert averaged["w"].dtype == np.float32 and np.array_equal(averaged["w"], [3.0, 2.0])
    assert averaged["steps"] == 9  # not a weight: the newest state's
    assert np.array_equal(states[0]["w"], [1.0, 2.0])  # the inputs are left alone
    with pytest.raises(ValueError, match="needs at least one state"):
        rb.average_states([])
    with pytest.raises(ValueError, match=r"must hold the same entries, got \['steps', 'w'\]"):
        rb.average_states([states[0], {"w": states[1]["w"]}])


def test_league_state_round_trip_keeps_results_and_takes_new_settings() -> None:
    league = rb.SelfPlayLeague(LeagueConfig(latest=0.5, past=0.5, max_snapshots=3))
    for i, name in enumerate(["s1", "s2"]):
        league.add_snapshot(name, tiny_weights(i), step=10 * i)
    for outcome in (1, 1, 0, -1):
        league.record(rb.LEARNER, "s1", outcome)
    state = json.loads(json.dumps(league.state_dict()))  # what league.json holds
    weights = {"s1": tiny_weights(0), "s2": tiny_weights(1)}
    resumed = rb.SelfPlayLeague(LeagueConfig(latest=0.8, past=0.2, max_snapshots=5))
    resumed.load_state_dict(state, weights)
    assert resumed.snapshot_names() == ["s1", "s2"]
    assert resumed.league.results.record(rb.LEARNER, "s1") == (2, 1, 1)
    assert resumed.config.latest == 0.8 and resumed.league.config.max_snapshots == 5
    assert np.array_equal(resumed.league.snapshot("s2").weights["w"].numpy(), tiny_weights(1)["w"])
    # a resume that keeps fewer snapshots drops the oldest (the newest stays)
    smaller = rb.SelfPlayLeague(LeagueConfig(latest=0.5, past=0.5, max_snapshots=1))
    smaller.load_state_dict(state, weights)
    assert smaller.snapshot_names() == ["s2"]
    # a league.json written before this league class (names and win/draw/loss rows) still loads
    old = {"snapshots": ["s1", "s2"], "results": {"s1": [2, 1, 1], "main": [5, 0, 5]}}
    resumed.load_state_dict(old, weights)
    assert resumed.snapshot_names() == ["s1", "s2"]
    assert resumed.league.results.record(rb.LEARNER, "s1") == (2, 1, 1)


def test_ppo_settings_and_network_of_a_train_config() -> None:
    from selfplay.config import config_from_dict, load_preset

    cfg = load_preset("connect_four_ppo")
    settings = rb.ppo_settings(cfg)
    assert (settings.num_env_runners, settings.num_envs_per_env_runner) == (2, 32)
    assert (settings.train_batch_size, settings.minibatch_size, settings.num_epochs) == (
        4000,
        256,
        4,
    )
    assert (settings.opening_plies, settings.entropy_coeff, settings.lr) == (4, 0.01, 3e-4)
    assert (settings.self_play, settings.max_snapshots, settings.snapshot_every) == (0.8, 20, 10)
    assert settings.eval_opponents == ("random", "alphabeta:2") and settings.eval_games == 200
    assert (settings.policy_select, settings.policy_average) == (20, 0)  # the pick, no average
    league = settings.league_config()
    assert (league.latest, league.past, league.pfsp) == pytest.approx((0.8, 0.2, 0.0))
    assert not settings.greedy_snapshots
    greedy = config_from_dict({"league_greedy": True}, base=cfg)
    assert rb.ppo_settings(greedy).greedy_snapshots
    game, network, _ = rb._from_cfg(cfg)
    assert game == "connect_four" and network.hidden == (512, 512, 512)
    # a plain mapping of TrainConfig fields works too (the rest are TrainConfig's defaults)
    game, network, overrides = rb._from_cfg({"game": GAME, "net": "mlp", "hidden": 32, "lr": 0.1})
    assert game == GAME and network.hidden == (32, 32) and overrides == {"lr": 0.1}


def test_ppo_clip_kl_penalty_and_lr_decay_reach_rllib(local_ray) -> None:
    from selfplay.config import config_from_dict, load_preset

    changes = {
        "ppo_clip": 0.2,
        "ppo_kl_coeff": 0,
        "ppo_lr_decay_start": 0,  # the preset's is 3 M steps
        "ppo_lr_decay_steps": 512,
        "ppo_lr_final": 1e-4,
    }
    settings = rb.ppo_settings(config_from_dict(changes, base=load_preset("connect_four_ppo")))
    assert (settings.clip_param, settings.kl_coeff) == (0.2, 0.0)
    assert settings.lr_schedule() == [[0, 3e-4], [512, 1e-4]]
    late = rb.ppo_settings(
        config_from_dict(
            {**changes, "ppo_lr_decay_start": 256}, base=load_preset("connect_four_ppo")
        )
    )
    assert late.lr_schedule() == [[0, 3e-4], [256, 3e-4], [768, 1e-4]]
    assert rb.PPOSettings(lr=1e-3).lr_schedule() == 1e-3  # no decay: a constant rate
    tiny = tiny_settings(
        clip_param=0.2, kl_coeff=0.0, lr=1e-3, lr_decay_start=384, lr_decay_steps=512, lr_final=1e-4
    )
    algo = rb.build_ppo(GAME, mlp(), tiny)
    try:
        assert (algo.config.clip_param, algo.config.use_kl_loss) == (0.2, False)
        optimizer = algo.learner_group._learner.get_optimizer(rb.LEARNER)
        rates = []
        # ~260 steps each (whole episodes): flat, on the way down (twice), past the end (896)
        for _ in range(4):
            stats = algo.train()["learners"][rb.LEARNER]
            rates.append(optimizer.param_groups[0]["lr"])
        # no KL term in the loss: total = policy + vf_coeff * vf - entropy_coeff * entropy
        expected = stats["policy_loss"] + stats["vf_loss"] - 0.01 * stats["entropy"]
        assert stats["total_loss"] == pytest.approx(expected, rel=1e-4, abs=1e-6)
        assert rates[0] == pytest.approx(1e-3)
        assert 1e-3 > rates[1] > rates[2] > 1e-4 and rates[3] == pytest.approx(1e-4)
    finally:
        algo.stop()
    with_kl = rb.build_ppo(GAME, mlp(), tiny_settings(kl_coeff=0.5))
    try:
        assert (with_kl.config.use_kl_loss, with_kl.config.kl_coeff) == (True, 0.5)
    finally:
        with_kl.stop()


def test_env_opening_plies_start_games_from_random_positions() -> None:
    env = rb.make_env({"game": "connect_four", "opening_plies": 4})
    stones = []
    for i in range(200):
        obs, infos = env.reset(seed=i if i == 0 else None)
        (agent,) = obs
        assert agent == env.env.agent_selection and infos == {}
        planes = obs[agent]["observation"]  # (rows, cols, 2), the mover's stones first
        stones.append(int(planes.sum()))
        assert planes[..., 0].sum() in (planes[..., 1].sum(), planes[..., 1].sum() - 1)
        assert obs[agent]["action_mask"].any()
    assert set(stones) == {0, 1, 2, 3, 4}  # 0..k plies, each length seen
    with pytest.raises(ValueError, match="opening_plies must be an integer >= 0, got -1"):
        rb.make_env({"game": "connect_four", "opening_plies": -1})


def test_env_openings_differ_between_env_runners_with_equal_seeds() -> None:
    """RLlib seeds env k of EnvRunner w with seed + w + k: equal seeds on two EnvRunners."""
    from ray.rllib.env.env_context import EnvContext

    def openings(worker_index: int) -> list[bytes]:
        config = EnvContext({"game": "connect_four", "opening_plies": 6}, worker_index)
        env = rb.make_env(config)
        seen = []
        for i in range(20):
            obs, _ = env.reset(seed=5 if i == 0 else None)
            seen.append(next(iter(obs.values()))["observation"].tobytes())
        return seen

    assert openings(1) == openings(1)  # reproducible
    assert openings(1) != openings(2)


# --------------------------------------------------------------------------------------------
# real RLlib PPO on tic-tac-toe


def illegal_and_steps(algo) -> tuple[int, int]:
    """(illegal actions, actions checked) by the envs of every EnvRunner."""

    def count(env_runner) -> tuple[int, int]:
        if env_runner.env is None:  # the driver's local EnvRunner holds no env when remote ones do
            return 0, 0
        illegal = sum(e.unwrapped.illegal_actions for e in env_runner.env.envs)
        checked = sum(e.unwrapped.checked_actions for e in env_runner.env.envs)
        # the batched sampler plays on its own core (and raises on an illegal move)
        return illegal, checked + getattr(env_runner, "checked_actions", 0)

    per_runner = algo.env_runner_group.foreach_env_runner(count)
    return sum(i for i, _ in per_runner), sum(s for _, s in per_runner)


def env_runner_weights(algo, module_id: str) -> list[dict]:
    return algo.env_runner_group.foreach_env_runner(lambda er: er.module[module_id].get_state())


@pytest.mark.slow
def test_ppo_self_play_with_frozen_snapshots_and_checkpoints(local_ray, tmp_path: Path) -> None:
    # a remote EnvRunner (the production setting): mappings and weights must reach it
    settings = tiny_settings(num_env_runners=1)
    algo = rb.build_ppo(GAME, mlp(), settings)
    callback = rb.driver_callback(algo)
    try:
        main_before = rb.module_state(algo, rb.LEARNER)
        algo.train()
        algo.train()  # iteration 2: the first snapshot is taken from main's weights right now
        main_at_snapshot = rb.module_state(algo, rb.LEARNER)
        snapshot = "main_it00002"
        assert callback.league.snapshot_names() == [snapshot]
        assert set(algo.config.policies) == {rb.LEARNER, snapshot}
        assert not weights_equal(main_before, main_at_snapshot)  # main did learn
        assert weights_equal(rb.module_state(algo, snapshot), main_at_snapshot)
        for runner_weights in env_runner_weights(algo, snapshot):
            assert weights_equal(runner_weights, main_at_snapshot)

        results = [algo.train(), algo.train(), algo.train()]  # snapshot 2 added at iteration 4
        for result in results:  # masked logits keep PPO's loss terms finite
            stats = result["learners"][rb.LEARNER]
            assert all(np.isfinite(stats[k]) for k in ("total_loss", "vf_loss", "mean_kl_loss"))
        # the frozen snapshot never trained, on the learner nor on the EnvRunner
        assert weights_equal(rb.module_state(algo, snapshot), main_at_snapshot)
        for runner_weights in env_runner_weights(algo, snapshot):
            assert weights_equal(runner_weights, main_at_snapshot)
        assert not weights_equal(rb.module_state(algo, rb.LEARNER), main_at_snapshot)
        assert callback.league.snapshot_names() == ["main_it00002", "main_it00004"]

        # the averaged policy: the mean of the newest snapshots' weights, never the learner's
        both = [rb.module_state(algo, name) for name in ("main_it00002", "main_it00004")]
        assert rb.averaged_snapshots(algo, 2) == ["main_it00002", "main_it00004"]
        state = rb.policy_state(algo, 2)
        for key, value in state.items():
            want = (np.asarray(both[0][key], np.float64) + np.asarray(both[1][key])) / 2
            np.testing.assert_allclose(value, want, rtol=1e-6, atol=1e-7)
        assert len(rb.averaged_snapshots(algo, 5)) == 2  # fewer kept: all of them
        assert rb.averaged_snapshots(algo, 1) == ["main_it00004"]
        assert weights_equal(rb.policy_state(algo, 1), both[1])
        assert rb.averaged_snapshots(algo, 0) == []  # the learner's own weights
        assert weights_equal(rb.policy_state(algo, 0), rb.module_state(algo, rb.LEARNER))
        with pytest.raises(ValueError, match="average must be an integer >= 0, got -1"):
            rb.policy_state(algo, -1)
        # ... is what the exported checkpoint holds and what plays
        from selfplay.checkpoint import load_checkpoint
        from selfplay.config import TrainConfig

        cfg = TrainConfig(game=GAME, algo="ppo", net="mlp", hidden=32, policy_average=2)
        saved = load_checkpoint(rb.export_policy(algo, tmp_path / "export", cfg))
        assert saved.counters["averaged"] == 2
        module = rb.learner_module(algo, 2)
        assert weights_equal(saved.model, module.net.state_dict())
        assert weights_equal({f"net.{k}": v for k, v in saved.model.items()}, state)

        # the picked policy: the learner and the two newest snapshots play the same games, the
        # best mean score (a tie: the newer) becomes what policy_state, evaluate and the
        # export play; the learner's own weights are untouched
        learner_weights = rb.module_state(algo, rb.LEARNER)
        picked, scores = rb.select_policy(algo, GAME, ("random",), 10, candidates=2, seed=5)
        assert list(scores) == ["main_it00002", "main_it00004", rb.LEARNER]  # oldest first
        best = max(scores.values())
        assert picked == [name for name in scores if scores[name] == best][-1]
        assert callback.policy == picked
        assert weights_equal(rb.policy_state(algo, 0), rb.module_state(algo, picked))
        assert weights_equal(rb.module_state(algo, rb.LEARNER), learner_weights)
        again = rb.evaluate(algo, GAME, ("random",), 10, seed=5)["random"]
        assert again["score"] == scores[picked]  # the same seeded games, the picked weights
        cfg = TrainConfig(game=GAME, algo="ppo", net="mlp", hidden=32, policy_select=2)
        saved = load_checkpoint(rb.export_policy(algo, tmp_path / "picked", cfg))
        assert saved.extra["policy"] == picked and saved.counters["averaged"] == 0
        assert weights_equal(
            {f"net.{k}": v for k, v in saved.model.items()}, rb.module_state(algo, picked)
        )
        with pytest.raises(ValueError, match="candidates must be an integer >= 0, got -1"):
            rb.select_policy(algo, GAME, ("random",), 10, candidates=-1)
        with pytest.raises(ValueError, match="needs at least one evaluation opponent"):
            rb.select_policy(algo, GAME, (), 10, candidates=2)

        # masking held: the strict envs would have raised, and they counted no illegal action
        illegal, steps = illegal_and_steps(algo)
        assert illegal == 0 and steps > 1000

        # opponents change only between episodes: one opponent per episode id, and what
        # RLlib ran each episode with is what the mapping said
        assert callback.total_episodes > 100
        assert all(len(opponents) == 1 for opponents in callback.assignments.values())
        assert callback.mapping_mismatches == 0
        seen = set().union(*callback.assignments.values())
        assert {rb.LEARNER, "main_it00002"} <= seen
        league = results[-1]["league"]
        assert sum(row["games"] for row in league["opponents"].values()) == callback.total_episodes

        # checkpoint, then restore into a fresh algorithm: same weights, same league, goes on
        rb.save(algo, tmp_path)
        saved = {m: rb.module_state(algo, m) for m in algo.config.policies}
        saved_iteration = algo.iteration
        saved_league = callback.league.state_dict()
        saved_results = {k: list(v) for k, v in callback.results.items()}
        for opponent, row in saved_results.items():  # the callback and the league agree
            if opponent != rb.LEARNER:  # (self-play has no payoff entry)
                assert list(callback.league.league.results.record(rb.LEARNER, opponent)) == row
    finally:
        algo.stop()
    league_json = json.loads((tmp_path / rb.LEAGUE_FILE).read_text())
    assert league_json["snapshots"] == ["main_it00002", "main_it00004"]
    assert league_json["policy"] == picked  # recorded; a resume trains and plays the learner

    restored = rb.build_ppo(GAME, mlp(), settings)
    try:
        rb.restore(restored, tmp_path)
        assert set(restored.config.policies) == set(saved)
        for module_id, weights in saved.items():
            assert weights_equal(rb.module_state(restored, module_id), weights), module_id
            for runner_weights in env_runner_weights(restored, module_id):
                assert weights_equal(runner_weights, weights), module_id
        assert restored.iteration == saved_iteration
        assert rb.driver_callback(restored).policy == rb.LEARNER
        assert rb.driver_callback(restored).league.state_dict() == saved_league
        assert rb.driver_callback(restored).results == saved_results
        restored.train()  # iteration 6: continues, and takes the next snapshot
        assert restored.iteration == saved_iteration + 1
        assert rb.driver_callback(restored).league.snapshot_names() == [
            "main_it00004",
            "main_it00006",
        ]
        assert weights_equal(rb.module_state(restored, "main_it00004"), saved["main_it00004"])
    finally:
        restored.stop()


@pytest.mark.slow
def test_greedy_snapshots_are_greedy_on_every_env_runner_and_after_resume(
    local_ray, tmp_path: Path
) -> None:
    settings = tiny_settings(num_env_runners=1, greedy_snapshots=True)
    algo = rb.build_ppo(GAME, mlp(), settings)
    try:
        algo.train()
        algo.train()  # the first snapshot
        snapshot = rb.driver_callback(algo).league.snapshot_names()[0]
        flags = algo.env_runner_group.foreach_env_runner(
            lambda er: (er.module[rb.LEARNER].greedy, er.module[snapshot].greedy)
        )
        assert flags and all(f == (False, True) for f in flags)  # the learner still samples
        algo.train()  # games against the greedy snapshot train the learner as before
        assert snapshot in set().union(*rb.driver_callback(algo).assignments.values())
        rb.save(algo, tmp_path)
    finally:
        algo.stop()
    restored = rb.build_ppo(GAME, mlp(), settings)
    try:
        rb.restore(restored, tmp_path)
        flags = restored.env_runner_group.foreach_env_runner(lambda er: er.module[snapshot].greedy)
        assert flags and all(flags)
    finally:
        restored.stop()


class NewestSnapshotLeague(rb.SelfPlayLeague):
    """A plugged-in league: always the newest frozen snapshot once there is one."""

    def __init__(self, max_snapshots: int) -> None:
        super().__init__(LeagueConfig(latest=0.5, past=0.5, max_snapshots=max_snapshots))

    def opponent_distribution(self, learner: str) -> tuple[list[str], np.ndarray]:
        names = self.snapshot_names()
        return [names[-1] if names else learner], np.ones(1)


@pytest.mark.slow
def test_train_ppo_runs_checkpoints_evaluates_and_resumes(local_ray, tmp_path: Path) -> None:
    cfg = {"game": GAME, "net": "mlp", "hidden": 32, "seed": 3, "eval_games": 10}
    # evaluated after each iteration, the mean of the two newest snapshots playing; matrix
    # products in bfloat16 (the connect_four_ppo preset's)
    settings = tiny_settings(
        snapshot_every=1, eval_every_minutes=1e-6, precision="bfloat16", policy_average=2
    )
    seen: list[int] = []
    saved: list[int] = []
    evaluations: list[tuple[int, dict]] = []
    first = rb.train_ppo(
        cfg,
        minutes=2,
        run_dir=tmp_path,
        settings=settings,
        league=NewestSnapshotLeague(max_snapshots=2),
        max_iterations=2,
        on_iteration=lambda i, _: seen.append(i),
        on_save=lambda algo: saved.append(algo.iteration),
        on_evaluation=lambda i, report: evaluations.append((i, report)),
    )
    # evaluated during training and once more at the end; the end's checkpoint was announced
    assert [i for i, _ in evaluations] == [1, 2] and saved == [2]  # (iteration 2 once)
    assert evaluations[-1][1] == first["evaluation"]
    assert first["precision"] == "bfloat16"  # what the learner's module computed in
    assert first["device"] == "cpu"  # the settings' default, where the learner's weights lay
    # the league hook decided: self-play before the first snapshot, then only the snapshot
    # (episodes started in iteration 1 may end in iteration 2, still against main)
    opponents = first["league"]["opponents"]
    assert set(opponents) == {"main", "main_it00001"} and opponents["main_it00001"]["games"] > 5
    assert seen == [1, 2] and first["iterations"] == 2
    assert np.isfinite(first["learner"]["total_loss"])
    assert (tmp_path / rb.CHECKPOINT_DIR).is_dir()
    state = json.loads((tmp_path / rb.LEAGUE_FILE).read_text())
    assert state["snapshots"] == ["main_it00001", "main_it00002"] and state["iteration"] == 2
    assert first["averaged"] == ["main_it00001", "main_it00002"]  # what the evaluation played
    report = first["evaluation"]["random"]
    assert report["games"] == 10 and report["wins"] + report["draws"] + report["losses"] == 10
    assert state["evaluation"]["random"] == report

    # a resume may change the settings: 3 snapshots kept, and the run's policy now the best
    # of the learner and the two newest snapshots (picked at the end, even without the final
    # evaluation)
    picking = dataclasses.replace(settings, policy_average=0, policy_select=2)
    from selfplay.config import TrainConfig

    exported = TrainConfig(**cfg, algo="ppo", policy_select=2)
    second = rb.train_ppo(
        cfg,
        minutes=2,
        run_dir=tmp_path,
        settings=picking,
        league=NewestSnapshotLeague(max_snapshots=3),
        resume=True,
        max_iterations=1,
        evaluate_at_end=False,
        on_save=lambda algo: rb.export_policy(algo, tmp_path, exported),
    )
    assert second["iterations"] == 3 and second["iterations_this_run"] == 1
    assert list(second["selection"]) == ["main_it00002", "main_it00003", rb.LEARNER]
    assert second["selection"][second["policy"]] == max(second["selection"].values())
    state = json.loads((tmp_path / rb.LEAGUE_FILE).read_text())
    assert state["policy"] == second["policy"] and state["selection"] == second["selection"]
    from selfplay.checkpoint import load_checkpoint

    assert load_checkpoint(tmp_path / "checkpoint.pt").extra["policy"] == second["policy"]
    # the resumed run's settings hold (3 kept), the saved snapshots and results carry on
    assert second["snapshots"] == ["main_it00001", "main_it00002", "main_it00003"]
    assert second["league"]["opponents"]["main_it00002"]["games"] > 5
    assert second["league"]["episodes"] > first["league"]["episodes"]  # tallies carried on
    with pytest.raises(ValueError, match="cannot resume"):
        rb.train_ppo(cfg, minutes=1, run_dir=tmp_path / "empty", settings=settings, resume=True)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without a GPU")
def test_learner_device_is_auto_or_refused_in_one_line_without_a_gpu() -> None:
    """auto is the CPU here; cuda without a GPU and a name torch has no use for are refused by
    `build_ppo` before it builds anything."""
    from selfplay.config import config_from_dict, load_preset

    assert rb.ppo_settings(load_preset("connect_four_ppo")).device == "cpu"  # auto, no GPU
    with pytest.raises(ValueError, match="sees no CUDA GPU"):
        rb.ppo_settings(config_from_dict({"device": "cuda"}, base=load_preset("connect_four_ppo")))
    for device, message in (
        ("cuda", r"^device 'cuda' was asked for but torch sees no CUDA GPU; use cpu or auto$"),
        ("cuda:1", r"^device 'cuda:1' was asked for but torch sees no CUDA GPU"),
        ("tpu", r"^device must be one of auto, cpu, cuda \(or cuda:N\), got 'tpu'$"),
    ):
        with pytest.raises(ValueError, match=message):
            rb.build_ppo(GAME, mlp(), tiny_settings(device=device))


@pytest.mark.slow
def test_ppo_learner_actor_trains_snapshots_and_hands_over(local_ray, tmp_path: Path) -> None:
    """learner actor: RLlib's learner runs as one remote actor (another process); snapshots
    are frozen from its weights, and its checkpoint restores into a driver learner."""
    import os

    algo = rb.build_ppo(GAME, mlp(), tiny_settings(learner="actor"))
    try:
        assert not algo.learner_group.is_local
        pids = [r.get() for r in algo.learner_group.foreach_learner(lambda _: os.getpid())]
        assert len(pids) == 1 and pids[0] != os.getpid()
        assert str(rb.learner_device(algo)) == "cpu"
        before = rb.module_state(algo, rb.LEARNER)
        algo.train()
        algo.train()  # iteration 2: a snapshot of main's weights
        main = rb.module_state(algo, rb.LEARNER)
        assert not weights_equal(before, main)
        assert weights_equal(rb.module_state(algo, "main_it00002"), main)
        rb.save(algo, tmp_path)
    finally:
        algo.stop()
    algo = rb.build_ppo(GAME, mlp(), tiny_settings(learner="driver"))
    try:
        assert algo.learner_group.is_local
        rb.restore(algo, tmp_path)
        assert weights_equal(rb.module_state(algo, rb.LEARNER), main)
        assert weights_equal(rb.module_state(algo, "main_it00002"), main)
        algo.train()
        main = rb.module_state(algo, rb.LEARNER)
        rb.save(algo, tmp_path / "driver")
    finally:
        algo.stop()
    algo = rb.build_ppo(GAME, mlp(), tiny_settings(learner="actor"))  # and back to an actor
    try:
        rb.restore(algo, tmp_path / "driver")
        assert weights_equal(rb.module_state(algo, rb.LEARNER), main)
        assert algo.iteration == 3
    finally:
        algo.stop()


@pytest.mark.gpu
def test_train_ppo_learns_on_the_gpu_and_resumes_on_the_cpu(tmp_path: Path) -> None:
    """device cuda: RLlib's learner holds and updates "main" on the GPU (the EnvRunners sample
    on the CPU), the run evaluates and checkpoints, and the checkpoint resumes on the CPU."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        cfg = {"game": GAME, "net": "mlp", "hidden": 32, "seed": 1, "eval_games": 10}
        first = rb.train_ppo(
            cfg, minutes=2, run_dir=tmp_path, settings=tiny_settings(device="cuda"),
            max_iterations=2,
        )  # fmt: skip
        assert first["device"] == "cuda:0" and first["iterations"] == 2
        assert np.isfinite(first["learner"]["total_loss"])
        assert first["evaluation"]["random"]["games"] == 10
        second = rb.train_ppo(
            cfg, minutes=2, run_dir=tmp_path, settings=tiny_settings(device="cpu"),
            resume=True, max_iterations=1,
        )  # fmt: skip
        assert second["device"] == "cpu" and second["iterations"] == 3
    finally:
        if started:
            ray.shutdown()


@pytest.mark.slow
def test_selfplay_train_algo_ppo_tracks_checkpoints_and_resumes(tmp_path: Path) -> None:
    """The CLI path: `selfplay train --algo ppo` writes W&B offline files, metrics.jsonl,
    RLlib's checkpoint and the league, and `--resume` continues the iterations."""
    import json
    import os
    import subprocess
    import sys

    run_dir = tmp_path / "ppo"
    command = [
        sys.executable, "-m", "selfplay.cli", "train", "--algo", "ppo", "--preset", "tictactoe",
        "--net", "mlp", "--minutes", "0.4", "--runs-dir", str(tmp_path), "--run-name", "ppo",
        "--eval-games", "10", "--eval-opponents", "random,solver", "--wandb", "offline",
        "--league-mix", "latest=0.8,past=0.2", "--policy-average", "2", "--snapshot-every", "1",
    ]  # fmt: skip
    env = {**os.environ, "WANDB_SILENT": "true"}
    first = subprocess.run(command, capture_output=True, text=True, timeout=400, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    device = "cuda:0" if torch.cuda.is_available() else "cpu"  # --device auto, the default
    assert f"PPO iterations (learner on {device}, " in first.stdout
    assert "evaluation: score" in first.stdout
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert any("learner/total_loss" in line for line in lines)
    # the rate and the KL penalty's weight, as RLlib used them (the preset's constant 2e-3)
    rates = {
        line["learner/default_optimizer_learning_rate"]
        for line in lines
        if "learner/default_optimizer_learning_rate" in line
    }
    assert rates and all(rate == pytest.approx(2e-3) for rate in rates)
    assert any("learner/curr_kl_coeff" in line for line in lines)
    assert any("eval/score_vs_random" in line and "eval/elo" in line for line in lines)
    assert list((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    league = json.loads((run_dir / "league.json").read_text())
    before = league["iteration"]
    assert before >= 1
    # evaluated and exported: the mean of the two newest snapshots (fewer while fewer exist)
    from selfplay.checkpoint import load_checkpoint

    averaged = min(2, len(league["snapshots"]))
    assert averaged >= 1
    assert json.loads((run_dir / "summary.json").read_text())["averaged"] == averaged
    assert load_checkpoint(run_dir / "checkpoint.pt").counters["averaged"] == averaged
    # the policy is exported for load_player / play / arena / eval: greedy, legal moves
    import selfplay

    player = selfplay.load_player(run_dir)
    assert player.simulations == 0 and player.cfg.algo == "ppo"
    analysis = player.analyse("5")
    assert analysis.action != 4 and analysis.policy[4] == 0
    assert abs(analysis.policy.sum() - 1) < 1e-5
    resume = subprocess.run(
        [sys.executable, "-m", "selfplay.cli", "train", "--resume", str(run_dir),
         "--minutes", "0.3", "--eval-games", "4"],
        capture_output=True, text=True, timeout=400, env=env,
    )  # fmt: skip
    assert resume.returncode == 0, resume.stderr[-3000:]
    after = json.loads((run_dir / "league.json").read_text())
    assert after["iteration"] > before

    # scripts/pick_policy.py: the end-of-run pick applied to this finished run afterwards,
    # exported elsewhere (the run's own export stays)
    script = Path(__file__).parents[2] / "scripts" / "pick_policy.py"
    own = load_checkpoint(run_dir / "checkpoint.pt").model
    picked_dir = tmp_path / "picked"
    pick = subprocess.run(
        [sys.executable, str(script), str(run_dir), "--candidates", "2", "--out", str(picked_dir)],
        capture_output=True, text=True, timeout=400, env=env,
    )  # fmt: skip
    assert pick.returncode == 0, pick.stderr[-3000:]
    report = json.loads(pick.stdout.strip().splitlines()[-1])
    assert list(report["scores"]) == [*after["snapshots"][-2:], rb.LEARNER]
    assert report["scores"][report["picked"]] == max(report["scores"].values())
    assert report["opponents"] == ["random", "solver"]  # the run's evaluation opponents
    saved = load_checkpoint(picked_dir / "checkpoint.pt")
    assert saved.extra["policy"] == report["picked"]
    assert weights_equal(load_checkpoint(run_dir / "checkpoint.pt").model, own)
    refused = subprocess.run(
        [sys.executable, str(script), str(run_dir), "--out", str(run_dir)],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert refused.returncode == 2 and "--out must not be the run itself" in refused.stderr
