"""The ``annotate`` subcommand (registered by :func:`add_command`); the work is in :mod:`.annotate`.

The work and torch are imported inside :func:`_cmd_annotate`, so that registering the subcommand
costs the command line nothing (see :mod:`hand_pose_refiner.cli`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def _cmd_annotate(args: argparse.Namespace) -> int:
    import torch

    from hand_pose_refiner.annotate import ActivitySource, annotate, load_activity
    from hand_pose_refiner.api import HandPipeline
    from hand_pose_refiner.config import load_config
    from hand_pose_refiner.refinement.input_spec import InputSpec

    torch.set_num_threads(max(1, args.threads))
    config = load_config(args.config)
    spec = InputSpec(args.input, args.image_topic, args.fps, max_frames=args.max_frames)
    activity = (ActivitySource(None, "switched off (--no-activity): hands only") if args.no_activity
                else load_activity(config.activity))
    print(f"activity: {activity.description}")
    pipeline = HandPipeline(config, device=args.device)
    summary = annotate(spec, args.out, pipeline, activity, progress=not args.quiet)
    print(f"wrote {summary.out}: {summary.frames} frames, {summary.width}x{summary.height} at "
          f"{summary.fps:.1f} frames/s, {summary.hands} hands in {summary.frames_with_hands} frames, "
          f"{summary.labelled_hands} with an activity label ({summary.seconds:.1f} s)")
    if summary.skipped_line():
        print(summary.skipped_line())
    return 0


def add_command(commands: Any) -> None:
    """Register ``annotate`` on the main parser's subparsers."""
    parser = commands.add_parser(
        "annotate", help="draw the hands (and activities) of a video, bag or image folder into an mp4",
        description="Run what the live graph runs over a recording (the detector, the pose estimator "
                    "following hands from frame to frame, the online filter chain), and the activity "
                    "recogniser (activity.checkpoint; empty = the packaged reach model; a checkpoint "
                    "that does not load is an error, --no-activity draws hands only), and write "
                    "every frame with each hand's skeleton, track id, handedness and activity to an mp4.")
    parser.add_argument("input", type=Path, metavar="INPUT",
                        help="video file, rosbag2 (folder, .mcap, .db3), ROS 1 .bag or folder of images")
    parser.add_argument("--out", type=Path, required=True, help="mp4 file to write (must not exist)")
    parser.add_argument("--config", type=Path, default=None, metavar="FILE",
                        help="YAML config (default: the packaged config/assembly.yaml)")
    parser.add_argument("--image-topic", default=None,
                        help="image topic of a bag (default: the bag's only image topic)")
    parser.add_argument("--max-frames", type=int, default=None, help="at most this many frames")
    parser.add_argument("--fps", type=float, default=10.0, help="frame rate that stamps an image folder")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None,
                        help="torch device (default: models.device of the config)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--quiet", action="store_true", help="no progress display")
    parser.add_argument("--no-activity", action="store_true", help="draw hands only, no activity labels")
    parser.set_defaults(handler=_cmd_annotate)
