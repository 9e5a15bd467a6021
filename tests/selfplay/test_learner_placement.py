"""Where the learner goes on a cluster whose GPU this machine lacks: a real local Ray that
declares one GPU (Ray schedules by declared resources; torch here sees none), so the learner's
GPU request is visible without a GPU."""

from __future__ import annotations

import os
import re
import subprocess
import sys
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
    # the actor was built for the cluster's GPU (device cuda, one GPU of Ray's: the one
    # declared); torch in it finds none
    assert re.fullmatch(
        r"the learner actor did not start: ValueError: device cuda was asked for but torch "
        r"here sees no CUDA GPU \(torch \S+, CUDA_VISIBLE_DEVICES '0'\); use --device cpu or "
        r"--learner driver",
        str(info.value),
    ), str(info.value)
    assert ray.is_initialized()  # not this run's Ray: left running
    run = AlphaZeroRun(replace(cfg, learner="driver"), tmp_path / "gpu")
    run.start()
    try:
        where = run.learner.where()
        assert (where["device"], where["pid"]) == ("cpu", os.getpid())
    finally:
        run.close()


def test_a_learner_actor_is_refused_while_the_clusters_gpus_are_taken(
    ray_declaring_a_gpu, tmp_path: Path
) -> None:
    @ray.remote(num_gpus=1)
    class Holder:  # another job's use of the cluster's only GPU
        def ready(self) -> bool:
            return True

    holder = Holder.remote()
    ray.get(holder.ready.remote())
    try:
        cfg = replace(
            load_preset("tictactoe"), learner="actor", device="cuda", wandb="disabled",
            runs_dir=str(tmp_path), run_name="taken",
        )  # fmt: skip
        with pytest.raises(ValueError) as info:
            AlphaZeroRun(cfg, tmp_path / "taken").start()
        taken = (
            "the learner actor needs a GPU and the Ray cluster's 1 are all taken; free one, or "
            "keep the learner here with --learner driver"
        )
        assert str(info.value) == taken
        with pytest.raises(ValueError) as info:  # RLlib's learner actor too
            rb._learner_resources(rb.PPOSettings(learner="actor", device="cuda"), "auto")
        assert str(info.value) == taken
    finally:
        ray.kill(holder)


def test_a_refusal_shuts_down_the_ray_the_run_started(tmp_path: Path) -> None:
    """In a fresh process: Ray embedded by the run, a learner actor with device cuda refused,
    and that Ray shut down again."""
    script = (
        "import sys; from dataclasses import replace; from pathlib import Path; import ray\n"
        "from selfplay.alphazero import AlphaZeroRun; from selfplay.config import load_preset\n"
        "cfg = replace(load_preset('tictactoe'), learner='actor', device='cuda', "
        "wandb='disabled', runs_dir=sys.argv[1], run_name='r')\n"
        "try:\n    AlphaZeroRun(cfg, Path(sys.argv[1]) / 'r').start()\n"
        "except ValueError as error:\n    print('refused:', error)\n"
        "print('ray running:', ray.is_initialized())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[-2:] == [
        "refused: device cuda was asked for the learner actor, but the Ray cluster has no GPU; "
        "use cpu or auto",
        "ray running: False",
    ]
    assert not (tmp_path / "r").exists()


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
