"""Shared test setup: DDS kept on loopback with a private domain; the fixtures.

Paths and the imports of optional extras, which tests import by name, are in ``support.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support import REPO, SHARED_DATA, import_or_skip_ros, tiny_refine_args

# Before anything imports rclpy: stay on loopback, and on a domain of our own so that parallel
# runs and other ROS users on the machine never see our traffic.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))

# The shipped Fast DDS profile (large shared-memory segment for images), kept on loopback.
os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(REPO / "config" / "fastdds_shm_localhost.xml"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data folder next to the checkout (never copied into the repository)."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"real test data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def bare_clip(shared_data) -> Path:
    """A real bare-hand video clip (640x360, 30 fps): the recording most replay tests read."""
    return shared_data / "bare_hand_clips" / "hands1.webm"


@pytest.fixture(scope="module")
def models():
    """The default backend's detector and pose estimator on the CPU (one pair per test module)."""
    from hand_pose_refiner.config import ModelsConfig
    from hand_pose_refiner.models import create_backend

    return create_backend(ModelsConfig(device="cpu"))


@pytest.fixture(scope="session")
def tiny_refine_run(shared_data, tmp_path_factory) -> dict[str, object]:
    """A finished one-round refine (:func:`support.tiny_refine_args`) on four real frames of a
    bare-hand clip, saved as stills: ``out`` (the run folder), ``stills`` and what it ``printed``."""
    from contextlib import redirect_stdout
    from io import StringIO

    import cv2
    import torch

    from hand_pose_refiner.cli import main
    from hand_pose_refiner.refinement.input_spec import InputSpec
    from hand_pose_refiner.refinement.inputs import read_frames

    stills = tmp_path_factory.mktemp("stills")
    clip = shared_data / "bare_hand_clips" / "hands2.webm"
    for frame in read_frames(InputSpec(clip, stride=10, max_frames=4)):
        cv2.imwrite(str(stills / f"f{frame.index}.jpg"), cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR))
    out = tmp_path_factory.mktemp("run") / "run"
    threads = torch.get_num_threads()
    printed = StringIO()
    try:
        with redirect_stdout(printed):
            assert main(tiny_refine_args(stills, out)) == 0
    finally:
        torch.set_num_threads(threads)
    return {"out": out, "stills": stills, "printed": printed.getvalue()}


@pytest.fixture(scope="session")
def rclpy_types():
    """The rclpy message classes, with the generated hand_pose_refiner interfaces."""
    import_or_skip_ros("rclpy")
    import_or_skip_ros("hand_pose_refiner.msg")
    from hand_pose_refiner.ros.interfaces import rclpy_message_types

    return rclpy_message_types()


@pytest.fixture
def ros_context(rclpy_types):
    """A private rclpy context for nodes created inside the test, shut down afterwards."""
    rclpy = import_or_skip_ros("rclpy")
    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    rclpy.shutdown(context=context)


RTG_FOLDER = "hand_actions/rtg_object_size"
RTG_TRAIN_PARTICIPANTS = ("P1", "P2", "P3", "P4", "P6", "P7")
RTG_TEST_PARTICIPANTS = ("P5", "P8")


@pytest.fixture(scope="session")
def rtg_sequences(shared_data):
    """All real reach-to-grasp recordings (loaded in place, about 0.5 s)."""
    from hand_pose_refiner.activity.rtg_dataset import load_rtg_dataset

    return load_rtg_dataset(shared_data / RTG_FOLDER)


@pytest.fixture(scope="session")
def small_reach_split(rtg_sequences):
    """Ten real recordings of each of six participants to train on, six of two others to test on,
    through the online filters; every few repetitions, so that each person grasps all three sizes
    (the recordings are stored by size: L, then M, then S)."""
    import logging

    from hand_pose_refiner.activity.reach_data import prepare_sequence
    from hand_pose_refiner.config import Config

    logging.getLogger("hand_pose_refiner.filters").setLevel(logging.ERROR)
    config = Config()

    def spread(participants: tuple[str, ...], step: int, count: int) -> list:
        return [prepare_sequence(s, config) for p in participants
                for s in [x for x in rtg_sequences if x.participant == p][::step][:count]]

    return spread(RTG_TRAIN_PARTICIPANTS, 9, 10), spread(RTG_TEST_PARTICIPANTS, 15, 6)


@pytest.fixture(scope="session")
def small_reach_model(small_reach_split):
    """A small reach model trained on the training part of :func:`small_reach_split` (about 40 s)."""
    from hand_pose_refiner.activity.reach_fit import ReachTrainSettings
    from hand_pose_refiner.activity.reach_training import train_reach_model

    return train_reach_model(small_reach_split[0], ReachTrainSettings(epochs=20, batch_size=4, hidden=32))


@pytest.fixture
def one_torch_thread():
    """Torch on one thread for the test (model tests on a shared 2-core machine run far faster so)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)

