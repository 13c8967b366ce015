"""Bad input never costs good data: malformed frames mixed with good real ones, bad flags, outputs.

Each recording here holds real frames of a bare-hand clip with one malformed frame among them; the
malformed frame is skipped and counted by reason, and every good frame of the same recording is
kept with its exact pixels. A recording is refused whole only when nothing in it can be read.
"""

from __future__ import annotations

import json
import os
import stat

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hand_pose_refiner.atomic import atomic_write_bytes
from hand_pose_refiner.cli import main
from hand_pose_refiner.config import Config
from hand_pose_refiner.errors import BadFrameError
from hand_pose_refiner.images import ENCODINGS, encode_compressed, jpeg_is_truncated
from hand_pose_refiner.refinement.bag_reader import message_rgb
from hand_pose_refiner.refinement.input_spec import InputSpec, ReadReport
from hand_pose_refiner.refinement.inputs import read_frames
from hand_pose_refiner.refinement.replay import ReplaySettings, replay
from hand_pose_refiner.ros.bags import COMPRESSED_IMAGE, IMAGE, BagWriter, rosbags_message_types, typestore
from hand_pose_refiner.ros.conversions import header_message

GOOD = 4  # good frames per recording
BAD_AT = 2  # where the malformed frame goes (its index among the good ones)
REASONS = {"empty image", "truncated image data", "image data size mismatch", "bad row step",
           "unsupported encoding", "undecodable image", "undecodable compressed image", "truncated JPEG"}

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TYPES = rosbags_message_types(typestore())


@pytest.fixture(scope="module")
def frames(bare_clip):
    """The first real frames of a bare-hand clip (RGB, video stamps)."""
    return list(read_frames(InputSpec(bare_clip, max_frames=GOOD)))


def raw_image(stamp_ns: int, height: int, width: int, step: int, data: bytes, encoding: str = "rgb8"):
    return TYPES.Image(header=header_message(TYPES, stamp_ns, "camera"), height=height, width=width,
                       encoding=encoding, is_bigendian=0, step=step, data=np.frombuffer(data, np.uint8))


def compressed_image(stamp_ns: int, data: bytes, format_: str = "jpeg"):
    return TYPES.CompressedImage(header=header_message(TYPES, stamp_ns, "camera"), format=format_,
                                 data=np.frombuffer(data, np.uint8))


