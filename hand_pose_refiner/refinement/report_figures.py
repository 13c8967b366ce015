"""The report's figures: metric and rejection plots per round, and before | after overlay grids.

The grids put the same frames side by side, drawn with the initial models' hands and with the
kept round's, so that a person can tell a real hand from an object the filters let through.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hand_pose_refiner.atomic import atomic_write_bytes
from hand_pose_refiner.drawing import draw_hands
from hand_pose_refiner.images import read_rgb
from hand_pose_refiner.refinement.records import hands_from_json
from hand_pose_refiner.refinement.report_data import prediction_lines

TILE_WIDTH = 360
PAIRS_PER_ROW = 2
PAIRS_PER_GRID = 8


def plot_metrics(rows: list[dict[str, Any]], path: Path) -> None:
    """A PNG of four panels per round: detection rates, accepted poses, keypoint confidence, PCK."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = [r["iteration"] for r in rows]
    figure, axes = plt.subplots(2, 2, figsize=(10, 7))
    ax = axes[0, 0]
    ax.plot(rounds, [r["detection_rate"] for r in rows], "o-", label="targets (all)")
    for name in rows[0]["detection_rate_per_input"]:
        ax.plot(rounds, [r["detection_rate_per_input"].get(name) for r in rows], ".--",
                label=Path(name).name if Path(name).name != "gloved" else str(Path(name).parent.name))
    if rows[0]["check_detection_rate"] is not None:
        ax.plot(rounds, [r["check_detection_rate"] for r in rows], "s-", label="check recordings")
    ax.set_title("detection rate (frames with an accepted hand)")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7)
    axes[0, 1].bar(rounds, [r["accepted_poses"] for r in rows])
    axes[0, 1].set_title("accepted poses (targets, reference thresholds)")
    axes[1, 0].plot(rounds, [r["mean_keypoint_confidence"] for r in rows], "o-")
    axes[1, 0].set_title("mean keypoint confidence (observed keypoints)")
    pck_values = [np.nan if r["pck"] is None else r["pck"] for r in rows]
    axes[1, 1].plot(rounds, pck_values, "o-")
    axes[1, 1].set_title("PCK@0.2 on the labelled sets")
    axes[1, 1].set_ylim(0, 1.05)
    for ax in axes.flat:
        ax.set_xlabel("iteration")
        ax.set_xticks(rounds)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def plot_rejections(rows: list[dict[str, Any]], path: Path) -> None:
    """A PNG of the rejections per rule and round, stacked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rules = sorted({rule for r in rows for rule in r["rejections"]})
    figure, ax = plt.subplots(figsize=(10, 4))
    bottom = np.zeros(len(rows))
    for rule in rules:
        counts = np.array([r["rejections"].get(rule, 0) for r in rows], float)
        ax.bar([r["iteration"] for r in rows], counts, bottom=bottom, label=rule)
        bottom += counts
    ax.set_title("rejections per rule (targets, reference thresholds)")
    ax.set_xlabel("iteration")
    if rules:
        ax.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _tile(replay_dir: Path, line: dict[str, Any], caption: str) -> np.ndarray:
    image = read_rgb(replay_dir / line["file_name"])
    hands = hands_from_json(line["filtered"], line["stamp_ns"], line["width"], line["height"])
    drawn = draw_hands(image, hands)
    height = round(drawn.shape[0] * TILE_WIDTH / drawn.shape[1])
    tile = cv2.resize(drawn, (TILE_WIDTH, height), interpolation=cv2.INTER_AREA)
    text = f"{caption}: {len(hands)} hand(s)"
    cv2.rectangle(tile, (0, 0), (TILE_WIDTH, 18), (0, 0, 0), -1)
    cv2.putText(tile, text, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def overlay_grids(before_dir: Path, after_dir: Path, out_dir: Path, max_frames: int | None = 16,
                  label_after: str = "after") -> list[Path]:
    """PNG grids of the same frames, before | after, ``PAIRS_PER_GRID`` frames per file."""
    before, after = prediction_lines(before_dir), prediction_lines(after_dir)
    count = len(before) if not max_frames else min(max_frames, len(before))
    picks: list[int] = (np.unique(np.linspace(0, len(before) - 1, count).round().astype(int)).tolist()
                        if before else [])
    paths = []
    for page, start in enumerate(range(0, len(picks), PAIRS_PER_GRID)):
        pairs = []
        for index in picks[start:start + PAIRS_PER_GRID]:
            name = Path(before[index]["file_name"]).stem
            pair = [_tile(before_dir, before[index], f"{name} before"),
                    _tile(after_dir, after[index], f"{name} {label_after}")]
            height = max(t.shape[0] for t in pair)
            pair = [np.pad(t, ((0, height - t.shape[0]), (0, 4), (0, 0))) for t in pair]
            pairs.append(np.concatenate(pair, axis=1))
        rows = []
        for row_start in range(0, len(pairs), PAIRS_PER_ROW):
            row = pairs[row_start:row_start + PAIRS_PER_ROW]
            height = max(p.shape[0] for p in row)
            row = [np.pad(p, ((0, height - p.shape[0] + 4), (0, 8), (0, 0))) for p in row]
            while len(row) < PAIRS_PER_ROW:
                row.append(np.zeros_like(row[0]))
            rows.append(np.concatenate(row, axis=1))
        grid = np.concatenate(rows, axis=0)
        ok, data = cv2.imencode(".png", cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
        if ok:
            paths.append(atomic_write_bytes(out_dir / f"overlay_grid_{page + 1}.png", data.tobytes()))
    return paths
