"""The ``replay`` and ``refine`` subcommands (registered by :func:`add_commands`).

The subcommands import the replay, the refinement loop, torch and Ray inside their functions, so
that registering them costs the command line nothing (see :mod:`hand_pose_refiner.cli`).
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from hand_pose_refiner.config import Config, load_config, with_section_values
from hand_pose_refiner.errors import USER_ERRORS, ConfigError
from hand_pose_refiner.refinement.input_spec import InputSpec
from hand_pose_refiner.refinement.run_state import (
    AnchorLabelsResult,
    EvaluateResult,
    PseudoLabelsResult,
    StepResult,
)
from hand_pose_refiner.refinement.tuning_test_split import SPLITS, half_of

EXIT_SOME_INPUTS_FAILED = 3
EXIT_UNEXPECTED_ERROR = 1  # an input met a bug: its traceback is printed after the others are written
# Passed through to torchrun (its own names); the refine command relaunches itself under it.
LAUNCHER_FLAGS: tuple[tuple[str, type, Any, str], ...] = (
    ("--nproc-per-node", int, 1, "training processes on this node, one per GPU (or CPU core)"),
    ("--nnodes", int, 1, "nodes taking part (run the same command on each)"),
    ("--node-rank", int, 0, "this node's rank, 0 .. nnodes-1"),
    ("--master-addr", str, "127.0.0.1", "address of the rank 0 node"),
    ("--master-port", int, 29500, "free port on the rank 0 node"),
)


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1 (anything else is a usage error, exit code 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (anything else is a usage error, exit code 2)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def _add_input_options(parser: argparse.ArgumentParser, inputs_required: bool = True) -> None:
    parser.add_argument("inputs", type=Path, nargs="+" if inputs_required else "*", metavar="INPUT",
                        help="rosbag2 (folder, .mcap, .db3), ROS 1 .bag, video file or folder of images")
    parser.add_argument("--config", type=Path, default=None, metavar="FILE",
                        help="YAML config (default: the packaged config/assembly.yaml)")
    parser.add_argument("--image-topic", default=None,
                        help="image topic of the bags (default: the bag's only image topic)")
    parser.add_argument("--fps", type=positive_float, default=10.0,
                        help="frame rate that stamps image folders")
    parser.add_argument("--stills", action="store_true",
                        help="the INPUTs hold unrelated photographs (bags and videos too: each frame "
                             "a still of its own): no tracking confirmation, no temporal filter")
    parser.add_argument("--stride", type=positive_int, default=1, help="keep every n-th frame")
    parser.add_argument("--split", choices=("all", *SPLITS), default="all",
                        help="INPUTs that are image folders: all their images, or one half (alternate "
                             "images in name order: tuning the 1st, 3rd, ...; test the 2nd, 4th, ...)")
    parser.add_argument("--max-frames", type=positive_int, default=None,
                        help="at most this many frames per input")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="keep decoded frames and model predictions here for the next run")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="images per model forward pass")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None,
                        help="torch device (default: models.device of the config)")
    parser.add_argument("--backend", choices=("mediapipe", "default", "mmlab"), default=None,
                        help="model backend (default: models.backend of the config); mmlab needs "
                             "the OpenMMLab extra (scripts/setup.sh --mmlab)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: on a shared machine more threads spin "
                             "against other jobs and run up to 10x slower)")
    parser.add_argument("--quiet", action="store_true", help="no progress display")
    cluster = parser.add_argument_group("scale-out on Ray (needs the cluster extra)")
    cluster.add_argument("--ray", default=None, metavar="auto|local|ADDRESS",
                         help="replay on a Ray cluster: auto (RAY_ADDRESS or the cluster this machine "
                              "joined), local (a Ray instance on this machine) or an address "
                              "(host:port, ray://host:10001)")
    cluster.add_argument("--ray-cpus-per-task", type=float, default=1.0,
                         help="CPUs per replay task (its torch threads)")
    cluster.add_argument("--ray-gpus-per-task", type=float, default=None,
                         help="GPUs per replay task (default: 1 where the cluster has GPUs)")
    cluster.add_argument("--ray-local-cpus", type=int, default=None,
                         help="with --ray local: CPUs of the local Ray instance (default: all)")
    cluster.add_argument("--ray-retries", type=int, default=3,
                         help="times a task whose worker died is run again")
    cluster.add_argument("--segment-frames", type=int, default=None,
                         help="cut recordings longer than this into segments, one task each "
                              "(default: 1800 with --ray, never without)")
    cluster.add_argument("--overlap-frames", type=int, default=64,
                         help="frames read on either side of a segment so the filters see the same "
                              "context at a cut as in one pass (must cover tracking.max_missed_s and "
                              "temporal_filter.max_gap_s)")


def input_specs(args: argparse.Namespace) -> list[InputSpec]:
    """The INPUTs as read specs; ``--stills`` applies to every one of them, whatever its kind: a
    user who says a bag or a video holds unrelated photographs is believed, rather than its frames
    being filtered over time as a video and hands invented between them."""
    return [half_of(InputSpec(path, args.image_topic, args.fps, args.stills, args.stride, args.max_frames),
                    args.split)
            for path in args.inputs]


def cluster_options(args: argparse.Namespace) -> Any:
    """The Ray options of the command line (None: this process only)."""
    if args.ray is None:
        return None
    from hand_pose_refiner.refinement.distributed import ClusterSettings, require_ray

    require_ray()  # before any work: say how to install it
    return ClusterSettings(args.ray, args.ray_cpus_per_task, args.ray_gpus_per_task, args.ray_retries,
                          args.ray_local_cpus)


def replay_options(args: argparse.Namespace, **extra: Any) -> Any:
    from hand_pose_refiner.refinement.replay import ReplaySettings

    if (args.segment_frames is not None and args.segment_frames < 1) or args.overlap_frames < 0:
        raise ConfigError("--segment-frames must be >= 1 and --overlap-frames >= 0")
    return ReplaySettings(cache_dir=args.cache_dir, batch_size=args.batch_size, progress=not args.quiet,
                         segment_frames=args.segment_frames, overlap_frames=args.overlap_frames,
                         cluster=cluster_options(args), **extra)


def _use_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(max(1, threads))


def _config(args: argparse.Namespace) -> Any:
    _use_threads(args.threads)
    return _with_model_flags(load_config(args.config), args)


def _with_model_flags(config: Config, args: argparse.Namespace) -> Config:
    if args.device is not None:
        config = replace(config, models=replace(config.models, device=args.device))
    if args.backend is not None:
        config = replace(config, models=replace(config.models, backend=args.backend))
    return config


def _cmd_replay(args: argparse.Namespace) -> int:
    from hand_pose_refiner.models import create_backend
    from hand_pose_refiner.refinement.replay import replay

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    options = replay_options(args, write_bag=args.bag or args.bag_overlay, bag_overlay=args.bag_overlay,
                             overwrite=args.overwrite, write_when_empty=False)
    config = _config(args)
    detector, estimator = create_backend(config)
    summary = replay(input_specs(args), args.out, config, detector, estimator, options)
    _print_replay(summary, args.out)
    for failed in summary.failed:
        print(f"FAILED {failed.path}: {failed.error}", file=sys.stderr)
    for damaged in summary.succeeded:
        if damaged.damage:
            print(f"DAMAGED {damaged.path}: {damaged.damage}", file=sys.stderr)
    if not summary.failed:
        return 0
    written = "the others were written" if summary.written else f"nothing was written to {args.out}"
    print(f"{len(summary.failed)} of {len(summary.inputs)} inputs could not be read (listed above); "
          f"{written}", file=sys.stderr)
    bugs = [failed for failed in summary.failed if failed.traceback]
    for failed in bugs:  # after the output is safely written: an unexpected error is a bug
        print(f"\nunexpected error in {failed.path}:\n{failed.traceback}", file=sys.stderr, end="")
    return EXIT_UNEXPECTED_ERROR if bugs else EXIT_SOME_INPUTS_FAILED


def _print_replay(summary: Any, out: Path) -> None:
    """The totals of a replay, its rejections per rule and its skipped frames per reason."""
    if not summary.written:
        return
    totals = summary.as_dict()
    print(f"wrote {out}: {totals['frames']} frames, {totals['accepted_hands']} accepted hands "
          f"of {totals['raw_hands']} detected, detection rate {totals['detection_rate']:.3f}, "
          f"{totals['frames_per_s']:.1f} frames/s")
    for rule, count in totals["rejections"].items():
        print(f"  rejected {count:6d}  {rule}")
    for reason, count in totals["skipped_frames"].items():
        print(f"  skipped  {count:6d}  frames: {reason}")


def add_commands(commands: Any) -> None:
    """Register ``replay`` and ``refine`` on the main parser's subparsers."""
    replay_parser = commands.add_parser(
        "replay", help="run models and filters over recordings; write a COCO dataset and statistics",
        description="Replay bags, videos or image folders through the detector, the pose estimator "
                    "and the live filter chain (offline mode); write the frames, a COCO keypoint "
                    "dataset of the filtered hands, raw and filtered predictions (JSON lines) and "
                    "rejection statistics. A frame that cannot be decoded is skipped and counted by "
                    "reason (summary.json); an input that cannot be read at all is reported and left "
                    "out (exit 3), an unexpected error in one too, with its traceback (exit 1), "
                    "after the others are written.")
    _add_input_options(replay_parser)
    replay_parser.add_argument("--out", type=Path, required=True, help="output folder (must not exist)")
    replay_parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    replay_parser.add_argument("--bag", action="store_true",
                               help="also write an MCAP rosbag2 with the images and the filtered hands")
    replay_parser.add_argument("--bag-overlay", action="store_true",
                               help="the bag (implies --bag) also holds the hands drawn on each image "
                                    "(hand_overlay, CompressedImage JPEG) to play in Foxglove")
    replay_parser.set_defaults(handler=_cmd_replay)
    refine_parser = commands.add_parser(
        "refine", help="iterative self-supervised refinement on unlabelled recordings (resumable)",
        description="Replay the recordings, keep the plausible hands as pseudo-labels, fine-tune the "
                    "detector and the pose estimator on them, evaluate, repeat; stops early when the "
                    "detection rate stops improving. Every step is checkpointed in RUN_DIR: running "
                    "the same command again resumes. Writes RUN_DIR/report.html and report.json, and "
                    "RUN_DIR/deploy.yaml: the kept round's models as a parameter file for the live "
                    "graph. The recipe (inputs by role, rounds, fine-tuning) is the refinement "
                    "section of --config FILE; INPUTs and flags replace its keys.")
    _add_input_options(refine_parser, inputs_required=False)
    _add_recipe_options(refine_parser)
    launcher = refine_parser.add_argument_group(
        "data-parallel fine-tuning (torchrun, DDP: gloo on CPU, NCCL on GPU)")
    for flag, kind, default, text in LAUNCHER_FLAGS:
        launcher.add_argument(flag, type=kind, default=default, help=text)
    refine_parser.set_defaults(handler=_cmd_refine)


