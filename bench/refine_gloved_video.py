"""Refinement on gloved video, with and without the temporal filter, scored on held-out clips.

Targets are gloved clips written by bench/make_gloved_clips.py (default: hands2, hands3, hands5,
hands8); whole clips are held out for the figures (default: hands1, hands4, chosen before any
run). The ``refine`` loop runs on the targets as video: the pseudo-label step replays them with
the tracker, the velocity gate and the gap filling of the temporal filter (offline mode), so a
hand is interpolated into frames where the detector found nothing. The bare versions of the
target clips are the anchors (the initial models' hands on them, as in the main job); the
labelled hands guard PCK. The reference poses of the gloved frames are never trained on: they
score the rounds only.

Per round and run (temporal filter on, then off): on the held-out clips, with the live config
(temporal filter on for both runs, so the two columns compare models), the share of frames with a
reference hand in which it is found (a found hand overlapping it, gloving.finds_reference_hand),
PCK@0.2 (box of the reference hand; a reference hand with no predicted hand counts as wrong) and
EPE (pixels, found hands only) against the reference;
the same on the targets (their evaluation replay); and the pseudo-labels: hands, hands in frames
where the detector had found nothing (interpolated by the temporal filter), and the PCK@0.2 of
each kind against the reference.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/refine_gloved_video.py [--clips DIR]
        [--out runs/gloved_video] [--stride 3] [--max-frames 24] [--iterations 3] [--runs on off]
        [--seed 0] [--pseudo-max-gap SECONDS]

A run's folder is ``OUT/temporal_on`` or ``OUT/temporal_off``, with ``_sSEED`` for a seed other
than 0 and ``_gapS`` for a ``--pseudo-max-gap`` (the temporal filter's ``max_gap_s`` in the
pseudo-label step; the held-out replays keep the live config's).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import _checkout  # noqa: F401  (runs the checkout's code, not the installed copy)
import numpy as np
import torch

from hand_pose_refiner.config import Config
from hand_pose_refiner.gloving import finds_reference_hand, keypoint_boxes
from hand_pose_refiner.metrics import epe, pck
from hand_pose_refiner.models import create_backend
from hand_pose_refiner.refinement.input_spec import InputSpec
from hand_pose_refiner.refinement.refine import LabelledSet, Refinement, RefineSettings, round_weights
from hand_pose_refiner.refinement.replay import ReplaySettings, replay

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT_CLIPS = Path.home() / ".cache" / "hand_pose_refiner" / "gloved_clips"
PREDICTIONS = "predictions.jsonl"
FIGURES = "video_figures.json"


@dataclass
class Reference:
    """The reference hands of one gloved clip, per frame index of the clip, and its frame rate."""

    fps: float
    hands: list[np.ndarray]

    @classmethod
    def load(cls, path: Path) -> Reference:
        record = json.loads(path.read_text())
        return cls(float(record["fps"]), [np.asarray(frame["hands"], np.float64).reshape(-1, 21, 2)
                                          for frame in record["frames"]])

    def at(self, stamp_ns: int) -> np.ndarray:
        """The reference hands of the frame with this stamp (the clip is stamped index / fps)."""
        index = round(stamp_ns * 1e-9 * self.fps)
        return self.hands[index] if 0 <= index < len(self.hands) else np.zeros((0, 21, 2))


def mean_distances(hands: np.ndarray, hand: np.ndarray) -> np.ndarray:
    """Mean keypoint distance of each of ``hands`` to ``hand`` over the keypoints both have (NaN
    where they share none)."""
    distances = np.linalg.norm(hands - hand, axis=-1)
    shared = np.isfinite(distances)
    counts = shared.sum(axis=-1)
    return np.where(counts > 0, np.where(shared, distances, 0.0).sum(axis=-1) / np.maximum(counts, 1), np.nan)


@dataclass
class Tally:
    """Matched reference hands and frame counts of one scored set of frames."""

    frames: int = 0
    detected: int = 0
    predicted: list[np.ndarray] | None = None
    truth: list[np.ndarray] | None = None

    def __post_init__(self) -> None:
        self.predicted, self.truth = [], []

    def add(self, reference: np.ndarray, found: np.ndarray) -> None:
        """One frame: its reference hands and the hands found; each reference hand is scored
        against the found hand closest to it (NaN when none was found)."""
        assert self.predicted is not None and self.truth is not None
        self.frames += 1
        self.detected += finds_reference_hand(found, reference)
        for truth in reference:
            guess = np.full_like(truth, np.nan)
            if len(found):
                error = mean_distances(found, truth)
                if np.isfinite(error).any():
                    guess = found[int(np.nanargmin(error))]
            self.predicted.append(guess)
            self.truth.append(truth)

    def figures(self) -> dict[str, float]:
        assert self.predicted is not None and self.truth is not None
        if not self.truth:
            return {"frames": self.frames, "detection_rate": float("nan"), "pck": float("nan"),
                    "epe": float("nan"), "hands": 0}
        predicted, truth = np.stack(self.predicted), np.stack(self.truth)
        boxes = keypoint_boxes(truth)
        rate = self.detected / self.frames if self.frames else float("nan")
        return {"frames": self.frames, "detection_rate": rate,
                "pck": pck(predicted, truth, boxes, 0.2), "epe": epe(predicted, truth), "hands": len(truth)}


def hands_of(rows: Iterable[dict[str, Any]]) -> np.ndarray:
    return np.array([[[np.nan if v is None else v for v in point] for point in row["keypoints"]]
                     for row in rows], np.float64).reshape(-1, 21, 2)


def lines(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / PREDICTIONS).read_text().splitlines() if line.strip()]


def score_replay(folder: Path, references: dict[str, Reference], clip: str | None = None) -> dict[str, float]:
    """Detection rate, PCK@0.2, EPE of a replay's filtered hands against the reference, over the
    frames that have a reference hand (of one clip, when given)."""
    tally = Tally()
    for line in lines(folder):
        if clip is not None and Path(line["input"]).stem != clip:
            continue
        reference = references[Path(line["input"]).stem].at(line["stamp_ns"])
        if len(reference):
            tally.add(reference, hands_of(line["filtered"]))
    return tally.figures()


def score_pseudo_labels(folder: Path, references: dict[str, Reference]) -> dict[str, float]:
    """Pseudo-labels of a round: hands in all, hands in frames where the detector found nothing
    (the temporal filter interpolated them), and the PCK@0.2 of each kind against the reference."""
    detected, interpolated = Tally(), Tally()
    counts = {"hands": 0, "interpolated_hands": 0, "frames": 0, "interpolated_frames": 0}
    for line in lines(folder):
        found = hands_of(line["filtered"])
        if not len(found):
            continue
        kind = "interpolated" if not line["raw"] else "detected"
        counts["hands"] += len(found)
        counts["frames"] += 1
        if kind == "interpolated":
            counts["interpolated_hands"] += len(found)
            counts["interpolated_frames"] += 1
        reference = references[Path(line["input"]).stem].at(line["stamp_ns"])
        # PCK of the pseudo-labels themselves: each found hand against its closest reference hand.
        tally = interpolated if kind == "interpolated" else detected
        for hand in found:
            if len(reference):
                error = mean_distances(reference, hand)
                tally.add(reference[[int(np.nanargmin(error))]], hand[None])
            else:
                tally.add(np.full((1, 21, 2), np.nan), hand[None])
    return {**counts, "pck_detected": detected.figures()["pck"],
            "pck_interpolated": interpolated.figures()["pck"]}


def with_temporal_filter(config: Config, enabled: bool) -> Config:
    return replace(config, temporal_filter=replace(config.temporal_filter, enabled=enabled))


def evaluate_held_out(run_dir: Path, k: int, held_out: tuple[InputSpec, ...], config: Config,
                      references: dict[str, Reference]) -> dict[str, Any]:
    """Round ``k``'s models on the held-out clips with the live config (temporal filter on) and,
    for the detection rate alone, with the temporal filter off."""
    detector_path, estimator_path = round_weights(run_dir, k) if k else (None, None)
    base = config.models
    models = replace(base, detector_checkpoint=str(detector_path or base.detector_checkpoint),
                     pose_checkpoint=str(estimator_path or base.pose_checkpoint))
    detector, estimator = create_backend(replace(config, models=models))
    options = ReplaySettings(cache_dir=run_dir / "held_out_cache", overwrite=True, progress=False)
    folder = run_dir / f"iter{k}" / "held_out"
    replay(held_out, folder, with_temporal_filter(config, True), detector, estimator, options)
    result: dict[str, Any] = score_replay(folder, references)
    untimed = run_dir / f"iter{k}" / "held_out_no_temporal"
    replay(held_out, untimed, with_temporal_filter(config, False), detector, estimator, options)
    result["detection_rate_no_temporal"] = score_replay(untimed, references)["detection_rate"]
    return result


def run_one(name: str, args: argparse.Namespace, temporal: bool, references: dict[str, Reference]
            ) -> list[dict[str, Any]]:
    """One refinement run; per round, the figures of the table."""
    clips = args.clips
    spec = {"stride": args.stride, "max_frames": args.max_frames}
    targets = tuple(InputSpec(clips / f"{clip}.mp4", **spec) for clip in args.targets)
    held_out = tuple(InputSpec(clips / f"{clip}.mp4", **spec) for clip in args.held_out)
    anchors = tuple(InputSpec(args.data / "bare_hand_clips" / f"{clip}.webm", stride=args.anchor_stride)
                    for clip in args.targets)
    labelled = (LabelledSet(args.data / "labelled_hands/onehand10k/test_onehand10k.json"),
                LabelledSet(args.data / "labelled_hands/rhd/test_rhd.json", tip_first=True))
    options = RefineSettings(targets=targets, anchors=anchors, labelled=labelled,
                            iterations=args.iterations, patience=args.iterations, epochs=args.epochs,
                            detector_epochs=args.detector_epochs, seed=args.seed,
                            max_train_images_per_input=args.max_train_images, anchor_ratio=args.anchor_ratio)
    config = with_temporal_filter(Config(), temporal)
    if args.pseudo_max_gap is not None:
        gap = replace(config.temporal_filter, max_gap_s=args.pseudo_max_gap)
        config = replace(config, temporal_filter=gap)
    run_dir = args.out / name
    started = time.perf_counter()

    def on_step(step: str, result: object) -> None:
        print(f"  [{name} {time.perf_counter() - started:6.0f} s] {step}", flush=True)
        if step.endswith("/evaluate"):
            k = int(step.split("/")[0][4:])
            figures = evaluate_held_out(run_dir, k, held_out, Config(), references)
            print(f"  [{name} {time.perf_counter() - started:6.0f} s] round {k} held-out: " + fmt(figures),
                  flush=True)

    refinement = Refinement(run_dir, options, config, ReplaySettings(progress=False), on_step=on_step)
    refinement.run()
    for k in range(args.iterations + 1):
        if (run_dir / f"iter{k}" / "eval").is_dir() and not (run_dir / f"iter{k}" / "held_out").is_dir():
            evaluate_held_out(run_dir, k, held_out, Config(), references)  # a resumed run's earlier rounds
    table = collect(run_dir, references)
    (run_dir / FIGURES).write_text(json.dumps(table, indent=1, default=float))
    print(f"  [{name}] {time.perf_counter() - started:.0f} s", flush=True)
    return table


def collect(run_dir: Path, references: dict[str, Reference]) -> list[dict[str, Any]]:
    """The table's rows from a run folder: every round whose evaluation and held-out replays are
    there (also of a run stopped early)."""
    table = []
    k = 0
    while (run_dir / f"iter{k}" / "held_out_no_temporal" / PREDICTIONS).is_file():
        folder = run_dir / f"iter{k}"
        held_out: dict[str, Any] = dict(score_replay(folder / "held_out", references))
        held_out["detection_rate_no_temporal"] = score_replay(folder / "held_out_no_temporal",
                                                              references)["detection_rate"]
        clips = sorted({Path(line["input"]).stem for line in lines(folder / "held_out")})
        held_out["by_clip"] = {clip: score_replay(folder / "held_out", references, clip) for clip in clips}
        row: dict[str, Any] = {"round": k, "held_out": held_out,
                               "targets": score_replay(folder / "eval", references)}
        if k:
            row["pseudo"] = score_pseudo_labels(folder / "pseudo", references)
        table.append(row)
        k += 1
    return table


def fmt(figures: dict[str, float]) -> str:
    return (f"det {figures['detection_rate']:.3f} PCK@0.2 {figures['pck']:.3f} EPE {figures['epe']:.1f} px "
            f"({figures['frames']} frames)")


def print_table(name: str, table: list[dict[str, Any]]) -> None:
    print(f"\n### temporal filter {name} in the pseudo-label step\n")
    print("| round | held-out det | held-out det, no temporal | held-out PCK@0.2 | held-out EPE px "
          "| targets det | targets PCK@0.2 | pseudo-labels (hands) | from interpolation (hands) "
          "| PCK@0.2 detected / interpolated pseudo-labels |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in table:
        h, t, p = row["held_out"], row["targets"], row.get("pseudo")
        pseudo = (f"{p['hands']} | {p['interpolated_hands']} | {p['pck_detected']:.3f} / "
                  f"{p['pck_interpolated']:.3f}") if p else "- | - | -"
        print(f"| {row['round']} | {h['detection_rate']:.3f} | {h['detection_rate_no_temporal']:.3f} "
              f"| {h['pck']:.3f} | {h['epe']:.1f} | {t['detection_rate']:.3f} | {t['pck']:.3f} | {pseudo} |")
    print("\nheld-out clips apart (detection rate / PCK@0.2, per round): " + "; ".join(
        f"{clip} " + " ".join(f"{row['held_out']['by_clip'][clip]['detection_rate']:.3f}/"
                              f"{row['held_out']['by_clip'][clip]['pck']:.3f}" for row in table)
        for clip in (table[0]["held_out"].get("by_clip", {}) if table else {})))


def run_name(name: str, args: argparse.Namespace) -> str:
    """The run's folder under ``--out``: ``temporal_on``/``temporal_off`` with the seed and gap."""
    seed = f"_s{args.seed}" if args.seed else ""
    gap = f"_gap{args.pseudo_max_gap:g}" if args.pseudo_max_gap is not None else ""
    return f"temporal_{name}{seed}{gap}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--clips", type=Path, default=DEFAULT_CLIPS,
                        help="the folder bench/make_gloved_clips.py wrote")
    parser.add_argument("--out", type=Path, default=Path("runs/gloved_video"))
    parser.add_argument("--targets", nargs="+", default=["hands2", "hands3", "hands5", "hands8"])
    parser.add_argument("--held-out", nargs="+", default=["hands1", "hands4"])
    parser.add_argument("--stride", type=int, default=3)
    parser.add_argument("--max-frames", type=int, default=24)
    parser.add_argument("--anchor-stride", type=int, default=10)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--detector-epochs", type=int, default=6)
    parser.add_argument("--max-train-images", type=int, default=12)
    parser.add_argument("--anchor-ratio", type=float, default=1.0)
    parser.add_argument("--runs", nargs="+", choices=("on", "off"), default=["on", "off"])
    parser.add_argument("--seed", type=int, default=0, help="the refinement's seed (fine-tuning)")
    parser.add_argument("--pseudo-max-gap", type=float, default=None,
                        help="temporal_filter.max_gap_s of the pseudo-label step (default: the live "
                        "config's)")
    parser.add_argument("--table-only", action="store_true",
                        help="print the tables of the runs under --out as far as they got (runs "
                        "started separately, or stopped)")
    args = parser.parse_args()
    references = {clip: Reference.load(args.clips / f"{clip}.json")
                  for clip in (*args.targets, *args.held_out)}
    if args.table_only:
        for name in args.runs:
            print_table(name, collect(args.out / run_name(name, args), references))
        return
    if set(args.targets) & set(args.held_out):
        parser.error("a clip is either a target or held out")
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)
    tables = {}
    for name in args.runs:
        print(f"run: temporal filter {name}", flush=True)
        tables[name] = run_one(run_name(name, args), args, name == "on", references)
    for name, table in tables.items():
        print_table(name, table)


if __name__ == "__main__":
    main()
