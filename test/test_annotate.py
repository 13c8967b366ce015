"""``annotate``: a real recording in, an mp4 with the hands (and activities) drawn out."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

import hand_pose_refiner.activity.packaged as packaged
from hand_pose_refiner.activity.reach_model import ReachModel
from hand_pose_refiner.annotate import annotate, load_activity
from hand_pose_refiner.api import HandPipeline
from hand_pose_refiner.cli import main
from hand_pose_refiner.config import ActivityConfig
from hand_pose_refiner.errors import ActivityCheckpointError
from hand_pose_refiner.refinement.input_spec import InputSpec
from hand_pose_refiner.refinement.inputs import read_frames
from hand_pose_refiner.ros.bags import BagWriter

FRAMES = 20

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def clip_frames(bare_clip):
    return list(read_frames(InputSpec(bare_clip, max_frames=FRAMES)))


def video_frames(path):
    """Every frame of a video file as RGB, read back with OpenCV."""
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened()
    frames = []
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    capture.release()
    return frames


def drawn_pixels(annotated, original):
    """Pixels the drawing changed: far more than the mp4 compression moves any pixel."""
    return int((np.abs(annotated.astype(np.int16) - original.astype(np.int16)).max(axis=-1) > 80).sum())


def test_annotate_writes_every_frame_of_a_video_with_the_hands_drawn(tmp_path, bare_clip, clip_frames,
                                                                      capsys):
    out = tmp_path / "annotated.mp4"
    args = ["annotate", str(bare_clip), "--out", str(out), "--max-frames", str(FRAMES), "--no-activity",
            "--device", "cpu", "--quiet"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert printed.count("hands only") == 1
    frames = video_frames(out)
    assert len(frames) == FRAMES
    assert all(frame.shape == (360, 640, 3) for frame in frames)
    changed = [drawn_pixels(a, f.rgb) for a, f in zip(frames, clip_frames, strict=True)]
    with_hands = [count > 200 for count in changed]
    assert f"{sum(with_hands)} frames" in printed  # the frames the summary counts are those drawn on
    assert sum(with_hands) >= FRAMES - 2  # two hands in view throughout; the first waits for a 2nd hit
    assert not with_hands[0] and changed[0] < 50  # unconfirmed tracks are not drawn: frame as read
    assert main(args) == 2  # never overwrites silently
    assert not list(tmp_path.glob(".*partial*"))


def test_annotate_reads_a_bag_and_labels_every_hand_with_its_activity(tmp_path, clip_frames):
    bag = tmp_path / "recording"
    position = FRAMES // 2 + 1
    repeated = clip_frames[position - 1]  # a camera glitch: one frame sent twice with the same stamp
    with BagWriter(bag, "mcap") as writer:
        for frame in [*clip_frames[:position], repeated, *clip_frames[position:]]:
            writer.write_image("/camera/image_raw", frame.rgb, "rgb8", frame.stamp_ns, "camera")
    torch.manual_seed(0)
    checkpoint = ReachModel().save(tmp_path / "reach.safetensors")
    activity = load_activity(ActivityConfig(checkpoint=str(checkpoint)))
    assert activity.recognizer is not None and activity.description.startswith("reach model")
    pipeline = HandPipeline(device="cpu")
    summary = annotate(InputSpec(bag), tmp_path / "bag.mp4", pipeline, activity, progress=False)
    assert (summary.frames, summary.width, summary.height) == (FRAMES + 1, 640, 360)
    assert 25 < summary.fps < 35  # the bag's own stamps (a 30 fps video)
    assert summary.hands >= 2 * (FRAMES - 2)
    assert summary.labelled_hands == summary.hands  # the reach model decides every pose it is given
    frames = video_frames(tmp_path / "bag.mp4")
    assert len(frames) == FRAMES + 1 and summary.frames_with_hands <= FRAMES
    # the repeated frame is not tracked again (the live graph drops it): written as read, in its place
    assert drawn_pixels(frames[position], repeated.rgb) < 50
    assert drawn_pixels(frames[position - 1], repeated.rgb) > 200


def test_a_named_checkpoint_that_does_not_load_is_an_error_not_a_silent_fallback(tmp_path, bare_clip):
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a checkpoint")
    for checkpoint in (broken, tmp_path / "missing.safetensors"):
        with pytest.raises(ActivityCheckpointError, match=checkpoint.name):
            load_activity(ActivityConfig(checkpoint=str(checkpoint)))
        config = tmp_path / "cell.yaml"
        config.write_text(f"activity:\n  checkpoint: {checkpoint}\n")
        out = tmp_path / "never.mp4"
        assert main(["annotate", str(bare_clip), "--out", str(out), "--config", str(config), "--quiet"]) == 2
        assert not out.exists()


def test_without_the_packaged_model_an_empty_setting_means_hands_only(tmp_path, monkeypatch):
    monkeypatch.setattr(packaged, "PACKAGED_REACH_CHECKPOINT", tmp_path / "not_installed.safetensors")
    activity = load_activity(ActivityConfig())
    assert activity.recognizer is None and activity.description.endswith("hands only")


def test_an_undecodable_frame_is_left_out_and_counted_not_the_end_of_the_video(tmp_path, clip_frames,
                                                                                capsys):
    folder = tmp_path / "frames"
    folder.mkdir()
    for index, frame in enumerate(clip_frames[:6]):
        assert cv2.imwrite(str(folder / f"{index:03d}.png"), cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR))
    (folder / "003.png").write_bytes(b"\x89PNG\r\n\x1a\n not a picture")
    out = tmp_path / "annotated.mp4"
    assert main(["annotate", str(folder), "--out", str(out), "--no-activity", "--device", "cpu",
                 "--quiet"]) == 0
    assert len(video_frames(out)) == 5
    printed = capsys.readouterr().out
    assert "5 frames" in printed
    skipped = [line for line in printed.splitlines() if line.startswith("skipped:")]
    assert len(skipped) == 1 and skipped[0].startswith("skipped: 1 ")
