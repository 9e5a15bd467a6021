"""Ray cluster: the launcher file is valid; self-play actors spread over a real two-node cluster
on this machine while training progresses."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

ray = pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parents[2]


def test_cluster_yaml_passes_rays_schema() -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((ROOT / "scripts" / "cluster.yaml").read_text())
    validate_config(prepare_config(config))  # Ray's defaults filled in, then its schema
    head = config["available_node_types"][config["head_node_type"]]
    assert head["resources"]["GPU"] >= 1, "the learner runs on a GPU head"
    workers = [
        t for n, t in config["available_node_types"].items() if n != config["head_node_type"]
    ]
    assert workers and all("GPU" not in t["resources"] for t in workers)


@pytest.mark.slow
def test_self_play_actors_run_on_both_nodes(tmp_path: Path) -> None:
    from ray.cluster_utils import Cluster

    from selfplay.alphazero import AlphaZeroRun
    from selfplay.config import load_preset

    os.environ.setdefault("WANDB_SILENT", "true")
    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        cluster.wait_for_nodes()
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2
        cfg = replace(
            load_preset("tictactoe"),
            workers=2,
            games_per_worker=16,
            moves_per_call=4,
            min_replay=64,
            batch_size=64,
            eval_every_minutes=10.0,
            wandb="disabled",
            runs_dir=str(tmp_path),
            run_name="cluster",
        )
        run = AlphaZeroRun(cfg, tmp_path / "cluster")
        run.start()
        try:
            nodes = ray.get([worker.node_id.remote() for worker in run.workers])
            assert len(set(nodes)) == 2, "SPREAD puts one self-play actor on each node"
            counters = run.run(seconds=20)
            assert counters["step"] > 0 and counters["games"] > 0
        finally:
            run.close()
    finally:
        ray.shutdown()
        cluster.shutdown()
