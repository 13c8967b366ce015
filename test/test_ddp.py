"""Data-parallel fine-tuning with real torch.distributed processes (gloo on CPU, torchrun)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from support import REPO

from hand_pose_refiner.cli import main
from hand_pose_refiner.config import ModelsConfig
from hand_pose_refiner.models import create_backend

# Two processes on one global batch of 8 give the one-process loss curve up to float
# reduction order, which Adam amplifies on near-zero gradients: measured within 1e-5 (relative)
# on one machine, and 3.7e-3 by the third epoch on another, where torch runs its AVX-512
# kernels (other rounding); allowed 1e-2. A rank that trained apart from the other, or on the
# whole batch, would follow another curve altogether.
TOLERANCE = 1e-2
# How far apart the two runs' weights may end, as a part of how far training moved them: 0.04
# measured (0.07 of 1.7); a rank trained apart would end about as far as training moved them.
MAX_APART = 0.1


def _distance(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> float:
    """Euclidean distance between two sets of weights with the same names."""
    return float(sum(float(((first[k] - second[k]) ** 2).sum()) for k in first) ** 0.5)


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fine_tune(coco, out, processes):
    out.mkdir()
    launcher = [sys.executable] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(processes),
        "--master-addr", "127.0.0.1", "--master-port", str(_free_port())]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    run = subprocess.run([*launcher, str(REPO / "test" / "ddp_fine_tune.py"), str(coco), str(out)],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads((out / "report.json").read_text())


@pytest.mark.slow
def test_two_gloo_processes_follow_the_one_process_loss_curve_and_write_one_checkpoint(shared_data, tmp_path):
    coco = shared_data / "labelled_hands" / "onehand10k" / "test_onehand10k.json"
    one = fine_tune(coco, tmp_path / "one", 1)
    two = fine_tune(coco, tmp_path / "two", 2)
    assert (one["world_size"], two["world_size"]) == (1, 2)
    assert one["global_batch"] == two["global_batch"] == 8
    for network in ("estimator", "detector"):
        curve_one = [one[network]["initial_loss"], *one[network]["train_loss"], *one[network]["fit_loss"]]
        curve_two = [two[network]["initial_loss"], *two[network]["train_loss"], *two[network]["fit_loss"]]
        assert len(curve_one) == len(curve_two) == 7
        assert curve_two == pytest.approx(curve_one, rel=TOLERANCE), network
        trained = one[network]["fit_loss"][-1]
        assert trained != pytest.approx(one[network]["initial_loss"], rel=1e-3)  # the weights moved
    # One writer: each epoch's checkpoint once, the final weights once, nothing half-written.
    checkpoints = sorted(p.name for p in (tmp_path / "two" / "checkpoints").iterdir())
    assert checkpoints == [f"{name}-epoch{e:03d}.safetensors" for name in ("hand_landmark", "palm_detection")
                           for e in (1, 2, 3)]
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["checkpoints", "estimator.safetensors",
                                                                     "report.json"]
    # The single-process format, and the weights of the one-process run. Adam divides by the
    # gradients' running magnitude, so float noise on a near-zero gradient can move one weight by a
    # whole step either way; compared over all weights, the two runs' difference stays a small part
    # of how far training moved them. A rank that trained apart would differ by about as much as
    # training moved them.
    weights_one = load_file(tmp_path / "one" / "estimator.safetensors")
    weights_two = load_file(tmp_path / "two" / "estimator.safetensors")
    assert weights_one.keys() == weights_two.keys()
    _, initial = create_backend(ModelsConfig(device="cpu"))
    initial.save(tmp_path / "initial.safetensors")
    weights_initial = load_file(tmp_path / "initial.safetensors")
    apart = _distance(weights_one, weights_two)
    moved = _distance(weights_one, weights_initial)
    assert apart < MAX_APART * moved, f"runs {apart:.3g} apart; training moved the weights {moved:.3g}"
    from hand_pose_refiner.models.mediapipe import MediaPipePoseEstimator

    MediaPipePoseEstimator(tmp_path / "two" / "estimator.safetensors", device="cpu")


def test_more_processes_per_node_than_devices_is_refused(shared_data, tmp_path, capsys):
    stills = shared_data / "hags_gloved_assembly" / "top_view" / "gloved"
    too_many = (torch.cuda.device_count() if torch.cuda.is_available() else os.cpu_count()) + 1
    out = tmp_path / "run"
    assert main(["refine", str(stills), "--stills", "--out", str(out), "--device", "cpu",
                 "--nproc-per-node", str(too_many)]) == 2
    err = capsys.readouterr().err
    assert f"--nproc-per-node {too_many}: this node has only {too_many - 1} CPU cores" in err
    assert not out.exists()


@pytest.mark.slow
def test_refine_with_two_processes_per_node_trains_under_torchrun_and_rank_0_records(shared_data, tmp_path):
    stills = shared_data / "hags_gloved_assembly" / "top_view" / "gloved"
    labelled = shared_data / "labelled_hands" / "onehand10k" / "test_onehand10k.json"
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = ["refine", str(stills), "--stills", "--max-frames", "8", "--iterations", "1", "--epochs", "1",
            "--train-batch-size", "4", "--samples-per-image", "1", "--device", "cpu", "--quiet",
            "--labelled", str(labelled), "--nproc-per-node", "2", "--master-port", str(_free_port()),
            "--out", str(out)]
    run = subprocess.run([sys.executable, "-m", "hand_pose_refiner.cli", *args], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "OMP_NUM_THREADS" in run.stderr  # torchrun's banner: the processes came from torchrun
    state = json.loads((out / "state.json").read_text())
    assert [s["name"] for s in state["steps"]] == ["iter0/evaluate", "iter1/pseudo_labels", "iter1/detector",
                                                   "iter1/estimator", "iter1/evaluate"]
    for network in ("detector", "estimator"):
        result = state["steps"][2 if network == "detector" else 3]["result"]
        assert result["weights"] == f"iter1/{network}.safetensors" and "sha256" in result
    assert not list(out.rglob("*.tmp")) and not list(out.rglob("*.partial"))
