"""Replay of real recordings (bags, a video, an image folder) into a COCO dataset."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from hand_pose_refiner.cli import main
from hand_pose_refiner.config import Config
from hand_pose_refiner.errors import InputError
from hand_pose_refiner.refinement.input_spec import InputSpec
from hand_pose_refiner.refinement.inputs import read_frames
from hand_pose_refiner.refinement.replay import ReplaySettings, replay
from hand_pose_refiner.ros.bags import HAND_POSE_ARRAY, BagWriter, read_messages

FRAMES = 10


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def clip_frames(bare_clip):
    """The first real frames of a bare-hand clip (RGB) with their video stamps."""
    frames = list(read_frames(InputSpec(bare_clip, max_frames=FRAMES)))
    assert len(frames) == FRAMES
    return frames


def write_bag(path, frames, storage="mcap", topics=("/camera/image_raw",)):
    with BagWriter(path, storage) as writer:
        for frame in frames:
            for topic in topics:
                writer.write_image(topic, frame.rgb, "rgb8", frame.stamp_ns, "camera")
    return path


def load_lines(out):
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_bag_replay_writes_a_coco_dataset_pycocotools_loads(tmp_path, clip_frames, models, storage):
    bag = write_bag(tmp_path / "recording", clip_frames, storage)
    out = tmp_path / "replay"
    summary = replay([InputSpec(bag)], out, Config(), *models, ReplaySettings(write_bag=True, progress=False))
    assert not summary.failed
    coco = COCO(str(out / "annotations.json"))
    assert len(coco.getImgIds()) == FRAMES
    assert len(coco.getAnnIds()) == summary.total("accepted_hands") > FRAMES  # two hands most frames
    for image in coco.loadImgs(coco.getImgIds()):
        assert (out / image["file_name"]).is_file()
        assert (image["width"], image["height"]) == (640, 360)
    for annotation in coco.loadAnns(coco.getAnnIds()):
        assert len(annotation["keypoints"]) == 63 and annotation["num_keypoints"] >= 12
        assert set(annotation["keypoints"][2::3]) <= {0, 1, 2}
    lines = load_lines(out)
    assert [line["stamp_ns"] for line in lines] == [f.stamp_ns for f in clip_frames]
    assert sum(len(line["filtered"]) for line in lines) == len(coco.getAnnIds())
    assert sum(len(line["raw"]) for line in lines) == summary.total("raw_hands")
    stats = json.loads((out / "stats.json").read_text())
    assert stats["merged"]["spatial_filter"]["totals"]["frames"] == FRAMES
    hands = [m for m in read_messages(out / "poses_bag") if m.msgtype == HAND_POSE_ARRAY]
    assert len(hands) == FRAMES
    assert sum(len(m.message.hands) for m in hands) == len(coco.getAnnIds())
    assert not (tmp_path / "replay.partial").exists()


def test_video_replay_cli_and_cached_rerun_give_the_same_dataset(tmp_path, bare_clip, capsys):
    cache = tmp_path / "cache"
    args = [str(bare_clip), "--max-frames", str(FRAMES), "--cache-dir", str(cache), "--device", "cpu",
            "--quiet"]
    assert main(["replay", *args, "--out", str(tmp_path / "first")]) == 0
    assert main(["replay", *args, "--out", str(tmp_path / "second")]) == 0
    assert "detection rate" in capsys.readouterr().out
    first, second = (json.loads((tmp_path / n / "summary.json").read_text()) for n in ("first", "second"))
    assert [i["predictions_cached"] for i in (first["inputs"][0], second["inputs"][0])] == [False, True]
    assert (tmp_path / "first" / "annotations.json").read_bytes() == \
        (tmp_path / "second" / "annotations.json").read_bytes()
    stamps = [line["stamp_ns"] for line in load_lines(tmp_path / "first")]
    assert len(stamps) == FRAMES and np.all(np.diff(stamps) > 0)
    assert 25e6 < np.median(np.diff(stamps)) < 45e6  # real video time (24-30 fps), not frame numbers
    assert main(["replay", *args, "--out", str(tmp_path / "first")]) == 2  # never overwrites silently


def test_image_folder_replay_stamps_frames_at_the_given_rate(tmp_path, clip_frames, models):
    folder = tmp_path / "frames"
    folder.mkdir()
    for frame in clip_frames[:6]:
        cv2.imwrite(str(folder / f"frame{frame.index}.png"), cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR))
    out = tmp_path / "replay"
    summary = replay([InputSpec(folder, fps=5.0)], out, Config(), *models, ReplaySettings(progress=False))
    coco = COCO(str(out / "annotations.json"))
    assert len(coco.getImgIds()) == 6 and len(coco.getAnnIds()) == summary.total("accepted_hands") > 0
    assert [line["stamp_ns"] for line in load_lines(out)] == [200_000_000 * k for k in range(1, 7)]


def test_a_corrupt_bag_is_refused_by_name_a_truncated_one_gives_its_head_and_the_others_go_on(
        tmp_path, bare_clip, clip_frames, capsys):
    truncated = write_bag(tmp_path / "truncated", clip_frames[:4])
    data_file = next(truncated.glob("*.mcap"))
    data_file.write_bytes(data_file.read_bytes()[: data_file.stat().st_size // 2])
    corrupt = tmp_path / "corrupt.bag"
    corrupt.write_bytes(b"#ROSBAG V2.0\n" + b"\x00garbage" * 50)
    out = tmp_path / "replay"
    code = main(["replay", str(truncated), str(bare_clip), str(corrupt), "--max-frames", "4", "--device",
                 "cpu", "--quiet", "--out", str(out)])
    assert code == 3
    err = capsys.readouterr().err
    assert f"FAILED {corrupt}" in err and f"DAMAGED {truncated}: unreadable after 2 frames" in err
    assert "1 of 3 inputs" in err
    summary = json.loads((out / "summary.json").read_text())
    assert [f["path"] for f in summary["failed_inputs"]] == [str(corrupt)]
    head = summary["inputs"][0]
    assert head["frames"] == 2 and "unreadable after 2 frames" in head["damage"]
    assert len(COCO(str(out / "annotations.json")).getImgIds()) == 2 + 4  # the bag's head, the video


def test_a_bag_with_several_image_topics_needs_a_choice(tmp_path, clip_frames):
    bag = write_bag(tmp_path / "two", clip_frames[:2], topics=("/left/image_raw", "/right/image_raw"))
    with pytest.raises(InputError, match=r"several image topics.*/left/image_raw, /right/image_raw"):
        list(read_frames(InputSpec(bag)))
    assert len(list(read_frames(InputSpec(bag, image_topic="/right/image_raw")))) == 2
    with pytest.raises(InputError, match="no image topic '/nope'"):
        list(read_frames(InputSpec(bag, image_topic="/nope")))
