"""The scorer of true and false hands on the gloved stills (bench/score_gloved.py runs it)."""

from __future__ import annotations

import json

import pytest
from support import REPO

from hand_pose_refiner.refinement import scoring

JUDGEMENTS = REPO / "bench" / "data" / "gloved_stills_judgements.json"


@pytest.fixture(scope="module")
def judgements():
    return scoring.load_judgements(JUDGEMENTS)


def test_every_gloved_still_has_judgements_and_nothing_else(judgements, shared_data):
    hags = shared_data / "hags_gloved_assembly"
    stills = {f"{view}/gloved/{p.name}" for view in scoring.VIEWS for p in (hags / view / "gloved").iterdir()}
    assert set(judgements) == stills
    assert len(stills) == 56


def _hand(box: list[float]) -> dict[str, object]:
    """An accepted hand whose keypoints span ``box`` (wrist at one corner, a tip at the other)."""
    centre = [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2]
    return {"keypoints": [[box[0], box[1]], [box[2], box[3]], *[centre] * 18, [None, None]]}


def test_a_round_is_scored_per_frame_against_the_judged_regions(judgements, shared_data, tmp_path):
    hags = shared_data / "hags_gloved_assembly"
    stills = scoring.stills(hags)["side_view"]
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
    score = scoring.score_predictions(predictions, judgements, hags)
    assert (score.frames, score.true_frames, score.false_frames, score.false_only_frames) == (5, 2, 2, 1)
    assert score.per_view == {"side_view": 2, "top_view": 0}
    assert score.unjudged == [f"side_view/gloved/{stills[3]} [0, 0, 30, 30]"]


def test_a_run_is_scored_round_by_round_in_round_order(judgements, shared_data, tmp_path):
    hags = shared_data / "hags_gloved_assembly"
    first = scoring.stills(hags)["top_view"][0]
    hand = judgements[f"top_view/gloved/{first}"]["hands"][0]
    row = {"input": "../shared/data/hags_gloved_assembly/top_view/gloved", "frame": 0}
    for k, filtered in ((10, [_hand(hand)]), (2, [])):
        folder = tmp_path / f"iter{k}" / "eval"
        folder.mkdir(parents=True)
        (folder / "predictions.jsonl").write_text(json.dumps({**row, "filtered": filtered}) + "\n")
    scores = scoring.score_run(tmp_path, judgements, hags)
    assert list(scores) == ["iter2", "iter10"]  # by round number, not by name
    assert [score.true_frames for score in scores.values()] == [0, 1]
    assert scores["iter10"].table_row().split()[:3] == ["1", "100.0%", "(0+1)"]
    assert scoring.score_run(tmp_path / "iter2", judgements, hags) == {}
