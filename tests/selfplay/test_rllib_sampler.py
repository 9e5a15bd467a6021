"""The batched EnvRunner: move by move what RLlib's PettingZoo wrapper reports, episodes built
like RLlib's own EnvRunner builds them, and PPO training on them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

ray = pytest.importorskip("ray")

import envs  # noqa: E402
from selfplay import rllib_bridge as rb  # noqa: E402
from selfplay import rllib_sampler as rs  # noqa: E402

AGENTS = ["player_0", "player_1"]


def assert_same_obs(got: dict, want: dict) -> None:
    assert list(got) == list(want)  # same agents, same order
    for agent in want:
        for key in ("observation", "action_mask"):
            a, b = got[agent][key], want[agent][key]
            assert a.dtype == b.dtype and a.shape == b.shape, (agent, key)
            assert np.array_equal(a, b), (agent, key)


@pytest.mark.parametrize("game", ["connect_four", "tictactoe"])
def test_transition_is_what_rllibs_pettingzoo_env_reports(game: str) -> None:
    """Random games played on a core and through RLlib's wrapper of our AEC view, side by
    side: the same observations, rewards and flags after every move, wins and draws alike."""
    rng = np.random.default_rng(0)
    outcomes = set()
    for _ in range(60):
        env = rb.make_env({"game": game})
        core = envs.make(game, 1)
        obs, infos = env.reset()
        planes, legal = rs.observations(core)
        mover = AGENTS[core.current_player()[0]]
        assert infos == {}
        assert_same_obs(obs, {mover: {"observation": planes[0], "action_mask": legal[0]}})
        while True:
            action = int(rng.choice(np.flatnonzero(legal[0])))
            got = env.step({mover: action})
            rewards, done = core.step(np.array([action]))
            planes, legal = rs.observations(core)
            nxt = int(core.current_player()[0])
            want = rs.transition(AGENTS, planes[0], legal[0], rewards[0], bool(done[0]), nxt)
            assert_same_obs(got[0], want[0])
            assert got[1:4] == want[1:4]  # rewards, terminateds, truncateds
            assert got[4] == {agent: {} for agent in want[0]}  # infos
            if done[0]:
                outcomes.add(tuple(want[1][a] for a in AGENTS))
                break
            mover = AGENTS[nxt]
    assert {(1.0, -1.0), (-1.0, 1.0)} <= outcomes  # both seats won somewhere


def test_openings_have_0_to_k_plies_and_never_end_the_game() -> None:
    core = envs.make("tictactoe", 400)
    rs.opening_positions(core, np.arange(400), 5, np.random.default_rng(1))
    assert set(core.moves.tolist()) == {0, 1, 2, 3, 4, 5}
    assert not core.terminated.any()
    core.step(core.random_legal_actions(np.random.default_rng(2)))  # every game still playable
    some = np.array([3, 7])
    rs.opening_positions(core, some, 0, np.random.default_rng(3))
    assert core.moves[some].tolist() == [0, 0]  # k = 0: the empty board
    assert (core.moves[np.setdiff1d(np.arange(400), some)] >= 1).all()  # the others untouched


def settings(sampler: str) -> rb.PPOSettings:
    return rb.PPOSettings(
        train_batch_size=256,
        minibatch_size=64,
        num_epochs=2,
        num_env_runners=0,
        num_envs_per_env_runner=8,
        self_play=0.5,
        max_snapshots=2,
        snapshot_every=1,
        opening_plies=2,
        sampler=sampler,
        seed=3,
    )


def columns(episode) -> dict[str, tuple]:
    """What the learner reads of one agent's (numpy'd) episode: dtype and shape per column."""
    obs = episode.get_observations()
    out = {f"obs/{k}": (v.dtype, v.shape[1:]) for k, v in obs.items()}
    out["actions"] = (episode.get_actions().dtype, episode.get_actions().shape[1:])
    out["rewards"] = (episode.get_rewards().dtype, episode.get_rewards().shape[1:])
    for key in episode.extra_model_outputs:
        value = episode.get_extra_model_outputs(key)
        out[key] = (value.dtype, value.shape[1:])
    return out


def test_an_unknown_sampler_is_refused_before_anything_is_built() -> None:
    network = rb.network_config_for_game("tictactoe", "mlp", hidden=(8,))
    with pytest.raises(ValueError, match="sampler must be one of batched, rllib, got 'fast'"):
        rb.build_ppo("tictactoe", network, settings("fast"))


def test_batched_runner_builds_rllibs_episodes_and_ppo_trains_on_them(local_ray) -> None:
    network = rb.network_config_for_game("tictactoe", "mlp", hidden=(32, 32))
    reference = rb.build_ppo("tictactoe", network, settings("rllib"))
    try:
        assert type(reference.env_runner) is rb.MultiAgentEnvRunner
        want = columns(
            next(iter(reference.env_runner.sample(num_timesteps=64)[0].agent_episodes.values()))
        )
    finally:
        reference.stop()

    algo = rb.build_ppo("tictactoe", network, settings("batched"))
    try:
        runner = algo.env_runner
        assert isinstance(runner, rs.BatchedSelfPlayEnvRunner)
        algo.train()  # a snapshot joins the league: games against it from now on
        # force_reset: every game starts with the weights in place now (a game running across
        # a weight update mixes the two policies' steps, as RLlib's episode chunks do)
        episodes = runner.sample(num_timesteps=300, force_reset=True)
        assert sum(e.env_steps() for e in episodes) >= 300
        used = set()
        for episode in episodes:
            assert episode.is_done and set(episode.agent_episodes) == set(AGENTS)
            returns = {a: float(e.get_return()) for a, e in episode.agent_episodes.items()}
            assert sum(returns.values()) == 0 and set(returns.values()) <= {-1.0, 0.0, 1.0}
            for agent, single in episode.agent_episodes.items():
                assert columns(single) == want, agent
                module_id = episode.module_for(agent)
                used.add(module_id)
                # the stored log-probabilities are the module's for the stored actions
                module = runner.module[module_id]
                obs = single.get_observations()
                batch = {
                    "obs": {k: torch.from_numpy(v[:-1]) for k, v in obs.items()},
                }
                with torch.no_grad():
                    logits = module.forward_exploration(batch)["action_dist_inputs"]
                actions = torch.from_numpy(single.get_actions()).long()
                logp = torch.log_softmax(logits, -1).gather(1, actions[:, None])[:, 0]
                stored = torch.from_numpy(single.get_extra_model_outputs("action_logp"))
                assert torch.allclose(logp, stored, atol=1e-5)
                legal = obs["action_mask"][:-1]
                assert legal[np.arange(len(actions)), actions.numpy()].all()
                assert not obs["action_mask"][-1].any()  # the final observation: game over
        assert len(used) == 2  # the learner and the frozen snapshot both played
        result = algo.train()
        stats = result["learners"][rb.LEARNER]
        assert all(np.isfinite(stats[k]) for k in ("total_loss", "vf_loss", "mean_kl_loss"))
        sampled = result["env_runners"]
        assert sampled["num_env_steps_sampled"] >= 256 and sampled["num_episodes"] > 0
        assert np.isfinite(sampled["episode_len_mean"])
        assert runner.checked_actions > 500
    finally:
        algo.stop()


def test_games_against_an_evicted_snapshot_start_over(local_ray) -> None:
    """One snapshot kept, a new one every iteration: each eviction leaves running games
    against a module that is gone. They must start over, not reach the learner (whose
    advantage estimation would find no such module)."""
    network = rb.network_config_for_game("tictactoe", "mlp", hidden=(16,))
    algo = rb.build_ppo(
        "tictactoe",
        network,
        rb.PPOSettings(
            train_batch_size=128,
            minibatch_size=64,
            num_epochs=1,
            num_env_runners=0,
            num_envs_per_env_runner=16,
            self_play=0.0,  # every game against the one snapshot
            max_snapshots=1,
            snapshot_every=1,
            sampler="batched",
            seed=5,
        ),
    )
    try:
        for _ in range(6):
            algo.train()
        runner = algo.env_runner
        present = set(runner.module.keys())  # the last train() evicted one snapshot again
        dropped = runner.dropped_games
        episodes = runner.sample(num_timesteps=64)
        assert dropped > 0 and runner.dropped_games > dropped
        for episode in episodes + runner._games:  # returned or running: modules that exist
            assert {episode.module_for(agent) for agent in AGENTS} <= present
    finally:
        algo.stop()


class StepCounter(rb.RLlibCallback):
    """Records every on_episode_step and on_episode_end call: (which, episode id, env steps)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str, int]] = []

    def on_episode_step(self, *, episode, **kwargs) -> None:
        self.calls.append(("step", episode.id_, episode.env_steps()))

    def on_episode_end(self, *, episode, **kwargs) -> None:
        self.calls.append(("end", episode.id_, episode.env_steps()))


def test_on_episode_step_is_made_when_a_callback_asks_for_it(local_ray) -> None:
    """No on_episode_step by default (ours do not use it); a callback that overrides it gets
    one call per game per move, after the move is recorded and before on_episode_end."""
    network = rb.network_config_for_game("tictactoe", "mlp", hidden=(8,))
    algo = rb.build_ppo("tictactoe", network, settings("batched"))
    try:
        runner = algo.env_runner
        assert isinstance(runner, rs.BatchedSelfPlayEnvRunner) and not runner.step_callbacks
        counter = StepCounter()
        runner._callbacks.append(counter)
        assert runner.step_callbacks
        episodes = runner.sample(num_timesteps=100, force_reset=True)
        moves = sum(e.env_steps() for e in episodes) + sum(g.env_steps() for g in runner._games)
        steps = [c for c in counter.calls if c[0] == "step"]
        assert len(steps) == moves
        for episode in episodes:
            mine = [c for c in counter.calls if c[1] == episode.id_]
            n = episode.env_steps()
            # one call per move, each seeing the move already recorded, then the end
            assert mine == [("step", episode.id_, t) for t in range(1, n + 1)] + [
                ("end", episode.id_, n)
            ]
    finally:
        algo.stop()
