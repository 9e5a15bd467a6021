"""Where the learner goes on a cluster whose GPU this machine lacks: a real local Ray that
declares one GPU (Ray schedules by declared resources; torch here sees none), so the learner's
GPU request is visible without a GPU."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
import torch

ray = pytest.importorskip("ray")

import selfplay.rllib_bridge as rb  # noqa: E402
from selfplay.alphazero import AlphaZeroRun  # noqa: E402
from selfplay.config import load_preset  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_declaring_a_gpu():
    if torch.cuda.is_available():
        pytest.skip("needs a machine whose torch sees no GPU")
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_auto_sends_the_alphazero_learner_to_the_clusters_gpu(
    ray_declaring_a_gpu, tmp_path: Path
) -> None:
    cfg = replace(
        load_preset("tictactoe"), ray_address="auto", wandb="disabled",
        runs_dir=str(tmp_path), run_name="gpu",
    )  # fmt: skip
    run = AlphaZeroRun(cfg, tmp_path / "gpu")
    assert run.placement is None  # no GPU here, a cluster joined: its GPUs decide
    with pytest.raises(ValueError) as info:
        run.start()
    # the actor was built for the cluster's GPU (device cuda); torch in it finds none
    assert str(info.value) == (
        "the learner actor did not start (auto device, 1 GPUs in the cluster): ValueError: "
        "device 'cuda' was asked for but torch sees no CUDA GPU; use cpu or auto"
    )
    assert ray.is_initialized()  # not this run's Ray: left running
    run = AlphaZeroRun(replace(cfg, learner="driver"), tmp_path / "gpu")
    run.start()
    try:
        where = run.learner.where()
        assert (where["device"], where["pid"]) == ("cpu", os.getpid())
    finally:
        run.close()


def test_auto_gives_rllibs_learner_the_clusters_gpu(ray_declaring_a_gpu) -> None:
    settings = rb.PPOSettings(learner="auto", device="auto")
    assert rb._learner_resources(settings, "auto") == {
        "num_learners": 1, "num_cpus_per_learner": 0, "num_gpus_per_learner": 1,
    }  # fmt: skip
    embedded = {"num_learners": 0, "num_gpus_per_learner": 0, "local_gpu_idx": 0}
    assert rb._learner_resources(settings, "") == embedded  # the cluster is this machine
    assert rb._learner_resources(replace(settings, learner="driver"), "auto") == embedded
    assert rb._learner_resources(replace(settings, learner="actor", device="cpu"), "auto") == {
        "num_learners": 1, "num_cpus_per_learner": 0, "num_gpus_per_learner": 0,
    }  # fmt: skip
    with pytest.raises(ValueError, match="^device 'cuda' was asked for but torch sees no"):
        rb._learner_resources(replace(settings, learner="driver", device="cuda"), "auto")