def jpeg_of(rgb: np.ndarray) -> bytes:
    return encode_compressed(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


# How each malformed message is made from a good frame, and the reason it is counted under.
BAD_MESSAGES = {
    "empty image": lambda f: raw_image(f.stamp_ns, 0, 0, 0, b""),
    "truncated image data": lambda f: raw_image(f.stamp_ns, 360, 640, 1920, f.rgb.tobytes()[:1000]),
    "image data size mismatch": lambda f: raw_image(f.stamp_ns, 360, 640, 1920, f.rgb.tobytes() + b"x" * 7),
    "bad row step": lambda f: raw_image(f.stamp_ns, 360, 640, 100, f.rgb.tobytes()[:36000]),
    "unsupported encoding": lambda f: raw_image(f.stamp_ns, 360, 640, 1920, f.rgb.tobytes(), "yuv9000"),
    "undecodable compressed image": lambda f: compressed_image(f.stamp_ns, b"\xff\xd8not a jpeg" * 20),
    "truncated JPEG": lambda f: compressed_image(f.stamp_ns, jpeg_of(f.rgb)[:20000]),
}


def bag_with_one_bad_frame(path, frames, reason, storage="mcap"):
    """A bag of the good frames with one malformed message in place of frame BAD_AT."""
    bad = BAD_MESSAGES[reason](frames[BAD_AT])
    msgtype = COMPRESSED_IMAGE if reason in ("undecodable compressed image", "truncated JPEG") else IMAGE
    with BagWriter(path, storage) as writer:
        for frame in frames:
            if frame.index == BAD_AT:
                writer.write_message("/camera/image", msgtype, bad, frame.stamp_ns)
            elif msgtype == IMAGE:
                writer.write_image("/camera/image", frame.rgb, "rgb8", frame.stamp_ns, "camera")
            else:
                png = cv2.imencode(".png", frame.rgb[:, :, ::-1])[1].tobytes()
                message = compressed_image(frame.stamp_ns, png, "png")
                writer.write_message("/camera/image", COMPRESSED_IMAGE, message, frame.stamp_ns)
    return path


def folder_with_one_bad_file(path, frames, damage):
    """A folder of the good frames as JPEG, file BAD_AT damaged (``empty``, ``truncated``, ``garbage``)."""
    path.mkdir()
    files = []
    for frame in frames:
        file = path / f"frame{frame.index}.jpg"
        file.write_bytes(jpeg_of(frame.rgb))
        files.append(file)
    data = files[BAD_AT].read_bytes()
    files[BAD_AT].write_bytes({"empty": b"", "truncated": data[: len(data) // 2],
                               "garbage": b"GIF89a not really"}[damage])
    return path


def good_indices():
    return [i for i in range(GOOD) if i != BAD_AT]


def summary_of(out):
    return json.loads((out / "summary.json").read_text())


def predictions_of(out):
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("reason", sorted(BAD_MESSAGES))
def test_a_malformed_bag_message_is_skipped_by_reason_and_every_good_frame_kept(tmp_path, frames, reason):
    bag = bag_with_one_bad_frame(tmp_path / "bag", frames, reason)
    report = ReadReport()
    read = list(read_frames(InputSpec(bag), report))
    assert [f.index for f in read] == good_indices()
    assert report.counts() == {reason: 1}
    if reason not in ("undecodable compressed image", "truncated JPEG"):  # raw rgb8: the exact pixels
        for frame in read:
            assert np.array_equal(frame.rgb, frames[frame.index].rgb)


def test_a_short_image_in_a_sqlite3_bag_is_skipped_too(tmp_path, frames):
    bag = bag_with_one_bad_frame(tmp_path / "bag", frames, "truncated image data", storage="sqlite3")
    report = ReadReport()
    assert [f.index for f in read_frames(InputSpec(bag), report)] == good_indices()
    assert report.counts() == {"truncated image data": 1}


@pytest.mark.parametrize(("damage", "reason"), [("empty", "empty image"), ("truncated", "truncated JPEG"),
                                                ("garbage", "undecodable image file")])
def test_a_bad_file_in_an_image_folder_is_skipped_by_reason(tmp_path, frames, damage, reason):
    folder = folder_with_one_bad_file(tmp_path / "folder", frames, damage)
    report = ReadReport()
    read = list(read_frames(InputSpec(folder), report))
    assert [f.index for f in read] == good_indices()
    assert report.counts() == {reason: 1}
    assert reason in report.examples and f"frame{BAD_AT}.jpg" in report.examples[reason]


def test_a_truncated_mcap_gives_the_frames_before_the_damage(tmp_path, frames):
    bag = tmp_path / "bag"
    with BagWriter(bag) as writer:
        for frame in frames:
            writer.write_image("/camera/image", frame.rgb, "rgb8", frame.stamp_ns, "camera")
    data = next(bag.glob("*.mcap"))
    data.write_bytes(data.read_bytes()[: int(data.stat().st_size * 0.7)])
    report = ReadReport()
    read = list(read_frames(InputSpec(bag), report))
    assert 0 < len(read) < GOOD
    assert [f.index for f in read] == list(range(len(read)))
    assert all(np.array_equal(f.rgb, frames[f.index].rgb) for f in read)
    assert report.damage is not None and f"unreadable after {len(read)} frames" in report.damage


def test_an_empty_image_costs_one_frame_not_the_job(tmp_path, bare_clip, frames, capsys):
    """Was: an OpenCV traceback, exit 1, no output at all."""
    bag = bag_with_one_bad_frame(tmp_path / "bag", frames, "empty image")
    out = tmp_path / "out"
    code = main(["replay", str(bare_clip), str(bag), "--max-frames", str(GOOD), "--device", "cpu", "--quiet",
                 "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0 and "Traceback" not in captured.err
    assert "skipped       1  frames: empty image" in captured.out
    summary = summary_of(out)
    assert summary["skipped_frames"] == {"empty image": 1} and not summary["failed_inputs"]
    assert [i["skipped_frames"] for i in summary["inputs"]] == [{}, {"empty image": 1}]
    lines = predictions_of(out)
    assert [line["frame"] for line in lines if line["input"] == str(bare_clip)] == list(range(GOOD))
    assert [line["frame"] for line in lines if line["input"] == str(bag)] == good_indices()
    assert all((out / line["file_name"]).is_file() for line in lines)


def test_the_shard_pipeline_skips_alike_in_every_process(tmp_path, frames, models):
    """run_shard is what a Ray task runs too: the same skip counts either way."""
    from hand_pose_refiner.refinement.shards import plan_shards
    from hand_pose_refiner.refinement.stages import run_shard

    bag = bag_with_one_bad_frame(tmp_path / "bag", frames, "truncated image data")
    shard = plan_shards([InputSpec(bag)])[0]
    result = run_shard(shard, Config(), *models, tmp_path / "cache", ReplaySettings(progress=False))
    assert result.error is None and [r.index for r in result.frames] == good_indices()
    assert result.skipped_frames == {"truncated image data": 1}
    again = run_shard(shard, Config(), *models, tmp_path / "cache", ReplaySettings(progress=False))
    assert again.predictions_cached and again.skipped_frames == {"truncated image data": 1}


def test_the_refinement_report_shows_the_skipped_target_frames(tmp_path, frames, models):
    from hand_pose_refiner.refinement.report_data import iteration_rows
    from hand_pose_refiner.refinement.report_html import _skipped_html

    bag = bag_with_one_bad_frame(tmp_path / "bag", frames, "empty image")
    summary = replay([InputSpec(bag)], tmp_path / "eval", Config(), *models, ReplaySettings(progress=False))
    state = {"steps": [{"name": "iter0/evaluate", "result": {"targets": summary.as_dict()}}]}
    rows = iteration_rows(state)
    assert rows[0]["skipped_frames"] == {"empty image": 1}
    assert "empty image: 1" in _skipped_html(rows)


class FailingDetector:
    """The real detector, made to fail with a programming error on its second batch (a bug)."""

    def __init__(self, detector) -> None:
        self.detector, self.calls = detector, 0

    def __getattr__(self, name):
        return getattr(self.detector, name)

    def detect(self, images):
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("a bug in one input")
        return self.detector.detect(images)


def test_an_unexpected_error_in_one_input_still_writes_the_others(tmp_path, bare_clip, frames, models):
    detector, estimator = models
    bag = bag_with_one_bad_frame(tmp_path / "bag", frames, "empty image")
    out = tmp_path / "out"
    summary = replay([InputSpec(bare_clip, max_frames=GOOD), InputSpec(bag)], out, Config(),
                     FailingDetector(detector), estimator, ReplaySettings(progress=False))
    assert [i.error is None for i in summary.inputs] == [True, False]
    assert "unexpected RuntimeError: a bug in one input" in summary.inputs[1].error
    assert "Traceback" in summary.inputs[1].traceback and "RuntimeError" in summary.inputs[1].traceback
    assert [line["frame"] for line in predictions_of(out)] == list(range(GOOD))


@pytest.mark.parametrize("flag", [["--batch-size", "0"], ["--stride", "0"], ["--fps", "0"], ["--fps", "nan"],
                                  ["--max-frames", "0"], ["--stride", "two"]])
def test_a_bad_flag_is_a_usage_error_before_any_work(tmp_path, bare_clip, flag, capsys):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_:
        main(["replay", str(bare_clip), *flag, "--device", "cpu", "--quiet", "--out", str(out)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag[0]}:" in err and "Traceback" not in err
    assert not out.exists()


def test_stills_makes_every_frame_of_a_bag_a_still_of_its_own(tmp_path, frames, capsys):
    """--stills on a bag (an .mcap file): each frame judged alone, as the same frames in a folder
    of stills are, not filtered over time as a video."""
    with BagWriter(tmp_path / "recording") as writer:
        for frame in frames:
            writer.write_image("/camera/image", frame.rgb, "rgb8", frame.stamp_ns, "camera")
    bag = tmp_path / "recording" / "recording.mcap"
    folder = tmp_path / "folder"
    folder.mkdir()
    for frame in frames:
        cv2.imwrite(str(folder / f"frame{frame.index}.png"), cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR))
    outs = {}
    for name, source in (("bag", bag), ("folder", folder)):
        outs[name] = tmp_path / f"out_{name}"
        assert main(["replay", str(source), "--stills", "--device", "cpu", "--quiet",
                     "--out", str(outs[name])]) == 0
    per_frame = {name: [len(line["filtered"]) for line in predictions_of(out)] for name, out in outs.items()}
    assert per_frame["bag"] == per_frame["folder"]
    stats = {name: json.loads((out / "stats.json").read_text())["merged"] for name, out in outs.items()}
    assert stats["bag"].keys() == stats["folder"].keys() and "recurring_objects" in stats["bag"]


def test_outputs_honour_the_umask(tmp_path):
    previous = os.umask(0o027)
    try:
        path = atomic_write_bytes(tmp_path / "file.json", b"{}")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_a_replay_output_is_readable_as_the_umask_says_and_its_bag_has_no_partial_name(
        tmp_path, bare_clip, capsys):
    out = tmp_path / "out"
    previous = os.umask(0o022)
    try:
        assert main(["replay", str(bare_clip), "--max-frames", "2", "--bag", "--device", "cpu", "--quiet",
                     "--out", str(out)]) == 0
    finally:
        os.umask(previous)
    for name in ("annotations.json", "predictions.jsonl", "stats.json", "summary.json"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o644, name
    assert sorted(p.name for p in (out / "poses_bag").iterdir()) == ["metadata.yaml", "poses_bag.mcap"]
    assert "poses_bag.partial" not in (out / "poses_bag" / "metadata.yaml").read_text()
    assert not [p for p in out.rglob("*") if "partial" in p.name]


def test_a_run_where_every_input_fails_leaves_no_output_folder(tmp_path, capsys):
    corrupt = tmp_path / "corrupt.bag"
    corrupt.write_bytes(b"#ROSBAG V2.0\n" + b"\x00garbage" * 50)
    out = tmp_path / "out"
    assert main(["replay", str(corrupt), "--device", "cpu", "--quiet", "--out", str(out)]) == 3
    err = capsys.readouterr().err
    assert f"FAILED {corrupt}" in err and "nothing was written" in err
    assert not out.exists() and not list(tmp_path.glob("*.partial"))
    out.mkdir()
    (out / "keep.txt").write_text("an earlier run")
    assert main(["replay", str(corrupt), "--overwrite", "--device", "cpu", "--quiet", "--out", str(out)]) == 3
    assert (out / "keep.txt").read_text() == "an earlier run"


def test_an_unreadable_file_is_one_line_naming_it(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.mkdir()  # a folder where a file is expected: the system's error, not a traceback
    assert main(["config", "check", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and str(config) in err and len(err.strip().splitlines()) == 1


def test_a_failed_ray_task_says_its_real_cause_and_retries_without_colour_codes():
    import_ray = pytest.importorskip("ray")
    from hand_pose_refiner.refinement.distributed import task_failure

    raised = import_ray.exceptions.RayTaskError(
        "replay_shard", "\x1b[36mray::replay_shard()\x1b[39m\nTraceback ...\nValueError: bad",
        ValueError("\x1b[31mbad frame window\x1b[0m"))
    text = task_failure(import_ray, raised, retries=3)
    assert "ValueError: bad frame window" in text and "not retried" in text and "3" not in text
    assert "\x1b" not in text
    lost = task_failure(import_ray, import_ray.exceptions.WorkerCrashedError(), retries=2)
    assert "2 retries" in lost and "WorkerCrashedError" in lost and "\x1b" not in lost


# -- properties: any Image or CompressedImage message gives a picture or a counted reason ----------

ENCODING_NAMES = [*sorted(ENCODINGS), "yuv9000", ""]


@settings(max_examples=300, deadline=None)
@given(height=st.integers(0, 5), width=st.integers(0, 5), encoding=st.sampled_from(ENCODING_NAMES),
       step_extra=st.integers(-4, 4), size_extra=st.integers(-6, 6))
def test_any_raw_image_message_decodes_or_is_skipped_with_a_reason(height, width, encoding, step_extra,
                                                                   size_extra):
    dtype, channels = ENCODINGS.get(encoding, (np.uint8, 3))
    row = width * channels * np.dtype(dtype).itemsize
    step = max(0, row + step_extra)
    size = max(0, height * step + size_extra)
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    message = raw_image(1, height, width, step, data, encoding)
    valid = height > 0 and width > 0 and encoding in ENCODINGS and step >= row and size == height * step
    try:
        rgb = message_rgb(message, IMAGE)
    except BadFrameError as skipped:
        assert not valid and skipped.reason in REASONS
    else:
        assert valid and rgb.shape == (height, width, 3) and rgb.dtype == np.uint8


@pytest.fixture(scope="module")
def real_jpeg(frames):
    return jpeg_of(frames[0].rgb[:64, :64])


@settings(max_examples=200, deadline=None)
@given(cut=st.floats(0.0, 1.0), garbage=st.binary(max_size=16))
def test_any_cut_of_a_real_jpeg_decodes_whole_or_is_skipped_with_a_reason(real_jpeg, cut, garbage):
    data = real_jpeg[: int(len(real_jpeg) * cut)] + (garbage if cut < 1.0 else b"")
    try:
        rgb = message_rgb(compressed_image(1, data), COMPRESSED_IMAGE)
    except BadFrameError as skipped:
        assert skipped.reason in REASONS
        assert data != real_jpeg
    else:
        assert rgb.shape == (64, 64, 3) and not jpeg_is_truncated(data)
