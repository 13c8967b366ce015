"""The last stage of a replay: the output folder's files from the assembled frames.

``annotations.json`` (a COCO keypoint dataset of the filtered hands), ``predictions.jsonl``
(one line per frame, raw and filtered hands), ``stats.json`` (the filters' counts per input and
merged) and, when asked, ``poses_bag/``: an MCAP rosbag2 with the images, the filtered
HandPoseArray and optionally the hands drawn on each image (:mod:`.overlay_bag`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from hand_pose_refiner.atomic import atomic_write_json, atomic_write_text
from hand_pose_refiner.coco import build_coco
from hand_pose_refiner.hands import FrameHands
from hand_pose_refiner.images import read_bgr
from hand_pose_refiner.refinement.input_spec import InputSpec
from hand_pose_refiner.refinement.overlay_bag import write_overlay
from hand_pose_refiner.refinement.records import hands_to_json
from hand_pose_refiner.refinement.replay_types import InputResult, ReplaySummary, merged_stats
from hand_pose_refiner.refinement.shards import FrameRecord, Shard
from hand_pose_refiner.ros.bags import BagWriter
from hand_pose_refiner.skeleton import OBSERVED

ANNOTATIONS = "annotations.json"
PREDICTIONS = "predictions.jsonl"


@dataclass
class Collected:
    """What the files are written from: COCO entries, prediction lines and the bag's frames."""

    coco: list[tuple[str, FrameHands]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    bag_frames: list[tuple[int, Path, FrameHands]] = field(default_factory=list)


def collect(record: FrameRecord, shard: Shard, result: InputResult, collected: Collected, write_bag: bool,
            partial: Path) -> None:
    """One output frame into ``collected``, and its counts into its input's ``result``."""
    file_name = f"{shard.prefix}_{record.index:06d}.jpg"
    raw, kept = record.raw, record.kept
    collected.coco.append((f"images/{file_name}", kept))
    collected.lines.append(_json_line(shard.spec, record, file_name, raw, kept))
    if write_bag:
        collected.bag_frames.append((shard.number, partial / "images" / file_name, kept))
    result.frames += 1
    result.raw_hands += len(raw)
    result.accepted_hands += len(kept)
    result.frames_with_raw_hands += len(raw) > 0
    result.frames_with_hands += len(kept) > 0
    observed = kept.keypoint_states == OBSERVED
    result.keypoint_confidence_sum += float(kept.keypoint_scores[observed].sum())
    result.keypoint_confidence_count += int(observed.sum())


def write_outputs(partial: Path, summary: ReplaySummary, collected: Collected, write_bag: bool,
                  multi: bool, overlay: bool = False) -> None:
    """Annotations, predictions, statistics and (``write_bag``) the bag into the folder ``partial``."""
    atomic_write_json(partial / ANNOTATIONS, build_coco(collected.coco), indent=None)
    atomic_write_text(partial / PREDICTIONS, "".join(collected.lines))
    atomic_write_json(partial / "stats.json", {"per_input": summary.stats,
                                               "merged": merged_stats(summary.stats)})
    if write_bag and collected.bag_frames:
        write_bag_file(partial / "poses_bag", collected.bag_frames, multi, overlay)


def _json_line(spec: InputSpec, frame: FrameRecord, file_name: str, raw: FrameHands, kept: FrameHands) -> str:
    return json.dumps({"input": str(spec.path), "frame": frame.index, "file_name": f"images/{file_name}",
                       "stamp_ns": frame.stamp_ns, "width": frame.width, "height": frame.height,
                       "raw": hands_to_json(raw), "filtered": hands_to_json(kept)}) + "\n"


def write_bag_file(path: Path, frames: list[tuple[int, Path, FrameHands]], multi: bool,
                   overlay: bool = False) -> None:
    """Images (CompressedImage, JPEG) and filtered HandPoseArray, and with ``overlay`` the hands
    drawn on the images (hand_overlay); a topic prefix per input if several."""
    with BagWriter(path, "mcap") as writer:
        for number, image_path, hands in frames:
            prefix = f"/input{number:02d}" if multi else ""
            bgr = read_bgr(image_path)
            writer.write_compressed_image(f"{prefix}/camera/image_raw/compressed", bgr, hands.stamp_ns,
                                          hands.frame_id)
            writer.write_hands(f"{prefix}/hand_poses", hands)
            if overlay:
                write_overlay(writer, prefix, bgr, hands)
