"""Fingerprints of the filter chain's outputs, to prove that speed-ups change no result.

The streams below (the benchmark's synthetic two-hand stream, a corrupted variant that hits
every rule and every temporal-filter branch, and real reach-to-grasp recordings from the shared
data folder, alone and two at a time) run through :class:`PoseFilterPipeline` in both modes and
under several configurations. Each run is reduced to digests of its integer outputs (states,
track ids, handedness, rejection reasons and counts) and of its float outputs, plus per-run float
sums that allow a tolerance where only the order of floating-point operations changed.

``test/data/filter_reference.json`` holds the fingerprints of the original implementation; it was
written by running this file as a script::

    .venv/bin/python test/filter_reference.py ../shared/data
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hand_pose_refiner.config import Config  # noqa: E402
from hand_pose_refiner.corruption import corrupt, spike  # noqa: E402
from hand_pose_refiner.filters.pipeline import PoseFilterPipeline  # noqa: E402
from hand_pose_refiner.filters.temporal import FilterMode  # noqa: E402
from hand_pose_refiner.hands import FrameHands  # noqa: E402
from hand_pose_refiner.skeleton import INTERPOLATED, MISSING, REJECTED  # noqa: E402
from hand_pose_refiner.synthetic import curled_hand, open_hand, two_circling_hands  # noqa: E402

REFERENCE = Path(__file__).resolve().parent / "data" / "filter_reference.json"
RTG_SEQUENCES = 6


def corrupted_stream(count: int, seed: int = 1) -> list[FrameHands]:
    """The benchmark's motion with every kind of bad input a camera and a model produce."""
    rng = np.random.default_rng(seed)
    stamps = np.cumsum(rng.uniform(0.010, 0.060, count))
    frames = []
    for t in stamps:
        if rng.random() < 0.03:  # an out-of-order or repeated stamp
            t = t - rng.choice([0.0, 0.05])
        hands = [open_hand((200 + 80 * np.cos(t), 240 + 60 * np.sin(t)), scale=1.5),
                 curled_hand((440 + 80 * np.cos(1.3 * t), 240 + 60 * np.sin(1.3 * t)))]
        hands = [h + rng.normal(0, rng.choice([0.5, 3.0]), h.shape) for h in hands]
        roll = rng.random()
        if roll < 0.05:
            kind = str(rng.choice(["swapped_fingers", "background_snap", "wrong_scale", "left_right_mixup"]))
            hands[0] = corrupt(hands[0], kind, rng, (640, 480))
        elif roll < 0.15:
            hands[1] = spike(hands[1], rng, int(rng.integers(1, 4)))
        if rng.random() < 0.1:  # a duplicate detection of a hand
            hands.append(hands[0] + rng.normal(0, 2.0, (21, 2)))
        if rng.random() < 0.05:  # junk far away, tiny or huge
            hands.append(rng.uniform(0, 640, (21, 2)) * rng.choice([0.01, 1.0, 3.0]))
        if rng.random() < 0.08:  # a hand not detected in this frame
            hands.pop(int(rng.integers(len(hands))))
        if rng.random() < 0.03:
            hands = []
        order = rng.permutation(len(hands))
        keypoints = np.stack([hands[i] for i in order]) if hands else np.zeros((0, 21, 2))
        n = len(hands)
        states = np.zeros((n, 21), np.uint8)
        scores = rng.uniform(0.2, 1, (n, 21))
        if n:
            drop = rng.random((n, 21)) < 0.04
            keypoints[drop] = np.nan
            if rng.random() < 0.05:
                keypoints[rng.integers(n), rng.integers(21)] = np.inf
            states[rng.random((n, 21)) < 0.03] = rng.choice([INTERPOLATED, REJECTED, MISSING])
            scores[rng.random((n, 21)) < 0.02] = np.nan
        detection = rng.uniform(0.3, 1, n)
        if n and rng.random() < 0.03:
            detection[rng.integers(n)] = np.nan
        frames.append(FrameHands(round(t * 1e9), 640, 480, keypoints, keypoint_scores=scores,
                                 keypoint_states=states, detection_scores=detection,
                                 handedness=rng.integers(0, 3, n), handedness_scores=rng.uniform(0.3, 1, n)))
    return frames


