"""The report of a refinement run: report.json, report.html, metric plots, overlay grids and
close-ups of every accepted hand.

Numbers alone cannot tell a real hand from a wooden block that the filters let through, so the
report puts the same frames side by side, drawn with the initial models' hands and with the
best round's, for a person to check. A hand a few pixels wide cannot be judged at frame scale,
so every hand of each round's pseudo-labels and of the kept round's evaluation is also shown as
a zoomed crop with its skeleton (``report_crops/<section>/``, JPEG), captioned with its frame and
scores. Everything is derived from ``state.json`` and the replay folders, so the report can be
rebuilt at any time.
"""

from __future__ import annotations

import html
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hand_pose_refiner.atomic import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    commit_dir,
    fresh_partial_dir,
)
from hand_pose_refiner.drawing import draw_hands, hand_caption, hand_crop
from hand_pose_refiner.errors import RefinementStateError
from hand_pose_refiner.images import read_rgb
from hand_pose_refiner.refinement.inputs import SPLITS
from hand_pose_refiner.refinement.records import hands_from_json
from hand_pose_refiner.refinement.replay import PREDICTIONS
from hand_pose_refiner.refinement.run_state import NETWORKS, RunState, read_state

TILE_WIDTH = 360
PAIRS_PER_ROW = 2
PAIRS_PER_GRID = 8
CROPS_FOLDER = "report_crops"


def iteration_rows(state: RunState | dict[str, Any]) -> list[dict[str, Any]]:
    """One row per evaluated round: rates, counts, rejections, confidence, PCK, training sizes.

    ``state`` as :func:`.run_state.read_state` gives it, or its JSON form."""
    if isinstance(state, dict):
        state = RunState.from_json(state)
    rows = []
    for k in state.evaluated_rounds():
        evaluation = state.evaluation(k)
        assert evaluation is not None
        targets = evaluation.targets
        row: dict[str, Any] = {
            "iteration": k,
            "detection_rate": targets.detection_rate,
            "detection_rate_per_input": {i.path: i.detection_rate for i in targets.inputs},
            "frames": targets.frames,
            "accepted_poses": targets.accepted_hands,
            "raw_detections": targets.raw_hands,
            "rejections": targets.rejections,
            "skipped_frames": targets.skipped_frames,  # frames that could not be decoded
            "mean_keypoint_confidence": targets.mean_keypoint_confidence,
            "check_detection_rate": None if evaluation.checks is None else evaluation.checks.detection_rate,
            "pck": evaluation.pck.pck if evaluation.pck is not None else None,
        }
        if k > 0:
            pseudo = state.pseudo_labels(k)
            if pseudo is None:
                raise RefinementStateError(f"round {k} was evaluated but has no pseudo-labels")
            row["models_from"] = pseudo.models_from
            row["pseudo_labels"] = {"thresholds": asdict(pseudo.thresholds) if pseudo.thresholds else None,
                                    "accepted_hands": pseudo.replay.accepted_hands,
                                    "frames_with_hands": pseudo.replay.frames_with_hands,
                                    "rejections": pseudo.replay.rejections}
            for which in NETWORKS:
                tuned = state.fine_tune(k, which)
                if tuned is None:
                    raise RefinementStateError(f"round {k} was evaluated but its {which} was not fine-tuned")
                training = tuned.training
                row[f"{which}_training"] = {
                    "train_images": tuned.train_images, "train_hands": tuned.train_hands,
                    "initial_loss": training.initial_loss if training is not None else None,
                    "final_loss": training.final_loss if training is not None else None,
                    "skipped": tuned.skipped}
        rows.append(row)
    return rows