# refine's flags (argparse dest) for the keys of the config's refinement section they replace
RECIPE_FLAGS = {"inputs": "targets", "check": "checks", "anchor": "anchors", "labelled": "labelled",
                "labelled_tip_first": "labelled_tip_first", "stills": "stills",
                "image_topic": "image_topic", "fps": "fps", "stride": "stride", "max_frames": "max_frames",
                "split": "split",
                "threads": "threads", "anchor_ratio": "anchor_ratio", "iterations": "iterations",
                "epochs": "epochs", "train_batch_size": "train_batch_size",
                "samples_per_image": "samples_per_image", "learning_rate": "learning_rate",
                "detector_epochs": "detector_epochs", "detector_learning_rate": "detector_learning_rate",
                "glove_probability": "glove_probability", "max_train_images": "max_train_images",
                "patience": "patience", "seed": "seed", "search_rounds": "search_rounds",
                "grid_frames": "grid_frames"}


def _add_recipe_options(refine_parser: argparse.ArgumentParser) -> None:
    """refine's own flags; each one given replaces its key of the config's refinement section."""
    refine_parser.add_argument("--out", type=Path, required=True, metavar="RUN_DIR",
                               help="run folder (an existing one is resumed)")
    refine_parser.add_argument("--check", type=Path, action="append", metavar="INPUT",
                               help="a recording evaluated every round but not trained on "
                                    "(no-regression check); repeatable")
    refine_parser.add_argument("--anchor", type=Path, action="append", metavar="INPUT",
                               help="a recording the initial models already handle (bare hands): "
                                    "labelled once by them and mixed into every round's training "
                                    "set, so that the models keep what they knew; repeatable")
    refine_parser.add_argument("--anchor-ratio", type=float,
                               help="anchor images per pseudo-labelled image in a round's training set")
    refine_parser.add_argument("--labelled", type=Path, action="append", metavar="COCO",
                               help="a labelled COCO file for PCK (base-first order); repeatable")
    refine_parser.add_argument("--labelled-tip-first", type=Path, action="append", metavar="COCO",
                               help="a labelled COCO file listing each finger tip first (RHD); repeatable")
    refine_parser.add_argument("--iterations", type=int, help="refinement rounds at most")
    refine_parser.add_argument("--epochs", type=int,
                               help="pose estimator: fine-tuning epochs per round")
    refine_parser.add_argument("--train-batch-size", type=int, help="fine-tuning batch size")
    refine_parser.add_argument("--samples-per-image", type=int,
                               help="augmented samples drawn from each training image per epoch")
    refine_parser.add_argument("--learning-rate", type=float, help="pose estimator")
    refine_parser.add_argument("--detector-epochs", type=int,
                               help="hand detector: fine-tuning epochs per round")
    refine_parser.add_argument("--detector-learning-rate", type=float, help="hand detector")
    refine_parser.add_argument("--glove-probability", type=float,
                               help="share of training samples with skin recoloured like a glove")
    refine_parser.add_argument("--max-train-images", type=int,
                               help="at most this many pseudo-labelled images per input and round")
    refine_parser.add_argument("--patience", type=int,
                               help="rounds without improvement before stopping")
    refine_parser.add_argument("--seed", type=int, help="fine-tuning seed (round k uses seed + k)")
    refine_parser.add_argument("--search-rounds", type=int, metavar="N",
                               help="the first N rounds also search every target frame with the "
                                    "landmark network for hands the detector misses (mediapipe "
                                    "backend; seconds per frame)")
    refine_parser.add_argument("--grid-frames", type=int,
                               help="frames in the before/after overlay grids (0: all)")
    # Not given: the config's refinement section decides (its default when the file has none).
    refine_parser.set_defaults(**{dest: None for dest in RECIPE_FLAGS})


