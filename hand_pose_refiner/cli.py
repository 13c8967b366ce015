"""The ``hand-pose-refiner`` command: one entry point, one subcommand per job.

Each subcommand imports its work inside its function: that work loads torch, rclpy or the data
readers, and ``--help``, ``config show`` and ``config check`` without checkpoints start without them.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hand_pose_refiner import __version__
from hand_pose_refiner.activity.cli import add_commands as add_activity_commands
from hand_pose_refiner.annotate_cli import add_command as add_annotate_command
from hand_pose_refiner.config import Config, commented_yaml, load_config
from hand_pose_refiner.errors import USER_ERRORS
from hand_pose_refiner.refinement.cli import add_commands as add_refinement_commands
from hand_pose_refiner.ros.nodes import DEFAULT_GRAPH, NODE_EXECUTABLES

Handler = Callable[[argparse.Namespace], int]


def _add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None, metavar="FILE",
                        help="YAML config (default: the packaged config/assembly.yaml)")


def _cmd_config_check(args: argparse.Namespace) -> int:
    from hand_pose_refiner.checkpoint_check import checkpoint_problems
    from hand_pose_refiner.refinement.recipe import missing_inputs

    config = load_config(args.config)
    problems = checkpoint_problems(config) + missing_inputs(config.refinement)
    for problem in problems:
        print(f"{_PROG}: error: {args.config or 'default config'}: {problem}", file=sys.stderr)
    if problems:
        return 2
    print(f"{args.config or 'default config'}: ok")
    return 0


def _cmd_config_show(args: argparse.Namespace) -> int:
    config = Config() if args.defaults else load_config(args.config)
    if args.flat:
        for name, value in config.to_ros_parameters().items():
            print(f"{name} = {value!r}")
    else:
        print(commented_yaml(config), end="")
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    """Report which optional pieces import, so a user knows what will work."""
    checks = {
        "ROS 2 messages (hand_pose_refiner.msg)": "hand_pose_refiner.msg",
        "rclpy": "rclpy",
        "rosbags": "rosbags",
        "torch": "torch",
        "OpenCV (cv2)": "cv2",
        "openvino (optional: fast CPU inference)": "openvino",
        "cv_bridge (optional)": "cv_bridge",
        "ray (optional: --ray, the cluster extra)": "ray",
        "mmcv ops (optional, backend mmlab)": "mmcv.ops",
        "mmdet (optional, backend mmlab)": "mmdet",
        "mmpose (optional, backend mmlab)": "mmpose",
    }
    import importlib

    missing_required = 0
    for label, module in checks.items():
        try:
            importlib.import_module(module)
            state = "ok"
        except ImportError as exc:
            state = f"missing ({exc})"
            missing_required += "optional" not in label
        print(f"{label:42s} {state}")
    load_config(args.config)
    print(f"{'config':42s} ok")
    return 1 if missing_required else 0


def _cmd_labels_to_bag(args: argparse.Namespace) -> int:
    from hand_pose_refiner.labels_to_bag import labels_to_bag

    started = time.perf_counter()
    summary = labels_to_bag(args.annotations, args.out, images_dir=args.images_dir,
                            tip_first=args.tip_first, storage=args.storage,
                            image_topic=args.image_topic, hands_topic=args.hands_topic,
                            compressed=args.compressed, frame_period_s=1.0 / args.fps)
    print(f"wrote {args.out}: {summary.images} images, {summary.hands} hands, "
          f"{summary.keypoints} labelled keypoints ({args.storage}, "
          f"{time.perf_counter() - started:.2f} s); read back {summary.read_back} HandPoseArray "
          f"messages on {args.hands_topic}")
    return 0


def _cmd_tune_filters(args: argparse.Namespace) -> int:
    import numpy as np

    from hand_pose_refiner import tuning

    config = load_config(args.config)
    rng = np.random.default_rng(args.seed)
    labelled = tuning.load_labelled_poses(args.annotations, args.tip_first)
    if not labelled:
        print(f"{_PROG}: error: no hand with enough labelled keypoints in the given files", file=sys.stderr)
        return 2
    good = tuning.augment(labelled, args.augment, rng)
    print(f"{len(labelled)} labelled hands, {len(good)} good poses after augmentation")
    points = tuning.spatial_sweep(good, config, rng) + tuning.speed_sweep(good, config, rng)
    if args.model_predictions:
        points += _prediction_points(args, config, rng)
    print(tuning.format_table(points))
    json_path, png_path = tuning.write_report(points, args.out)
    print(f"wrote {json_path} and {png_path}")
    return 0


def _prediction_points(args: argparse.Namespace, config: Config, rng: Any) -> list[Any]:
    """The sweep on the models' own predictions over transformed labelled images."""
    from hand_pose_refiner import tuning
    from hand_pose_refiner.coco import load_coco
    from hand_pose_refiner.models import create_backend

    images = [image for path in args.annotations for image in load_coco(path)]
    images += [image for path in args.tip_first for image in load_coco(path, tip_first=True)]
    detector, estimator = create_backend(config)
    poses = tuning.predicted_poses(images, detector, estimator, args.model_predictions, rng)
    bad = sum(p.bad for p in poses)
    print(f"{len(poses)} predicted hands on {len(images) * args.model_predictions} transformed labelled "
          f"images: {len(poses) - bad} good (PCK >= {tuning.GOOD_PCK}), {bad} bad (PCK < {tuning.BAD_PCK})")
    return tuning.prediction_check(poses, config)


_PROG = "hand-pose-refiner"


