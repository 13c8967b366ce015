"""The scorer of true and false hands on the gloved stills (bench/score_gloved.py)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "score_gloved.py"


@pytest.fixture(scope="module")
def scorer():
    spec = importlib.util.spec_from_file_location("score_gloved", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def judgements(scorer):
    return json.loads(scorer.JUDGEMENTS.read_text())["images"]


def test_every_gloved_still_has_judgements_and_nothing_else(scorer, judgements, shared_data):
    hags = shared_data / "hags_gloved_assembly"
    stills = {f"{view}/gloved/{p.name}" for view in scorer.VIEWS for p in (hags / view / "gloved").iterdir()}
    assert set(judgements) == stills
    assert len(stills) == 56


def _hand(box: list[float]) -> dict[str, object]:
    """An accepted hand whose keypoints span ``box`` (wrist at one corner, a tip at the other)."""
    centre = [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2]
    return {"keypoints": [[box[0], box[1]], [box[2], box[3]], *[centre] * 18, [None, None]]}


def test_a_round_is_scored_per_frame_against_the_judged_regions(scorer, judgements, shared_data, tmp_path):
    hags = shared_data / "hags_gloved_assembly"
    stills = scorer.stills(hags)["side_view"]
    assert stills[:3] == ["J_GL0.jpg", "J_GL2.jpg", "J_GL4.jpg"]  # the replay's order, not sorted()
    regions = [judgements[f"side_view/gloved/{name}"] for name in stills[:3]]
    side = "../shared/data/hags_gloved_assembly/side_view/gloved"
    rows = [
        # frame 0: a judged hand and a judged robot part; frame 1: a hand; frame 2: only a false one
        {"input": side, "frame": 0,
         "filtered": [_hand(regions[0]["hands"][0]), _hand(regions[0]["not_hands"][0])]},
        {"input": side, "frame": 1, "filtered": [_hand(regions[1]["hands"][0])]},
        {"input": side, "frame": 2, "filtered": [_hand(regions[2]["not_hands"][0])]},
        {"input": side, "frame": 3, "filtered": [_hand([0, 0, 30, 30])]},  # nobody judged this corner
        {"input": side, "frame": 4, "filtered": []},
        {"input": "../shared/data/hags_gloved_assembly/side_view/greenscreen", "frame": 0,
         "filtered": [_hand(regions[0]["hands"][0])]},  # not a gloved still: not counted
    ]
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_text("".join(json.dumps(row) + "\n" for row in rows))
    score = scorer.score_predictions(predictions, judgements, hags)
    assert (score.frames, score.true_frames, score.false_frames, score.false_only_frames) == (5, 2, 2, 1)
    assert score.per_view == {"side_view": 2, "top_view": 0}
    assert score.unjudged == [f"side_view/gloved/{stills[3]} [0, 0, 30, 30]"]