def _without_launcher_flags(argv: list[str]) -> list[str]:
    names = {flag for flag, *_ in LAUNCHER_FLAGS}
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in names:
            skip = True
        elif arg.split("=", 1)[0] not in names:
            kept.append(arg)
    return kept


def _relaunch_under_torchrun(args: argparse.Namespace) -> int:
    """Run this same refine command in ``--nproc-per-node`` processes per node under torchrun."""
    import subprocess

    from hand_pose_refiner.models import distributed

    device = args.device or load_config(args.config).models.device
    distributed.check_processes(args.nproc_per_node, device)
    launcher = ["--nnodes", str(args.nnodes), "--node-rank", str(args.node_rank),
                "--master-addr", args.master_addr, "--master-port", str(args.master_port)]
    command = distributed.torchrun_command(args.nproc_per_node, launcher, "hand_pose_refiner.cli",
                                           _without_launcher_flags(args.argv))
    return subprocess.call(command)


def recipe_config(args: argparse.Namespace) -> Config:
    """The run's config: the --config file (or the packaged one) with refine's flags in its
    refinement section and the model flags in its models section, validated."""
    config = _with_model_flags(load_config(args.config), args)
    given = {key: getattr(args, dest) for dest, key in RECIPE_FLAGS.items()
             if getattr(args, dest) not in (None, [])}
    given = {key: [str(path) for path in value] if isinstance(value, list) else value
             for key, value in given.items()}
    if not given:
        return config
    return with_section_values(config, "refinement", given, "refine's command line")


