"""Replay on a real two-node Ray cluster (loopback): same dataset as one process, a killed worker
retried, a corrupt recording reported by name, clear errors for what cannot run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from ray_cluster import LoopbackRayCluster, _alive, loopback_env
from support import REPO, import_or_skip_cluster

from hand_pose_refiner.cli import main
from hand_pose_refiner.refinement.input_spec import InputSpec
from hand_pose_refiner.refinement.inputs import read_frames
from hand_pose_refiner.ros.bags import BagWriter

FRAMES = 24
CLIPS = ("hands1", "hands2", "hands4")


@pytest.fixture(scope="module")
def recordings(shared_data, tmp_path_factory):
    """Three small real recordings as rosbag2 (MCAP), and a corrupt ROS 1 bag."""
    folder = tmp_path_factory.mktemp("recordings")
    bags = []
    for name in CLIPS:
        path = folder / name
        with BagWriter(path, "mcap") as writer:
            for frame in read_frames(InputSpec(shared_data / "bare_hand_clips" / f"{name}.webm",
                                               max_frames=FRAMES)):
                writer.write_image("/camera/image_raw", frame.rgb, "rgb8", frame.stamp_ns, "camera")
        bags.append(path)
    corrupt = folder / "corrupt.bag"
    corrupt.write_bytes(b"#ROSBAG V2.0\n" + b"\x00garbage" * 50)
    return bags, corrupt


@pytest.fixture(scope="module")
def ray_cluster():
    """Head and second node as separate `ray start` processes on 127.0.0.1; stopped afterwards."""
    import_or_skip_cluster()
    cluster = LoopbackRayCluster()
    try:
        yield cluster.start()
    finally:
        cluster.stop()
        shutil.rmtree(cluster.temp_dir, ignore_errors=True)
    assert not [pid for pid in cluster.pids() if _alive(pid)], "Ray processes left behind"


def cli(*args):
    return [sys.executable, "-m", "hand_pose_refiner.cli", *map(str, args)]


def dataset(out):
    """What must not depend on where the shards ran: annotations, predictions, images, failures."""
    summary = json.loads((out / "summary.json").read_text())
    images = {p.name: p.read_bytes() for p in sorted((out / "images").iterdir())}
    return ((out / "annotations.json").read_bytes(), (out / "predictions.jsonl").read_bytes(), images,
            summary["failed_inputs"], summary["frames"], summary["accepted_hands"])


@pytest.mark.slow
def test_two_node_cluster_gives_the_one_process_dataset_even_when_a_worker_is_killed(
        ray_cluster, recordings, tmp_path, capsys):
    bags, corrupt = recordings
    inputs = [*bags, corrupt]
    reference = tmp_path / "reference"
    cache = tmp_path / "cache"
    assert main(["replay", *map(str, inputs), "--device", "cpu", "--quiet", "--cache-dir", str(cache),
                 "--out", str(reference)]) == 3
    capsys.readouterr()
    expected = dataset(reference)
    assert expected[4] == len(bags) * FRAMES and expected[5] > len(bags) * FRAMES
    assert [f["path"] for f in expected[3]] == [str(corrupt)]
    raylets = [pid for pid in ray_cluster.pids() if "/raylet " in f"{_cmdline(pid)} "]
    assert len(raylets) == 2  # two nodes

    clean = tmp_path / "clean"
    run = subprocess.run(cli("replay", *inputs, "--device", "cpu", "--quiet", "--ray", ray_cluster.address,
                             "--out", clean), env=ray_cluster.env, cwd=REPO, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 3, run.stderr
    assert f"FAILED {corrupt}: {corrupt}: cannot read bag" in run.stderr and "1 of 4 inputs" in run.stderr
    assert dataset(clean) == expected

    # Kill a worker while it replays a shard: Ray runs the shard again, the result is the same.
    killed_out = tmp_path / "killed"
    process = subprocess.Popen(cli("replay", *inputs, "--device", "cpu", "--quiet", "--ray",
                                   ray_cluster.address, "--out", killed_out),
                               env=ray_cluster.env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    killed = None
    deadline = time.monotonic() + 300
    while process.poll() is None and killed is None and time.monotonic() < deadline:
        busy = ray_cluster.worker_pids("ray::replay_shard")
        if busy:
            time.sleep(0.5)  # well inside the shard: decoding or running the models
            if process.poll() is None and busy[0] in ray_cluster.worker_pids("ray::replay_shard"):
                os.kill(busy[0], signal.SIGKILL)
                killed = busy[0]
        time.sleep(0.05)
    _, stderr = process.communicate(timeout=600)
    assert killed is not None, "no worker was caught mid-shard"
    assert process.returncode == 3, stderr
    assert dataset(killed_out) == expected
    assert not (tmp_path / "killed.partial").exists()

    # Recordings cut into segments (with the overlap) on the cluster: the same poses. The shards
    # cut the one-pass prediction cache, so model inference cannot differ; what may differ is the
    # tracker's running handedness vote share (docs/design/scale_out.md).
    cut = tmp_path / "cut"
    run = subprocess.run(cli("replay", *inputs, "--device", "cpu", "--quiet", "--ray", ray_cluster.address,
                             "--cache-dir", cache, "--segment-frames", "8", "--overlap-frames", "8",
                             "--out", cut), env=ray_cluster.env, cwd=REPO, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 3, run.stderr
    assert poses(cut) == poses(reference)
    assert dataset(cut)[2] == expected[2]  # the same images under the same names


def poses(out):
    document = json.loads((out / "annotations.json").read_text())
    return document["images"], [{k: v for k, v in a.items() if k != "handedness_score"}
                                for a in document["annotations"]]


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def test_an_unreachable_ray_address_is_a_clear_error_and_leaves_no_dataset(recordings, tmp_path, capsys):
    import_or_skip_cluster()
    bags, _ = recordings
    out = tmp_path / "out"
    started = time.monotonic()
    assert main(["replay", str(bags[0]), "--device", "cpu", "--quiet", "--ray", "127.0.0.1:9",
                 "--out", str(out)]) == 2
    assert time.monotonic() - started < 60
    assert "cannot reach the Ray cluster at 127.0.0.1:9" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "out.partial").exists()


def test_without_the_cluster_extra_ray_says_how_to_install_it(recordings, tmp_path):
    bags, _ = recordings
    out = tmp_path / "out"
    hide_ray = ("import sys; sys.modules['ray'] = None; from hand_pose_refiner.cli import main; "
                "sys.exit(main(sys.argv[1:]))")
    run = subprocess.run([sys.executable, "-c", hide_ray, "replay", str(bags[0]), "--ray", "local",
                          "--out", str(out)], env=loopback_env(), cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 2
    assert "pip install 'hand_pose_refiner[cluster]'" in run.stderr
    assert not out.exists()