def rtg_streams(shared_data: Path) -> dict[str, list[FrameHands]]:
    """Real OpenPose hands with real jitter, gaps and stamps: a few sequences, alone and in pairs."""
    from hand_pose_refiner.activity.rtg_dataset import load_rtg_dataset

    sequences = load_rtg_dataset(shared_data / "hand_actions" / "rtg_object_size", participants=["P1", "P5"])
    picked = sequences[:: max(1, len(sequences) // RTG_SEQUENCES)][:RTG_SEQUENCES]
    streams = {}
    for sequence in picked:
        streams[f"rtg_{sequence.name}"] = [frame for _, frame in sequence.frames()]
    for first, second in zip(picked[0::2], picked[1::2], strict=False):
        a = [frame for _, frame in first.frames()]
        b = [frame for _, frame in second.frames()]
        pairs = []
        for frame, other in zip(a, b, strict=False):
            other = other.derive(keypoints=other.keypoints + np.float32(120.0),
                                 boxes=other.boxes + np.float32(120.0),
                                 handedness=np.full(len(other), 1, np.uint8))
            pairs.append(FrameHands.concatenate([frame, other]) if len(other) else frame)
        streams[f"rtg_pair_{first.name}_{second.name}"] = pairs
    return streams


def configs() -> dict[str, Config]:
    """The default settings and variants that take the other branches of each stage."""
    base = Config()
    spatial, temporal, tracking = base.spatial_filter, base.temporal_filter, base.tracking
    rules = spatial.rules
    return {
        "default": base,
        "delay": replace(base, temporal_filter=replace(temporal, online_delay_s=0.1)),
        "no_smoothing_min_hits_3": replace(base, temporal_filter=replace(temporal, smoothing=False),
                                           tracking=replace(tracking, min_hits=3)),
        "rules_subset": replace(base, spatial_filter=replace(
            spatial, rules=tuple(r for r in rules if r not in ("duplicate", "keypoint_score", "bone_ratio")),
            max_hands=1)),
        "angle_only_no_image_limits": replace(base, spatial_filter=replace(
            spatial, rules=("joint_angle", "hand_size"), max_hand_size_fraction=1.0,
            max_bone_length_fraction=1.0, max_backward_bend_deg=20.0)),
        "spatial_off_min_hits_1": replace(base, spatial_filter=replace(spatial, enabled=False),
                                          tracking=replace(tracking, min_hits=1)),
    }


def streams(shared_data: Path | None) -> Iterator[tuple[str, list[FrameHands]]]:
    yield "bench", two_circling_hands(400)
    yield "corrupted", corrupted_stream(500)
    if shared_data is not None:
        yield from rtg_streams(shared_data).items()


def run_fingerprint(frames: list[FrameHands], config: Config, mode: FilterMode) -> dict[str, object]:
    """Digests of everything the pipeline reports for one stream."""
    pipeline = PoseFilterPipeline(config, mode)
    integers, floats = hashlib.sha256(), hashlib.sha256()
    sums = np.zeros(4)
    released: list[FrameHands] = []
    for frame in frames:
        released.extend(pipeline.push(frame))
        spatial = pipeline.last_spatial
        if spatial is not None:
            integers.update(repr((len(spatial.accepted), spatial.rejected_reasons)).encode())
            integers.update(spatial.accepted.keypoint_states.tobytes())
    released.extend(pipeline.flush())
    for frame in released:
        integers.update(repr((frame.stamp_ns, len(frame))).encode())
        for name in ("keypoint_states", "track_ids", "handedness"):
            integers.update(np.ascontiguousarray(getattr(frame, name)).tobytes())
        for name in ("keypoints", "keypoint_scores", "boxes", "detection_scores", "handedness_scores"):
            floats.update(np.ascontiguousarray(getattr(frame, name)).tobytes())
        sums += [np.nansum(frame.keypoints, dtype=np.float64),
                 np.nansum(frame.keypoint_scores, dtype=np.float64),
                 np.nansum(frame.boxes, dtype=np.float64), np.isnan(frame.keypoints).sum()]
    return {"integers": integers.hexdigest(), "floats": floats.hexdigest(), "sums": sums.tolist(),
            "frames_out": len(released), "stats": pipeline.stats.as_dict()}


def fingerprints(shared_data: Path | None) -> dict[str, dict[str, object]]:
    """Every stream under every configuration in both modes."""
    logging.getLogger("hand_pose_refiner").setLevel(logging.ERROR)
    result = {}
    for stream_name, frames in streams(shared_data):
        for config_name, config in configs().items():
            for mode in FilterMode:
                result[f"{stream_name}/{config_name}/{mode.value}"] = run_fingerprint(frames, config, mode)
    return result


if __name__ == "__main__":
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO.parent / "shared" / "data"
    REFERENCE.parent.mkdir(exist_ok=True)
    REFERENCE.write_text(json.dumps(fingerprints(data), indent=1, sort_keys=True) + "\n")
    print(f"wrote {REFERENCE}")