def _cmd_refine(args: argparse.Namespace) -> int:
    from hand_pose_refiner.models import distributed

    if (args.nproc_per_node > 1 or args.nnodes > 1) and not distributed.launched():
        return _relaunch_under_torchrun(args)
    config = recipe_config(args)
    if not config.refinement.targets:
        raise ConfigError("refine: no target recordings: give INPUTs or a --config file whose "
                          "refinement.targets lists them")
    _use_threads(config.refinement.threads)
    parallel = distributed.init_from_env(config.models.device)
    if parallel is None:
        return _refine(args, config, main_rank=True)
    config = replace(config, models=replace(config.models,
                                            device=distributed.rank_device(config.models.device)))
    try:
        code = _refine(args, config, main_rank=parallel.is_main)
    except USER_ERRORS as exc:  # reported as the command line does, then the rank leaves
        print(f"hand-pose-refiner: error: {exc}", file=sys.stderr)
        code = 2
    distributed.leave(code)


def _show_step(name: str, result: StepResult) -> None:
    """One line per finished evaluation or labelling step."""
    if isinstance(result, EvaluateResult):
        pck = result.pck.pck if result.pck is not None else None
        check = result.checks.detection_rate if result.checks is not None else None
        rates = "".join(f", {Path(i.path).parent.name}/{Path(i.path).name} {i.detection_rate:.3f}"
                        for i in result.targets.inputs if i.error is None)
        print(f"{name}: detection rate {result.measure:.3f}{rates}"
              + (f", checks {check:.3f}" if check is not None else "")
              + (f", PCK {pck:.3f}" if pck is not None else ""), flush=True)
    elif isinstance(result, (PseudoLabelsResult, AnchorLabelsResult)):
        replayed = result.replay
        print(f"{name}: {replayed.accepted_hands} pseudo-labelled hands in "
              f"{replayed.frames_with_hands} of {replayed.frames} frames", flush=True)


def _refine(args: argparse.Namespace, config: Config, main_rank: bool) -> int:
    from hand_pose_refiner.refinement.deploy import deployment_lines, write_deploy
    from hand_pose_refiner.refinement.recipe import refine_options
    from hand_pose_refiner.refinement.refine import Refinement
    from hand_pose_refiner.refinement.report import write_report

    logging.basicConfig(level=logging.INFO if not args.quiet and main_rank else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("hand_pose_refiner.filters").setLevel(logging.ERROR)
    refinement = Refinement(args.out, refine_options(config.refinement), config, replay_options(args),
                            on_step=_show_step)
    state = refinement.run()
    if not main_rank:
        return 0
    html = write_report(args.out, config.refinement.grid_frames or None)
    print(f"best iteration {state.best_iteration} ({state.stopped_because}); report: {html}")
    kept = state.best_iteration
    assert kept is not None  # set by run()
    deployment = write_deploy(args.out, config, kept, refinement.model_paths(kept))
    print("\n".join(deployment_lines(deployment)))
    return 0
