"""The Python API (HandPipeline) on real images and a real clip, against the live graph's chain."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch
from helpers import labelled_pck
from support import REPO

import hand_pose_refiner
from hand_pose_refiner import HandPipeline
from hand_pose_refiner.coco import load_coco
from hand_pose_refiner.errors import (
    HandPoseRefinerError,
    ImageSizeError,
    InputError,
    UnsupportedEncodingError,
)
from hand_pose_refiner.filters.pipeline import PoseFilterPipeline
from hand_pose_refiner.filters.temporal import FilterMode
from hand_pose_refiner.hands import FrameHands
from hand_pose_refiner.refinement.input_spec import InputSpec
from hand_pose_refiner.refinement.inputs import read_frames

LABELLED = (("onehand10k/test_onehand10k.json", False), ("rhd/test_rhd.json", True))
CLIP = "bare_hand_clips/hands1.webm"
CLIP_FRAMES = 30
# bench/pck_labelled_hands.py: the default models find every labelled hand, PCK@0.2 = 1.000.
BENCH_PCK = 1.0


@pytest.fixture(scope="module")
def pipeline():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # far faster on the shared 2-core machine
    yield HandPipeline(device="cpu")
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def labelled(shared_data):
    return [item for name, tip_first in LABELLED
            for item in load_coco(shared_data / "labelled_hands" / name, tip_first=tip_first)]


@pytest.fixture(scope="module")
def clip_frames(shared_data):
    """The clip's first frames as replay decodes them: (stamp_ns, RGB) with the container's stamps."""
    spec = InputSpec(shared_data / CLIP, max_frames=CLIP_FRAMES)
    return [(frame.stamp_ns, frame.rgb) for frame in read_frames(spec)]


def test_labelled_hands_are_found_as_well_as_the_benchmark_finds_them(pipeline, labelled):
    found = [pipeline(str(item.path)) for item in labelled]  # a path: read as cv2.imread reads
    assert all(len(hands) >= 1 for hands in found)
    assert labelled_pck(found, labelled) >= BENCH_PCK
    assert all((hands.track_ids == -1).all() for hands in found)


def test_bgr_and_rgb_inputs_give_the_same_hands(pipeline, labelled):
    bgr = cv2.imread(str(labelled[0].path))
    from_bgr = pipeline(bgr)
    from_rgb = pipeline(np.ascontiguousarray(bgr[..., ::-1]), color="rgb")
    assert len(from_bgr) == 1 and from_bgr.equals(from_rgb)
    assert not pipeline(bgr, color="rgb").equals(from_bgr)  # the keyword really picks the order


def _live_graph_rule(pipeline: HandPipeline, frames: list) -> list[FrameHands]:
    """The live graph on these frames, written out: the pose node follows the previous frame's
    hands (within the gap, detections only while fewer than max_hands are followed), then the
    spatial filter, tracker and online temporal filter."""
    config, detector, estimator = pipeline.config, pipeline.detector, pipeline.estimator
    gap_ns = round(config.models.landmark_tracking_max_gap_s * 1e9)
    chain = PoseFilterPipeline(config, FilterMode.ONLINE)
    previous, released = None, []
    for stamp_ns, rgb in frames:
        follow = config.models.landmark_tracking and previous is not None and \
            0 < stamp_ns - previous.stamp_ns <= gap_ns
        if follow and len(previous) >= config.spatial_filter.max_hands:
            hands = estimator.estimate_tracked(rgb, previous, stamp_ns)
        elif follow:
            hands = estimator.estimate_tracked(rgb, previous, stamp_ns, detector.detect([rgb])[0])
        else:
            (hands,) = estimator.estimate([rgb], detector.detect([rgb]), [stamp_ns])
        previous = hands if len(hands) else None
        released.extend(chain.push(hands))
    return released + chain.flush()


def test_track_follows_the_clip_as_the_live_graph_does(pipeline, shared_data, clip_frames):
    tracked = list(itertools.islice(pipeline.track(shared_data / CLIP), CLIP_FRAMES))
    assert [hands.stamp_ns for hands in tracked] == [stamp for stamp, _ in clip_frames]
    assert all(a.equals(b) for a, b in zip(tracked, _live_graph_rule(pipeline, clip_frames), strict=True))
    # the clip's two hands, confirmed from the second frame on, keep their two ids throughout (a
    # frame may drop a hand the temporal filter finds too fast, never swap or renumber them)
    ids = [sorted(hands.track_ids.tolist()) for hands in tracked[1:]]
    assert all(set(frame_ids) <= {0, 1} for frame_ids in ids)
    assert sum(frame_ids == [0, 1] for frame_ids in ids) >= 0.9 * len(ids)
    for track_id in (0, 1):
        wrists = np.array([hands.keypoints[hands.track_ids == track_id][0, 0] for hands in tracked[1:]
                           if track_id in hands.track_ids])
        assert np.abs(np.diff(wrists, axis=0)).max() < 40  # never on the other hand (~180 px away)


def test_track_rgb_runs_the_same_rule_on_frames_already_decoded(pipeline, clip_frames):
    frames = clip_frames[:6]
    tracked = list(pipeline.track_rgb(iter(frames)))
    assert len(tracked) == 6 and all(a.equals(b) for a, b in zip(tracked, _live_graph_rule(pipeline, frames),
                                                                   strict=True))
    assert sum(len(hands) for hands in tracked) >= 2 * 5  # the clip's two hands, confirmed on frame 2
    with pytest.raises(InputError, match="increase"):
        list(pipeline.track_rgb([frames[1], frames[0]]))


def test_track_without_landmark_following_filters_each_frames_detections(pipeline, clip_frames):
    config = replace(pipeline.config, models=replace(pipeline.config.models, landmark_tracking=False))
    detecting = HandPipeline(config)
    frames = [(stamp / 1e9, np.ascontiguousarray(rgb[..., ::-1])) for stamp, rgb in clip_frames[:6]]
    tracked = list(detecting.track(frames))
    raw = [detecting.raw(rgb, color="rgb", stamp_ns=stamp) for stamp, rgb in clip_frames[:6]]
    expected = PoseFilterPipeline(config, FilterMode.ONLINE).process(raw)
    assert len(tracked) == 6 and all(a.equals(b) for a, b in zip(tracked, expected, strict=True))


def test_a_config_file_brings_its_checkpoints_and_filters(tmp_path, pipeline, labelled):
    from hand_pose_refiner.models.mediapipe import MediaPipePoseEstimator

    blind = MediaPipePoseEstimator(device="cpu")
    with torch.no_grad():
        blind.net.presence.bias.fill_(-100.0)  # sees no hand anywhere
    checkpoint = blind.save(tmp_path / "blind_pose.safetensors")
    deploy = tmp_path / "deploy.yaml"
    deploy.write_text(f"models:\n  device: cpu\n  pose_checkpoint: {checkpoint}\n"
                      "spatial_filter:\n  max_hands: 1\n")
    from_file = HandPipeline(deploy)
    assert from_file.config.spatial_filter.max_hands == 1
    image = cv2.imread(str(labelled[0].path))
    assert len(pipeline(image)) == 1 and len(from_file(image)) == 0


@pytest.mark.parametrize(("image", "color", "error"), [
    (np.zeros((64, 64, 3), np.float32), "bgr", UnsupportedEncodingError),
    (np.zeros((2, 64, 64, 3), np.uint8), "bgr", ImageSizeError),
    (np.zeros((64, 64, 2), np.uint8), "bgr", ImageSizeError),
    (np.zeros((0, 64, 3), np.uint8), "bgr", ImageSizeError),
    (np.zeros((64, 64, 3), np.uint8), "hsv", UnsupportedEncodingError),
    (None, "bgr", HandPoseRefinerError),
    ([[0, 0, 0]], "bgr", HandPoseRefinerError),
])
def test_wrong_images_are_refused_with_a_clear_error(pipeline, image, color, error):
    with pytest.raises(error):
        pipeline(image, color=color)


def test_wrong_video_input_is_refused(pipeline, tmp_path):
    frame = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(InputError, match="increase"):
        list(pipeline.track([(1.0, frame), (0.5, frame)]))
    with pytest.raises(InputError):
        list(pipeline.track(tmp_path / "missing.webm"))
    with pytest.raises(ImageSizeError):
        list(pipeline.track([np.zeros((2, 64, 64, 3), np.uint8)]))


def test_package_import_stays_light_and_exports_the_api():
    code = ("import sys, hand_pose_refiner as h; h.FrameHands; "
            "assert 'torch' not in sys.modules and 'hand_pose_refiner.api' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
    assert HandPipeline.__module__ == "hand_pose_refiner.api"
    assert {"HandPipeline", "FrameHands"} <= set(dir(hand_pose_refiner))


def test_quickstart_example_prints_the_hand_of_a_real_image(shared_data):
    image = shared_data / "labelled_hands" / "rhd" / "00111.png"
    result = subprocess.run([sys.executable, str(REPO / "examples" / "quickstart.py"), str(image)],
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
                            capture_output=True, text=True, check=True)
    assert result.stdout.startswith("1 hand(s)") and "wrist at" in result.stdout

