"""The refinement report's close-ups: every accepted hand of a small real run, zoomed with its skeleton."""

from __future__ import annotations

import json
import re

import cv2
import numpy as np
import pytest

from hand_pose_refiner.drawing import CROP_SIZE, hand_crop, track_colour
from hand_pose_refiner.images import read_rgb
from hand_pose_refiner.refinement.records import hands_from_json
from hand_pose_refiner.refinement.report import write_report
from hand_pose_refiner.refinement.report_crops import CROPS_FOLDER


@pytest.fixture(scope="module")
def run_dir(tiny_refine_run):
    """The conftest's one-round refine of four real bare-hand stills."""
    return tiny_refine_run["out"]


def accepted_hands(replay_dir):
    """``(frame name, hand index)`` of every filtered hand of a replay folder."""
    lines = [json.loads(line) for line in (replay_dir / "predictions.jsonl").read_text().splitlines()]
    return [(line["file_name"].split("/")[-1][:-4], index)
            for line in lines for index in range(len(line["filtered"]))]


def test_the_report_shows_every_accepted_hand_as_a_close_up(run_dir):
    report = json.loads((run_dir / "report.json").read_text())
    best = report["best_iteration"]
    sections = {section["name"]: section for section in report["hand_crops"]}
    assert list(sections) == ["iter1_pseudo", f"iter{best}_eval"]
    html = (run_dir / "report.html").read_text()
    for name, replay_dir in (("iter1_pseudo", run_dir / "iter1" / "pseudo"),
                             (f"iter{best}_eval", run_dir / f"iter{best}" / "eval")):
        expected = accepted_hands(replay_dir)
        crops = sections[name]["crops"]
        assert len(expected) >= 4  # two hands in most of the four frames
        assert sorted(c["path"] for c in crops) == sorted(f"{CROPS_FOLDER}/{name}/{frame}_{i}.jpg"
                                                          for frame, i in expected)
        for crop in crops:
            image = cv2.imread(str(run_dir / crop["path"]))
            assert image.shape == (CROP_SIZE, CROP_SIZE, 3)
            assert re.fullmatch(r"#\d+ [LR] det \d\.\d\d kp \d\.\d\d", crop["caption"])
            assert f"src='{crop['path']}'" in html
        assert f"{sections[name]['title']}: {len(expected)} hands" in html
    assert html.count("<figure class='hand-crop'>") == sum(len(s["crops"]) for s in sections.values())
    assert not list(run_dir.rglob("*.partial"))


def test_rebuilding_the_report_keeps_only_the_sections_it_shows(run_dir):
    stale = run_dir / CROPS_FOLDER / "iter9_eval"
    stale.mkdir()
    (stale / "old.jpg").write_bytes(b"")
    before = json.loads((run_dir / "report.json").read_text())["hand_crops"]
    write_report(run_dir)
    assert json.loads((run_dir / "report.json").read_text())["hand_crops"] == before
    assert not stale.exists()


def test_a_crop_centres_the_hand_and_draws_its_skeleton_there(run_dir):
    line = json.loads((run_dir / "iter0" / "eval" / "predictions.jsonl").read_text().splitlines()[0])
    rgb = read_rgb(run_dir / "iter0" / "eval" / line["file_name"])
    hands = hands_from_json(line["filtered"], line["stamp_ns"], line["width"], line["height"])
    for index in range(len(hands)):
        crop = hand_crop(rgb, hands, index)
        colour = np.array(track_colour(int(hands.track_ids[index])))
        ys, xs = np.nonzero(np.abs(crop.astype(int) - colour).max(axis=-1) < 30)
        assert len(xs) > 100  # the bones, drawn in the track's colour
        extent = max(xs.max() - xs.min(), ys.max() - ys.min())
        assert 0.5 * CROP_SIZE < extent < 0.75 * CROP_SIZE  # the hand fills the crop but its margin
        assert abs((xs.max() + xs.min()) / 2 - CROP_SIZE / 2) < 8
        assert abs((ys.max() + ys.min()) / 2 - CROP_SIZE / 2) < 8
