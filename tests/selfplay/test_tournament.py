"""`selfplay eval`: round robins among baselines (fast), and through the CLI with a real trained
tic-tac-toe run (slow: one short training shared by the module)."""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from selfplay.cli import main as cli_main
from selfplay.tournament import (
    EloHistory,
    load_elo_history,
    plot_elo_over_training,
    plot_payoff,
    run_tournament,
    unique_names,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk, after checking the signature."""
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def assert_readable_png(path: Path) -> None:
    assert path.is_file(), f"{path} was not written"
    width, height = png_size(path)
    assert 400 <= width <= 3000 and 300 <= height <= 3000, (width, height)
    assert path.stat().st_size > 10_000  # a real figure, not an empty canvas


# ---- fast: baselines only ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def baseline_tournament():
    return run_tournament(["random", "solver", "mcts:20"], games=20, seed=0, game="tictactoe")


def test_round_robin_among_baselines_rates_the_solver_above_random(baseline_tournament) -> None:
    result = baseline_tournament
    assert result.game == "tictactoe"
    assert result.players == ["random", "solver", "mcts:20"]
    assert len(result.matches) == 3  # every pair once
    for match in result.matches:
        assert len(match.outcomes) == 20
        assert (match.a_seat == 0).sum() == 10  # seats alternated
    ratings = result.ratings
    assert ratings.anchor == "random" and ratings["random"].rating == 0.0
    assert ratings["solver"].rating > ratings["random"].rating
    assert ratings["solver"].ci_low > 0.0  # clearly above random, not just by noise
    assert ratings["mcts:20"].rating > ratings["random"].rating
    assert result.ranking[0] == "solver" and result.ranking[-1] == "random"
    # a perfect tic-tac-toe player never loses
    for opponent in ("random", "mcts:20"):
        wins, draws, losses = result.results.record("solver", opponent)
        assert losses == 0 and wins + draws == 20


def test_pairwise_results_are_symmetric(baseline_tournament) -> None:
    result = baseline_tournament
    names = result.players
    for a in names:
        for b in names:
            if a == b:
                continue
            wins, draws, losses = result.results.record(a, b)
            assert result.results.record(b, a) == (losses, draws, wins)
            assert wins + draws + losses == 20
            assert result.score(a, b) + result.score(b, a) == pytest.approx(1.0)
    matrix = result.score_matrix()
    assert np.isnan(np.diag(matrix)).all()
    off = ~np.eye(len(names), dtype=bool)
    np.testing.assert_allclose((matrix + matrix.T)[off], 1.0)
    # the matrix follows the ranking, best first: the solver's row scores at least 1/2
    assert result.ranking[0] == "solver" and np.nanmin(matrix[0]) >= 0.5


def test_table_and_dict(baseline_tournament) -> None:
    result = baseline_tournament
    text = result.table()
    assert "random (anchor)" in text and "±CI95" in text
    lines = text.splitlines()
    solver_row = next(line for line in lines if line.startswith("1 solver"))
    assert solver_row.split()[2] == "-"  # the diagonal
    data = json.loads(json.dumps(result.to_dict()))  # JSON-able
    assert data["games_per_pair"] == 20
    assert {(p["a"], p["b"]) for p in data["pairs"]} == {
        ("random", "solver"),
        ("random", "mcts:20"),
        ("solver", "mcts:20"),
    }
    assert [p["player"] for p in data["ratings"]["players"]] == result.ranking
    scores = data["score_matrix"]["scores"]
    assert scores[0][0] is None and scores[0][1] == pytest.approx(result.score("solver", "mcts:20"))


def test_without_random_the_ratings_are_centred() -> None:
    result = run_tournament(["solver", "mcts:10"], games=6, seed=1, game="tictactoe")
    assert result.ratings.anchor is None
    assert sum(p.rating for p in result.ratings.players) == pytest.approx(0.0, abs=1e-6)
    assert result.ratings["solver"].rating >= result.ratings["mcts:10"].rating


def test_payoff_plot(baseline_tournament, tmp_path: Path) -> None:
    path = plot_payoff(baseline_tournament, tmp_path / "payoff.png")
    assert_readable_png(path)


def test_elo_history_from_metrics_jsonl_and_its_plot(tmp_path: Path) -> None:
    run = tmp_path / "c4-run"
    run.mkdir()
    lines = [
        {"step": 100, "learner/loss": 1.0},
        {"step": 200, "eval/elo": 150.0, "eval/elo_ci": 80.0},
        {"step": 400, "eval/elo": 420.0, "eval/elo_ci": 60.0},
    ]
    (run / "metrics.jsonl").write_text(
        "\n".join(json.dumps(x) for x in lines) + '\n{"step": 5', encoding="utf-8"
    )  # a killed run's half-written last line is skipped
    history = load_elo_history(run)
    assert history is not None
    assert history.name == "c4-run" and history.source == "metrics.jsonl"
    np.testing.assert_array_equal(history.steps, [200, 400])
    np.testing.assert_array_equal(history.elo, [150, 420])
    np.testing.assert_array_equal(history.ci, [80, 60])
    assert load_elo_history(tmp_path) is None  # no checkpoint, no metrics
    other = EloHistory("b", np.array([0.0, 300.0]), np.array([0.0, 250.0]), np.full(2, np.nan), "x")
    assert_readable_png(plot_elo_over_training([history, other], tmp_path / "elo.png"))
    assert_readable_png(plot_elo_over_training([], tmp_path / "empty.png"))


def test_unique_names() -> None:
    assert unique_names(["a", "a", "b", "a"]) == ["a", "a-2", "b", "a-3"]
    assert unique_names(["random", "x"], taken=["random"]) == ["random-2", "x"]


# ---- fast: bad input --------------------------------------------------------------------------


def test_run_tournament_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="games per pair must be an integer >= 1, got 0"):
        run_tournament(["random", "solver"], games=0, game="tictactoe")
    with pytest.raises(ValueError, match="at least two participants, got 1"):
        run_tournament(["random"], games=2, game="tictactoe")
    with pytest.raises(ValueError, match=r"given more than once: \['random'\]"):
        run_tournament(["random", "random"], games=2, game="tictactoe")
    with pytest.raises(ValueError, match="no game to play"):
        run_tournament(["random", "solver"], games=2)
    with pytest.raises(ValueError, match="'solver' plays only tictactoe, not 'connect_four'"):
        run_tournament(["random", "solver"], games=2, game="connect_four")
    with pytest.raises(ValueError, match="unknown player 'best'"):
        run_tournament(["random", "best"], games=2, game="tictactoe")
    mixed = [
        SimpleNamespace(name="ttt", cfg=SimpleNamespace(game="tictactoe")),
        SimpleNamespace(name="c4", cfg=SimpleNamespace(game="connect_four")),
    ]
    with pytest.raises(
        ValueError, match=r"different games: ttt \(tictactoe\), c4 \(connect_four\)"
    ):
        run_tournament(mixed, games=2)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--game", "tictactoe", "--baselines", "random,solver", "--games", "0"], "got 0"),
        (["--game", "tictactoe", "--baselines", "random,bogus:3"], "unknown player 'bogus:3'"),
        (["--game", "connect_four", "--baselines", "random,solver"], "plays only tictactoe"),
        (["--game", "tictactoe", "--baselines", "random"], "at least two participants, got 1"),
        (["--game", "tictactoe", "--baselines", "random,solver,random"], "more than once"),
        (["--baselines", "random,solver"], "no game to play"),
        (["/no/such/run", "--baselines", "random"], "/no/such/run"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(argv, message, capsys, tmp_path) -> None:
    code = cli_main(["eval", *argv, "--out", str(tmp_path / "out"), "--wandb", "disabled"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("selfplay: error:")
    assert message in err
    assert not (tmp_path / "out").exists()  # refused before any work


def test_cli_refuses_a_directory_without_checkpoint(capsys, tmp_path) -> None:
    code = cli_main(["eval", str(tmp_path), "--baselines", "random", "--wandb", "disabled"])
    err = capsys.readouterr().err
    assert code == 2 and f"no checkpoint in run directory {tmp_path}" in err


# ---- slow: a real trained run through the CLI ------------------------------------------------


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    ray = pytest.importorskip("ray")
    from selfplay.alphazero import train
    from selfplay.config import load_preset

    os.environ.setdefault("WANDB_SILENT", "true")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        tmp = tmp_path_factory.mktemp("runs")
        cfg = replace(
            load_preset("tictactoe"),
            minutes=0.3,
            games_per_worker=16,
            moves_per_call=4,
            min_replay=64,
            batch_size=64,
            eval_every_minutes=0.1,
            eval_games=10,
            wandb="disabled",
            runs_dir=str(tmp),
            run_name="a",
        )
        summary = train(cfg)
    finally:
        if started:
            ray.shutdown()
    return Path(summary["run_dir"])


@pytest.mark.slow
def test_cli_eval_of_a_trained_run(trained_run: Path, capsys) -> None:
    metrics_before = (trained_run / "metrics.jsonl").read_bytes()
    summary_before = (trained_run / "summary.json").read_bytes()
    code = cli_main(
        ["eval", str(trained_run), "--baselines", "random,solver", "--games", "10", "--seed", "3"]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "random (anchor)" in out and "row player's score" in out

    data = json.loads((trained_run / "tournament.json").read_text())
    assert data["game"] == "tictactoe" and data["games_per_pair"] == 10
    assert sorted(data["players"]) == ["a", "random", "solver"]
    kinds = {p["name"]: p["kind"] for p in data["participants"]}
    assert kinds == {"a": "trained", "random": "baseline", "solver": "baseline"}
    assert len(data["pairs"]) == 3 and all(p["games"] == 10 for p in data["pairs"])
    ratings = {p["player"]: p for p in data["ratings"]["players"]}
    assert data["ratings"]["anchor"] == "random" and ratings["random"]["rating"] == 0.0
    assert ratings["solver"]["rating"] > 0.0
    for p in ratings.values():
        assert p["ci_low"] <= p["rating"] <= p["ci_high"]
    solver_vs_a = next(p for p in data["pairs"] if {p["a"], p["b"]} == {"a", "solver"})
    solver_losses = solver_vs_a["losses"] if solver_vs_a["a"] == "solver" else solver_vs_a["wins"]
    assert solver_losses == 0  # the solver never loses, even to a trained agent

    assert_readable_png(trained_run / "payoff.png")
    assert_readable_png(trained_run / "elo_over_training.png")
    tracking = trained_run / "eval"
    offline = list((tracking / "wandb").glob("offline-run-*/run-*.wandb"))
    assert offline, "an offline W&B run was written"
    media = offline[0].parent / "files" / "media"
    assert len(list(media.glob("images/tournament/*.png"))) == 2
    assert list(media.glob("table/tournament/elo_table*.table.json"))
    logged = json.loads((tracking / "metrics.jsonl").read_text().splitlines()[-1])
    assert logged["tournament/elo/solver"] == pytest.approx(ratings["solver"]["rating"])
    # the training run's own files are left alone
    assert (trained_run / "metrics.jsonl").read_bytes() == metrics_before
    assert (trained_run / "summary.json").read_bytes() == summary_before


@pytest.mark.slow
def test_elo_history_of_a_trained_run(trained_run: Path) -> None:
    history = load_elo_history(trained_run)
    assert history is not None and history.source == "checkpoint" and history.name == "a"
    assert len(history.steps) >= 1 and np.all(np.diff(history.steps) >= 0)
    assert np.all(np.isfinite(history.elo)) and np.all(history.ci > 0)


@pytest.mark.slow
def test_cli_two_copies_of_a_run_get_unique_names(trained_run: Path, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    argv = [str(trained_run), str(trained_run / "checkpoint.pt"), "--baselines", "random"]
    code = cli_main(["eval", *argv, "--games", "4", "--out", str(out), "--wandb", "disabled"])
    assert code == 0, capsys.readouterr().err
    data = json.loads((out / "tournament.json").read_text())
    assert data["players"] == ["a", "a-2", "random"]
    assert not math.isnan(data["ratings"]["players"][0]["rating"])
    assert_readable_png(out / "elo_over_training.png")
    assert not (out / "eval" / "wandb").exists()  # --wandb disabled


@pytest.mark.slow
def test_cli_refuses_mixing_games(trained_run: Path, tmp_path, capsys) -> None:
    argv = ["eval", str(trained_run), "--game", "connect_four", "--baselines", "random"]
    code = cli_main([*argv, "--out", str(tmp_path / "o"), "--wandb", "disabled"])
    err = capsys.readouterr().err
    assert code == 2 and "a (tictactoe)" in err and "connect_four" in err