# What a run does with each role's recordings (the recipe's keys), for the report's input table.
ROLE_USES = {
    "targets": "pseudo-labelled and trained on; the detection rate is measured on them",
    "checks": "evaluated every round, never trained on (no-regression check)",
    "anchors": "labelled once by the initial models, mixed into every round's training set",
    "labelled": "PCK against their labels every round, never trained on",
}


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 < 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def frames_used(spec: dict[str, Any]) -> str:
    """Which frames of a recording a run read, in words (from its InputSpec in ``state.json``);
    a half of a folder of stills is named as ``refinement.split`` names it."""
    if "stride" not in spec:
        return "every labelled image"
    stride, offset, cap = spec["stride"], spec.get("offset", 0), spec.get("max_frames")
    if stride == 1 and offset == 0:
        which = "every frame"
    else:
        order = " in name order" if spec.get("stills") else ""
        which = (f"every {_ordinal(stride)} frame from the {_ordinal(offset + 1)} "
                 f"({_ordinal(offset + 1)}, {_ordinal(offset + stride + 1)}, ...{order})")
        if spec.get("stills") and stride == 2 and offset < 2:
            other = SPLITS[1 - offset]
            which += f": the {SPLITS[offset]} half; the {other} half is not read"
    return which + (f", at most {cap}" if cap else "")


