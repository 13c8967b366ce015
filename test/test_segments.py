"""A recording cut into time segments gives the same filtered poses as one pass (the overlap works)."""

from __future__ import annotations

import json

import pytest

from hand_pose_refiner.config import Config, ModelsConfig
from hand_pose_refiner.models import create_backend
from hand_pose_refiner.refinement.input_spec import InputSpec
from hand_pose_refiner.refinement.inputs import count_frames, read_frames
from hand_pose_refiner.refinement.replay import ReplaySettings, replay
from hand_pose_refiner.refinement.shards import plan_shards

FRAMES = 96
SEGMENT = 32


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def poses(out):
    """Every annotation of a replay but the running handedness vote share (docs/design/scale_out.md)."""
    document = json.loads((out / "annotations.json").read_text())
    return document["images"], [{k: v for k, v in a.items() if k != "handedness_score"}
                                for a in document["annotations"]]


def test_segments_cover_the_recording_once_with_overlap_on_either_side(shared_data):
    spec = InputSpec(shared_data / "bare_hand_clips" / "hands1.webm", max_frames=FRAMES)
    assert count_frames(spec) == FRAMES
    shards = plan_shards([spec], SEGMENT, 10)
    assert [s.owned for s in shards] == [(0, 32), (32, 64), (64, None)]
    assert [s.context for s in shards] == [(0, 42), (22, 74), (54, None)]
    window = list(read_frames(shards[1].read_spec()))
    whole = list(read_frames(spec))
    assert [f.index for f in window] == list(range(22, 74))
    assert [f.stamp_ns for f in window] == [f.stamp_ns for f in whole[22:74]]
    # Stills and recordings shorter than a segment stay whole.
    assert len(plan_shards([InputSpec(spec.path, max_frames=20)], SEGMENT, 10)) == 1


@pytest.mark.slow
def test_a_cut_recording_gives_the_same_filtered_poses_as_one_pass(shared_data, tmp_path):
    models = create_backend(ModelsConfig(device="cpu"))
    spec = InputSpec(shared_data / "bare_hand_clips" / "hands1.webm", max_frames=FRAMES)
    cache = tmp_path / "cache"

    def run(name, **options):
        out = tmp_path / name
        summary = replay([spec], out, Config(), *models,
                         ReplaySettings(cache_dir=cache, progress=False, **options))
        assert not summary.failed
        return out, summary

    one, single = run("one")
    cut, segmented = run("cut", segment_frames=SEGMENT, overlap_frames=30)
    assert segmented.inputs[0].predictions_cached  # the cut reuses the one-pass cache: same predictions
    images, annotations = poses(one)
    assert len(annotations) > FRAMES  # two hands in most frames: tracks cross both cuts
    assert poses(cut) == (images, annotations)
    assert len({a["track_id"] for a in annotations}) >= 2
    assert single.total("accepted_hands") == segmented.total("accepted_hands")
    lines = [json.loads(line) for line in (cut / "predictions.jsonl").read_text().splitlines()]
    assert [line["frame"] for line in lines] == list(range(FRAMES))

    # Without the overlap the filters lose context at the cuts, and the result differs: the
    # comparison above is not vacuous.
    bare, _ = run("no_overlap", segment_frames=SEGMENT, overlap_frames=0)
    assert poses(bare) != (images, annotations)
