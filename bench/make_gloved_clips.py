"""Gloved video clips with known keypoints, from the real bare-hand clips.

For each clip of ../shared/data/bare_hand_clips: the general model's tracked, filtered hands on
the bare clip (HandPipeline.track, the live rule: hands followed from frame to frame, spatial
filter, tracker, temporal filter with ``--look-ahead`` seconds of look-ahead so that short gaps
are filled, no live smoothing) are the *reference* poses (kept from an earlier run's NAME.json
with the same settings unless ``--fresh``); every frame is then painted with thick off-white
gloves and cuffs over those hands (hand_pose_refiner.gloving) and written at the clip's frame rate.
A frame with no reference hand is painted with the hands of the nearest frame that has some
(at most ``--hold`` seconds away), so that no bare hand shows, and keeps an empty reference (it
counts in no metric).

Writes, under ``--out`` (default ~/.cache/hand_pose_refiner/gloved_clips, outside the repository):
``NAME.mp4`` (the gloved clip), ``NAME.json`` (fps, size, and per frame index: the reference
hands' 21 keypoints, pixels, and which frame's hands were painted), and with ``--stills`` a few
PNGs of bare and gloved frames side by side. Then prints, per clip, the share of frames in which
the general model (the same HandPipeline) finds a hand on the bare clip and on the gloved one
(a found hand counts where it overlaps a reference hand), by the live rule and frame by frame.

    .venv/bin/python bench/make_gloved_clips.py [--out DIR] [--clips hands1 hands2 ...] [--stills 3]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import _checkout  # noqa: F401  (runs the checkout's code, not the installed copy)
import cv2
import numpy as np
import torch

from hand_pose_refiner.api import HandPipeline
from hand_pose_refiner.config import Config
from hand_pose_refiner.gloving import finds_reference_hand, paint_gloves
from hand_pose_refiner.refinement.input_spec import InputSpec
from hand_pose_refiner.refinement.inputs import read_frames

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT_OUT = Path.home() / ".cache" / "hand_pose_refiner" / "gloved_clips"
CLIPS = ("hands1", "hands2", "hands3", "hands4", "hands5", "hands8")


def reference_config(look_ahead_s: float) -> Config:
    """The general model's config with the temporal filter's look-ahead set (fills short gaps) and
    without live smoothing (it lags behind fast hands)."""
    config = Config()
    return replace(config, temporal_filter=replace(config.temporal_filter, online_delay_s=look_ahead_s,
                                                   smoothing=False))


def track_clip(pipeline: HandPipeline, frames: list[tuple[int, np.ndarray]]) -> list[np.ndarray]:
    """The tracked, filtered hands of each frame, ``(n, 21, 2)`` pixels, in frame order."""
    by_stamp: dict[int, np.ndarray] = {}
    for hands in pipeline.track_rgb(frames):
        by_stamp[hands.stamp_ns] = np.asarray(hands.keypoints, np.float64).reshape(-1, 21, 2)
    return [by_stamp.get(stamp, np.zeros((0, 21, 2))) for stamp, _ in frames]


def stored_reference(path: Path, how: str, frames: int) -> list[np.ndarray] | None:
    """The reference hands of an earlier run, when it made them the same way on the same frames."""
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    if record.get("reference") != how or len(record["frames"]) != frames:
        return None
    return [np.asarray(frame["hands"], np.float64).reshape(-1, 21, 2) for frame in record["frames"]]


def painted_source(reference: list[np.ndarray], stamps_s: np.ndarray, hold_s: float) -> list[int | None]:
    """Per frame, the frame whose hands are painted on it: itself when it has a reference hand, else
    the nearest frame with one within ``hold_s`` seconds (None: nothing painted)."""
    with_hands = np.array([i for i, hands in enumerate(reference) if len(hands)], int)
    sources: list[int | None] = []
    for i, hands in enumerate(reference):
        if len(hands) or not with_hands.size:
            sources.append(i if len(hands) else None)
            continue
        nearest = int(with_hands[np.argmin(np.abs(stamps_s[with_hands] - stamps_s[i]))])
        sources.append(nearest if abs(stamps_s[nearest] - stamps_s[i]) <= hold_s else None)
    return sources


def detected_frames(pipeline: HandPipeline, frames: list[tuple[int, np.ndarray]],
                    reference: list[np.ndarray], follow: bool) -> int:
    """Frames with a reference hand in which the general model finds it (a found hand whose
    keypoint box overlaps it, see finds_reference_hand): with ``follow``, the live rule
    (HandPipeline.track: hands followed from frame to frame, filters); without, each frame alone
    (detector, pose model, spatial filter), as a replay's models see every frame."""
    if follow:
        found = {hands.stamp_ns: hands.keypoints for hands in pipeline.track_rgb(frames)}
    else:
        found = {stamp: pipeline(rgb, color="rgb").keypoints for stamp, rgb in frames}
    return sum(finds_reference_hand(found.get(stamp, np.zeros((0, 21, 2))), hands)
               for (stamp, _), hands in zip(frames, reference, strict=True) if len(hands))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--clips", nargs="+", default=list(CLIPS))
    parser.add_argument("--look-ahead", type=float, default=0.25,
                        help="temporal filter look-ahead of the reference poses, seconds")
    parser.add_argument("--hold", type=float, default=0.5,
                        help="paint a frame without reference hands with those of a frame this close, "
                        "seconds")
    parser.add_argument("--fresh", action="store_true", help="track the bare clips again")
    parser.add_argument("--no-rates", action="store_true", help="write the clips, skip the detection rates")
    parser.add_argument("--stills", type=int, default=0, help="PNGs (bare | gloved) per clip")
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    pipeline = HandPipeline(reference_config(args.look_ahead))
    live = HandPipeline(Config())
    print("frames with a reference hand in which the general model finds it: live rule (followed) / "
          "each frame alone")
    print(f"{'clip':8s} {'frames':>6s} {'fps':>6s} {'ref':>5s} {'painted':>7s} {'bare live':>9s} "
          f"{'gloved live':>11s} {'bare alone':>10s} {'gloved alone':>12s} {'s':>5s}", flush=True)
    totals = np.zeros(6, int)
    for name in args.clips:
        started = time.perf_counter()
        path = args.data / "bare_hand_clips" / f"{name}.webm"
        capture = cv2.VideoCapture(str(path))
        fps = float(capture.get(cv2.CAP_PROP_FPS))
        capture.release()
        frames = [(frame.stamp_ns, frame.rgb) for frame in read_frames(InputSpec(path))]
        how = ("HandPipeline.track on the bare clip, general model, "
               f"temporal_filter.online_delay_s {args.look_ahead}, smoothing off")
        reference = None if args.fresh else stored_reference(args.out / f"{name}.json", how, len(frames))
        if reference is None:
            # Rounded as NAME.json stores them, so that a later run paints the same pixels.
            reference = [np.round(hands, 2) for hands in track_clip(pipeline, frames)]
        stamps_s = np.array([stamp for stamp, _ in frames]) * 1e-9
        sources = painted_source(reference, stamps_s, args.hold)
        height, width = frames[0][1].shape[:2]
        writer = cv2.VideoWriter(str(args.out / f"{name}.mp4"), cv2.VideoWriter.fourcc(*"mp4v"), fps,
                                 (width, height))
        gloved: list[tuple[int, np.ndarray]] = []
        for index, (stamp, rgb) in enumerate(frames):
            source = sources[index]
            bgr = np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), np.uint8)
            painted = paint_gloves(bgr, list(reference[source]) if source is not None else [])
            writer.write(painted)
            gloved.append((stamp, cv2.cvtColor(painted, cv2.COLOR_BGR2RGB)))
        writer.release()
        picks = np.linspace(0, len(frames) - 1, args.stills + 2).round().astype(int)[1:-1]
        for index in picks:
            side = np.hstack([frames[index][1], gloved[index][1]])
            cv2.imwrite(str(args.out / f"{name}_{index:04d}.png"), cv2.cvtColor(side, cv2.COLOR_RGB2BGR))
        record = {"clip": str(path), "fps": fps, "width": width, "height": height,
                  "reference": how,
                  "frames": [{"index": i, "stamp_ns": int(stamp), "painted_from": sources[i],
                              "hands": np.round(reference[i], 2).tolist()}
                             for i, (stamp, _) in enumerate(frames)]}
        (args.out / f"{name}.json").write_text(json.dumps(record))
        if args.no_rates:
            print(f"{name:8s} {len(frames):6d} {fps:6.2f} written", flush=True)
            continue
        # Detection on the decoded mp4, as every later reader sees it.
        decoded = [(frame.stamp_ns, frame.rgb) for frame in read_frames(InputSpec(args.out / f"{name}.mp4"))]
        with_reference = sum(len(hands) > 0 for hands in reference)
        rates = [detected_frames(live, source_frames, reference, follow)
                 for follow in (True, False) for source_frames in (frames, decoded)]
        painted_frames = sum(source is not None for source in sources)
        totals += (len(frames), with_reference, *rates)
        shares = " ".join(f"{rate / max(with_reference, 1):{column}.3f}"
                          for rate, column in zip(rates, (9, 11, 10, 12), strict=True))
        print(f"{name:8s} {len(frames):6d} {fps:6.2f} {with_reference:5d} {painted_frames:7d} {shares} "
              f"{time.perf_counter() - started:5.0f}", flush=True)
    if args.no_rates:
        return
    shares = " ".join(f"{rate / max(totals[1], 1):{column}.3f}"
                      for rate, column in zip(totals[2:], (9, 11, 10, 12), strict=True))
    print(f"{'all':8s} {totals[0]:6d} {'':6s} {totals[1]:5d} {'':7s} {shares}")


if __name__ == "__main__":
    main()