def input_roles(state: RunState | dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per input of the run: its role, what the run does with it, which frames it read
    and how many (from round 0's evaluation, where it has one). ``state`` as :func:`iteration_rows`
    takes it."""
    if isinstance(state, dict):
        state = RunState.from_json(state)
    evaluated = state.evaluation(0)
    replays = [evaluated.targets, evaluated.checks] if evaluated is not None else []
    frames = {item.path: item.frames for part in replays if part is not None for item in part.inputs}
    options = state.options
    return [{"role": role, "use": use, "path": spec["path"], "frames_used": frames_used(spec),
             "frames": frames.get(spec["path"])}
            for role, use in ROLE_USES.items() for spec in options.get(role, [])]


def _plot_metrics(rows: list[dict[str, Any]], path: Path) -> None:
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


def _plot_rejections(rows: list[dict[str, Any]], path: Path) -> None:
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


def _frames(replay_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (replay_dir / PREDICTIONS).read_text().splitlines()]


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
    before, after = _frames(before_dir), _frames(after_dir)
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


@dataclass(frozen=True)
class HandCrop:
    """One accepted hand's close-up: its JPEG (relative to the run folder), frame and scores."""

    path: str
    frame: str
    caption: str


@dataclass(frozen=True)
class CropSection:
    """The close-ups of one replay folder's accepted hands."""

    name: str
    title: str
    crops: list[HandCrop]


def _scores(line: dict[str, Any], index: int) -> str:
    """A hand's detection score and mean keypoint score (over its predicted keypoints)."""
    hand = line["filtered"][index]
    keypoint_scores = [v for v in hand["keypoint_scores"] if v is not None]
    mean = float(np.mean(keypoint_scores)) if keypoint_scores else float("nan")
    return f"det {hand['score']:.2f} kp {mean:.2f}"


def hand_crops(replay_dir: Path, out_dir: Path, run_dir: Path) -> list[HandCrop]:
    """Write a close-up of every accepted hand of a replay folder into ``out_dir`` (built aside
    and renamed when complete); the crops in frame order."""
    partial = fresh_partial_dir(out_dir)
    crops = []
    for line in _frames(replay_dir):
        if not line["filtered"]:
            continue
        image = read_rgb(replay_dir / line["file_name"])
        hands = hands_from_json(line["filtered"], line["stamp_ns"], line["width"], line["height"])
        frame = Path(line["file_name"]).stem
        for index in range(len(hands)):
            crop = hand_crop(image, hands, index)
            if crop is None:
                continue
            name = f"{frame}_{index}.jpg"
            cv2.imwrite(str(partial / name), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, 90])
            crops.append(HandCrop(str((out_dir / name).relative_to(run_dir)), frame,
                                  f"{hand_caption(hands, index)} {_scores(line, index)}"))
    commit_dir(out_dir, replace=True)
    return crops


def _crop_sources(run_dir: Path, best: int) -> list[tuple[str, str, Path]]:
    """``(name, title, replay folder)``: each round's pseudo-labels, then the kept round's evaluation."""
    rounds = sorted(int(path.parent.parent.name[4:]) for path in run_dir.glob(f"iter*/pseudo/{PREDICTIONS}"))
    sources = [(f"iter{k}_pseudo", f"Round {k}: pseudo-labels", run_dir / f"iter{k}" / "pseudo")
               for k in rounds]
    if (run_dir / f"iter{best}" / "eval" / PREDICTIONS).is_file():
        sources.append((f"iter{best}_eval", f"Kept round {best}: evaluation (live thresholds)",
                        run_dir / f"iter{best}" / "eval"))
    return sources


def crop_sections(run_dir: Path, best: int) -> list[CropSection]:
    """Close-ups of every accepted hand: each round's pseudo-labels and the kept round's evaluation
    (``report_crops/<name>/``; folders of sections no longer shown are removed)."""
    folder = run_dir / CROPS_FOLDER
    sections = [CropSection(name, title, hand_crops(replay_dir, folder / name, run_dir))
                for name, title, replay_dir in _crop_sources(run_dir, best)]
    for stale in set(folder.glob("*")) - {folder / section.name for section in sections}:
        shutil.rmtree(stale, ignore_errors=True)
    return sections


def write_report(run_dir: Path, grid_frames: int | None = 16) -> Path:
    """Write report.json, report.html and the PNGs into ``run_dir``; returns the HTML path."""
    state = read_state(run_dir, any_format=True)
    rows = iteration_rows(state)
    best = state.best_iteration
    if best is None:
        best = rows[-1]["iteration"] if rows else 0
    figures = run_dir / "report_figures"
    figures.mkdir(exist_ok=True)
    pngs: list[Path] = []
    if rows:
        _plot_metrics(rows, figures / "metrics.png")
        _plot_rejections(rows, figures / "rejections.png")
        pngs = [figures / "metrics.png", figures / "rejections.png"]
    grids = overlay_grids(run_dir / "iter0" / "eval", run_dir / f"iter{best}" / "eval", figures, grid_frames,
                          f"iter{best}") if rows else []
    sections = crop_sections(run_dir, best) if rows else []
    report = {"run_dir": str(run_dir), "iterations": rows, "best_iteration": best,
              "best_models": state.best_models, "stopped_because": state.stopped_because,
              "finished": state.finished, "options": state.options,
              "inputs": input_roles(state),
              "figures": [str(p.relative_to(run_dir)) for p in pngs + grids],
              "hand_crops": [asdict(section) for section in sections]}
    atomic_write_json(run_dir / "report.json", report)
    return atomic_write_text(run_dir / "report.html", _html(report, run_dir))


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return html.escape(str(value))


def _html(report: dict[str, Any], run_dir: Path) -> str:
    head = ("<tr><th>iteration</th><th>started from</th><th>detection rate (targets)</th>"
            "<th>check recordings</th>"
            "<th>accepted poses</th><th>mean keypoint confidence</th><th>PCK@0.2 labelled</th>"
            "<th>pseudo-labels (hands / frames)</th><th>candidate thresholds (det, presence)</th>"
            "<th>rejections per rule</th></tr>")
    body = []
    for row in report["iterations"]:
        pseudo = row.get("pseudo_labels")
        thresholds = pseudo["thresholds"] if pseudo else None
        rejections = "<br>".join(f"{html.escape(k)}: {v}" for k, v in row["rejections"].items())
        best = " (best)" if row["iteration"] == report["best_iteration"] else ""
        body.append(
            f"<tr><td>{row['iteration']}{best}</td><td>{_fmt(row.get('models_from', '–'))}</td>"
            f"<td>{_fmt(row['detection_rate'])}</td><td>{_fmt(row['check_detection_rate'])}</td>"
            f"<td>{row['accepted_poses']}</td><td>{_fmt(row['mean_keypoint_confidence'])}</td>"
            f"<td>{_fmt(row['pck'])}</td>"
            f"<td>{_fmt(pseudo['accepted_hands']) if pseudo else '–'} / "
            f"{_fmt(pseudo['frames_with_hands']) if pseudo else '–'}</td>"
            f"<td>{_fmt(thresholds['detection_score_threshold']) if thresholds else '–'}, "
            f"{_fmt(thresholds['min_presence']) if thresholds else '–'}</td>"
            f"<td style='font-size:small'>{rejections}</td></tr>")
    images = "".join(f"<h3>{html.escape(name)}</h3><img src='{html.escape(name)}' style='max-width:100%'>"
                     for name in report["figures"])
    crops = _crops_html(report["hand_crops"])
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Refinement report: {html.escape(run_dir.name)}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #999;padding:4px 8px;vertical-align:top}}
.crops{{display:flex;flex-wrap:wrap;gap:6px}} .crops figure{{margin:0;width:128px;font-size:11px}}
.crops img{{width:128px;height:128px;display:block}}</style></head><body>
<h1>Self-supervised refinement: {html.escape(str(run_dir))}</h1>
<p>Best iteration: <b>{report['best_iteration']}</b> ({html.escape(str(report['best_models']))}).
Stopped because: {html.escape(str(report['stopped_because']))}.</p>
<p>Detection rate: fraction of frames with at least one hand accepted by the live filter chain, at the
live configuration's thresholds. It counts false positives as detections: check the overlay grids
below (same frames, initial models left, best round right) for boxes that are not hands.</p>
<table>{head}{''.join(body)}</table>
{_skipped_html(report["iterations"])}
{_inputs_html(report["inputs"])}
{images}
{crops}
</body></html>
"""


def _inputs_html(inputs: list[dict[str, Any]]) -> str:
    """Which frames the run used for what: one line per input, by role."""
    if not inputs:
        return ""
    lines = []
    for item in inputs:
        count = "" if item["frames"] is None else f" ({item['frames']} frames)"
        lines.append(f"<li><b>{html.escape(item['role'])}</b> ({html.escape(item['use'])}): "
                     f"<code>{html.escape(item['path'])}</code>, {html.escape(item['frames_used'])}"
                     f"{count}</li>")
    return f"<h2>Inputs: which frames were used for what</h2><ul>{''.join(lines)}</ul>"


def _skipped_html(rows: list[dict[str, Any]]) -> str:
    """The target frames that could not be decoded (the same every round: counted, never used)."""
    skipped = rows[0].get("skipped_frames", {}) if rows else {}
    if not skipped:
        return ""
    counts = ", ".join(f"{html.escape(reason)}: {count}" for reason, count in skipped.items())
    return f"<p>Target frames skipped while reading (they could not be decoded): {counts}.</p>"


def _crops_html(sections: list[dict[str, Any]]) -> str:
    """The close-up grids: one figure per accepted hand, captioned with its frame and scores."""
    if not sections:
        return ""
    parts = ["<h2>Accepted hands, close up</h2><p>Every hand the filters accepted, zoomed in with its "
             "skeleton: track id, handedness, detection score (det) and mean keypoint score (kp). "
             "A crop that shows no hand is a false pseudo-label.</p>"]
    for section in sections:
        figures = "".join(
            f"<figure class='hand-crop'><img src='{html.escape(crop['path'])}' loading='lazy' "
            f"alt='{html.escape(crop['frame'])}'><figcaption>{html.escape(crop['frame'])}<br>"
            f"{html.escape(crop['caption'])}</figcaption></figure>" for crop in section["crops"])
        parts.append(f"<h3 id='{html.escape(section['name'])}'>{html.escape(section['title'])}: "
                     f"{len(section['crops'])} hands</h3><div class='crops'>{figures}</div>")
    return "\n".join(parts)