def _cmd_run(args: argparse.Namespace) -> int:
    from hand_pose_refiner.ros.runner import graph_nodes, run_graph

    return run_graph(graph_nodes(args.nodes, args.overlay), args.config, args.namespace, args.image_topic,
                     args.ros_args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_PROG,
        description="Reliable hand poses for robot cells, gloved hands included: anatomical "
                    "filtering, self-supervised refinement on unlabelled recordings, activity "
                    "recognition for cobot controllers.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    config = commands.add_parser("config", help="check or print a configuration file")
    config_commands = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = config_commands.add_parser("check", help="validate a config file and the checkpoints it "
                                                     "names (each must exist and load), then exit")
    _add_config_option(check)
    check.set_defaults(handler=_cmd_config_check)
    show = config_commands.add_parser("show", help="print the effective config with help comments")
    _add_config_option(show)
    show.add_argument("--flat", action="store_true", help="print as flat ROS parameter names")
    show.add_argument("--defaults", action="store_true",
                      help="print the schema's defaults instead of a file's values")
    show.set_defaults(handler=_cmd_config_show)

    doctor = commands.add_parser("doctor", help="report which dependencies and interfaces import")
    _add_config_option(doctor)
    doctor.set_defaults(handler=_cmd_doctor)

    to_bag = commands.add_parser(
        "labels-to-bag",
        help="turn a labelled COCO hand dataset into a rosbag2 with images and HandPoseArray",
        description="Write every image of a COCO keypoint file and its labelled hands to a "
                    "rosbag2, to play in Foxglove/RViz or to feed the nodes a known input.")
    to_bag.add_argument("annotations", type=Path, help="COCO keypoint JSON file")
    to_bag.add_argument("--out", type=Path, required=True, help="bag folder to create")
    to_bag.add_argument("--images-dir", type=Path, default=None,
                        help="folder of the images (default: the JSON file's folder)")
    to_bag.add_argument("--tip-first", action="store_true",
                        help="the dataset lists each finger tip first (RHD)")
    to_bag.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    to_bag.add_argument("--image-topic", default="/camera/image_raw")
    to_bag.add_argument("--hands-topic", default="/hand_poses")
    to_bag.add_argument("--compressed", action="store_true",
                        help="store images as sensor_msgs/CompressedImage (jpeg)")
    to_bag.add_argument("--fps", type=float, default=10.0, help="frame rate of the written stamps")
    to_bag.set_defaults(handler=_cmd_labels_to_bag)

    run = commands.add_parser(
        "run", help="run the ROS 2 node graph in one process (no launch system needed)",
        description="Start the hand pose nodes in one process with a multi-threaded executor, "
                    "configured and activated at once. Topics are relative to --namespace.")
    _add_config_option(run)
    run.add_argument("--namespace", default="", help="namespace of every node (one per camera)")
    run.add_argument("--image-topic", default=None, help="camera image topic (default: topics.image)")
    run.add_argument("--nodes", nargs="+", default=list(DEFAULT_GRAPH), choices=list(NODE_EXECUTABLES),
                     metavar="NODE", help=f"nodes to start (default: {' '.join(DEFAULT_GRAPH)}; "
                     f"all: {' '.join(NODE_EXECUTABLES)})")
    run.add_argument("--overlay", action="store_true",
                     help="also start pose_overlay (the image with the hands drawn, on topics.overlay)")
    run.add_argument("--ros-args", nargs=argparse.REMAINDER, default=[], dest="ros_args", metavar="ARG",
                     help="ROS arguments for every node, last on the line (-p, --params-file, -r, "
                          "--log-level; -r __ns:= namespaces the graph; -r __node:= is ignored)")
    run.set_defaults(handler=_cmd_run)

    tune = commands.add_parser(
        "tune-filters",
        help="sweep filter parameters on labelled hands: good poses kept vs bad poses let through",
        description="Corrupt labelled hands the ways pose models fail (swapped fingers, keypoints "
                    "snapped to the background, wrong scale, left/right mix-up, single-frame "
                    "spikes) and print, per parameter value, the fraction of good poses kept "
                    "and of bad poses let through; writes tune_filters.json and .png.")
    tune.add_argument("annotations", type=Path, nargs="*", help="COCO keypoint files (base-first order)")
    tune.add_argument("--tip-first", type=Path, action="append", default=[], metavar="FILE",
                      help="a COCO file listing each finger tip first (RHD); repeatable")
    _add_config_option(tune)
    tune.add_argument("--out", type=Path, default=Path("runs/tune_filters"), help="output folder")
    tune.add_argument("--augment", type=int, default=40, help="random transforms per labelled hand")
    tune.add_argument("--seed", type=int, default=0)
    tune.add_argument("--model-predictions", type=int, default=0, metavar="N",
                      help="also judge the filters on the models' own predictions over N random "
                           "views (rotated, scaled, partly covered, blurred) of each labelled image")
    tune.set_defaults(handler=_cmd_tune_filters)
    add_activity_commands(commands)
    add_refinement_commands(commands)
    add_annotate_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for commands that relaunch themselves
    handler: Handler = args.handler
    try:
        return handler(args)
    except EXPECTED_ERRORS as exc:
        print(f"{parser.prog}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130


# The command line's error boundary: the package's own errors on bad input and what the system
# says about a file (missing, not permitted, disk full) are one line and exit code 2; anything
# else is a bug and keeps its traceback.
EXPECTED_ERRORS: tuple[type[Exception], ...] = (*USER_ERRORS, OSError)


def one_line(exc: BaseException) -> str:
    """The error in one line, naming the file where the system named one."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc) or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
