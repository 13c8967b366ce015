"""The activity subcommands of ``hand-pose-refiner``: synth-activity, train-activity, eval-activity.

Registered by :func:`add_commands`, which ``hand_pose_refiner.cli.build_parser`` calls once. Each
subcommand imports the modules it runs inside its function: they load torch or the filter chain and
the data readers, which the command line (``--help``, the other subcommands) never needs.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import time
from pathlib import Path
from typing import TYPE_CHECKING, cast

from hand_pose_refiner.config import Config, load_config
from hand_pose_refiner.errors import ActivityCheckpointError, ActivityLabelError

if TYPE_CHECKING:  # torch-heavy: the command line imports it only for the reach commands
    from hand_pose_refiner.activity.reach_fit import ReachTrainSettings

_DEFAULT_TOPIC = "/hand_poses"


def _add_sources_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None, metavar="FILE",
                        help="YAML config (default: the packaged config/assembly.yaml); its activity "
                             "section gives the classes and the window")
    parser.add_argument("--topic", default=_DEFAULT_TOPIC,
                        help="HandPoseArray topic of rosbag sources (default: %(default)s)")
    parser.add_argument("--filtered", action="store_true",
                        help="the sources hold filtered, tracked poses already (e.g. the hand_poses "
                             "topic); otherwise raw poses are run through the live filter chain")
    parser.add_argument("--verbose", action="store_true", help="log the filters' rejection warnings")


def _add_rtg_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rtg", type=Path, default=None, metavar="DIR",
                        help="instead of annotation files: the reach-to-grasp recordings "
                             "(e.g. ../shared/data/hand_actions/rtg_object_size); trains or evaluates the "
                             "per-frame reach recogniser (phase, onset, time to grasp, grasp size)")
    parser.add_argument("--participants", nargs="+", default=None, metavar="P",
                        help="--rtg: only these participants (default: all)")
    parser.add_argument("--max-sequences", type=int, default=None, metavar="N",
                        help="--rtg: at most N sequences per participant, evenly spread over their "
                             "recordings so that all sizes are in (quick runs)")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="--rtg: filter recordings and run folds in N processes (default 1)")


def _load(args: argparse.Namespace) -> Config:
    if not args.verbose:
        logging.getLogger("hand_pose_refiner.filters").setLevel(logging.ERROR)
    return load_config(args.config)


def _cmd_synth(args: argparse.Namespace) -> int:
    from hand_pose_refiner.activity.labels import write_annotations
    from hand_pose_refiner.activity.synthetic import SyntheticSettings, generate_recording

    settings = SyntheticSettings(clips_per_class=args.clips_per_class, noise=tuple(args.noise),
                                 missing=tuple(args.missing))
    segments = []
    frames = 0
    for seed in args.subjects:
        recording, subject_segments = generate_recording(seed, settings)
        recording.save(args.out / subject_segments[0].source)
        segments.extend(subject_segments)
        frames += len(recording)
    labels = write_annotations(args.out / "labels.csv", segments)
    print(f"wrote {len(args.subjects)} synthetic subjects ({frames} frames, {len(segments)} labelled "
          f"clips) and {labels}")
    return 0


def _rtg_prepared(args: argparse.Namespace, config: Config) -> list:
    """The RtG recordings (``--rtg``) of the chosen participants, through the live filters."""
    from hand_pose_refiner.activity.reach_data import prepare_sequences
    from hand_pose_refiner.activity.rtg_dataset import StampCounts, load_rtg_dataset, participants_of

    sequences = load_rtg_dataset(args.rtg, args.participants)
    if args.max_sequences:
        # evenly spaced: the recordings are stored by size (L, M, S), the first N are one size
        def spread(mine: list) -> list:
            return mine[:: max(1, len(mine) // args.max_sequences)][: args.max_sequences]

        sequences = [s for p in participants_of(sequences)
                     for s in spread([x for x in sequences if x.participant == p])]
    counts = sum((s.stamp_counts for s in sequences), StampCounts())
    print(f"{len(sequences)} sequences of {', '.join(participants_of(sequences))} "
          f"({sum(len(s) for s in sequences)} frames); time stamps: {counts.repeated} repeated and "
          f"{counts.corrupt} corrupt frames skipped, {counts.gaps} gaps over 50 ms bridged")
    started = time.perf_counter()
    prepared = prepare_sequences(sequences, config, jobs=args.jobs)
    print(f"filtered online in {time.perf_counter() - started:.1f} s")
    return prepared


def _reach_settings(args: argparse.Namespace) -> ReachTrainSettings:
    from hand_pose_refiner.activity.reach_fit import ReachTrainSettings

    return ReachTrainSettings(epochs=args.epochs or 20, seed=args.seed, threads=args.threads or 1)


def _reach_training_record(args: argparse.Namespace, prepared: list) -> dict[str, object]:
    """What a reach checkpoint was trained on and the command that trains it again (its
    metadata): no paths or times beyond those given, so that a rerun writes the same bytes."""
    from hand_pose_refiner.activity.rtg_dataset import participants_of

    settings = _reach_settings(args)
    command = ["hand-pose-refiner", "train-activity", "--rtg", str(args.rtg), "--seed", str(settings.seed),
               "--epochs", str(settings.epochs), "--threads", str(settings.threads)]
    if args.participants:
        command += ["--participants", *args.participants]
    if args.max_sequences:
        command += ["--max-sequences", str(args.max_sequences)]
    return {
        "data": args.rtg.name,
        "participants": participants_of([p.sequence for p in prepared]),
        "sequences": len(prepared),
        "frames": sum(len(p.sequence) for p in prepared),
        "seed": settings.seed,
        "epochs": settings.epochs,
        "threads": settings.threads,
        "command": shlex.join([*command, "--out", args.out.name]),
    }


def _cmd_train_reach(args: argparse.Namespace, config: Config) -> int:
    from hand_pose_refiner.activity.reach_training import train_reach_model

    prepared = _rtg_prepared(args, config)
    model = train_reach_model(prepared, _reach_settings(args), log=print)
    print(f"wrote {model.save(args.out, _reach_training_record(args, prepared))}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from hand_pose_refiner.activity.dataset import load_window_set
    from hand_pose_refiner.activity.training import TrainSettings, evaluate, train_activity_model

    config = _load(args)
    if _exactly_one_source(args):
        return _cmd_train_reach(args, config)
    started = time.perf_counter()
    train = load_window_set(args.labels, config, args.train_stride, args.topic, not args.filtered)
    print(f"{len(train)} labelled training windows ({time.perf_counter() - started:.1f} s): "
          + ", ".join(f"{name} {count}" for name, count in train.class_counts().items()))
    settings = TrainSettings(epochs=args.epochs or 15, batch_size=args.batch_size, learning_rate=args.lr,
                             seed=args.seed, threads=args.threads)
    model, _ = train_activity_model(train, config.activity, settings)
    path = model.save(args.out)
    print(f"wrote {path}")
    if args.val_labels:
        val = load_window_set(args.val_labels, config, None, args.topic, not args.filtered)
        print(f"validation: {evaluate(model, val).summary()}")
    return 0


def _exactly_one_source(args: argparse.Namespace) -> bool:
    """True for ``--rtg``, False for annotation files; either is required, not both."""
    if bool(args.rtg) == bool(args.labels):
        raise ActivityLabelError("give annotation CSV files or --rtg DIR (one of them)")
    return bool(args.rtg)


def _cmd_eval_reach(args: argparse.Namespace, config: Config) -> int:
    from hand_pose_refiner.activity.reach_cross_validation import leave_one_subject_out
    from hand_pose_refiner.activity.reach_features import PHASE_NAMES
    from hand_pose_refiner.activity.reach_plots import plot_size_by_fraction
    from hand_pose_refiner.activity.rtg_dataset import SIZE_NAMES
    from hand_pose_refiner.activity.training import plot_confusion_matrix, write_json

    prepared = _rtg_prepared(args, config)
    result = leave_one_subject_out(prepared, _reach_settings(args), log=print, jobs=args.jobs)
    means = cast("dict[str, object]", result.as_dict()["mean_of_folds"])
    for name, value in means.items():
        if not isinstance(value, dict):
            print(f"mean of {len(result.folds)} folds: {name} {value:.3f}")
    pooled = result.pooled
    pngs = [plot_confusion_matrix(pooled.phase_confusion, PHASE_NAMES, args.out / "phase_confusion.png",
                                  f"phase, all folds (macro-F1 {pooled.phase_macro_f1:.3f})"),
            plot_confusion_matrix(pooled.size_confusion, SIZE_NAMES, args.out / "size_confusion.png",
                                  "grasp size at reach end, all folds "
                                  f"(top-1 {pooled.size_accuracy_at_end:.3f})"),
            plot_size_by_fraction(result, args.out / "size_by_reach_fraction.png")]
    report = write_json(result.as_dict(), args.out / "metrics.json")
    print(f"wrote {', '.join(map(str, pngs))} and {report}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from hand_pose_refiner.activity.dataset import load_window_set
    from hand_pose_refiner.activity.model import ActivityModel
    from hand_pose_refiner.activity.training import evaluate, plot_confusion, write_json

    config = _load(args)
    if _exactly_one_source(args):
        return _cmd_eval_reach(args, config)
    checkpoint = args.checkpoint or config.activity.checkpoint
    if not checkpoint:
        raise ActivityCheckpointError("no checkpoint of a window classifier: give --checkpoint or set "
                                      "activity.checkpoint (empty is the packaged reach model)")
    model = ActivityModel.load(checkpoint, config.activity)
    windows = load_window_set(args.labels, config, args.stride, args.topic, not args.filtered)
    evaluation = evaluate(model, windows)
    print(evaluation.summary())
    print("confusion (rows: true, columns: predicted): "
          + "; ".join(f"{name}: {row.tolist()}" for name, row in zip(evaluation.class_names,
                                                                     evaluation.confusion, strict=True)))
    png = plot_confusion(evaluation, args.out / "confusion_matrix.png")
    report = write_json({"checkpoint": str(checkpoint), **evaluation.as_dict()}, args.out / "metrics.json")
    print(f"wrote {png} and {report}")
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add the activity subcommands to the ``hand-pose-refiner`` parser."""
    synth = subparsers.add_parser(
        "synth-activity", help="generate the labelled synthetic activity benchmark (poses + labels.csv)",
        description="Write one raw pose recording (.npz) per synthetic subject (generator seed) and a "
                    "labels.csv annotating every clip; synthetic kinematic hands, not recordings.")
    synth.add_argument("--out", type=Path, required=True, help="folder to write into")
    synth.add_argument("--subjects", type=int, nargs="+", default=list(range(8)),
                       help="generator seeds, one per subject (default: 0..7)")
    synth.add_argument("--clips-per-class", type=int, default=6)
    synth.add_argument("--noise", type=float, nargs=2, default=(0.0, 0.03), metavar=("LOW", "HIGH"),
                       help="range of the keypoint noise sigma, palm sizes")
    synth.add_argument("--missing", type=float, nargs=2, default=(0.0, 0.15), metavar=("LOW", "HIGH"),
                       help="range of the fraction of dropped keypoints")
    synth.set_defaults(handler=_cmd_synth)

    train = subparsers.add_parser(
        "train-activity", help="train the activity model on annotated pose sources (or the reach model)",
        description="Cut the annotated sources into windows as the live recogniser does, train the "
                    "ST-GCN activity model on them, and write a safetensors checkpoint atomically. "
                    "With --rtg: train the per-frame reach recogniser on the reach-to-grasp recordings.")
    train.add_argument("labels", type=Path, nargs="*", help="annotation CSV files")
    train.add_argument("--out", type=Path, required=True, help="checkpoint to write (.safetensors)")
    _add_sources_options(train)
    _add_rtg_options(train)
    train.add_argument("--val-labels", type=Path, nargs="*", default=[],
                       help="annotation files to report validation accuracy on")
    train.add_argument("--epochs", type=int, default=None, help="default: 15 (window model), 20 (--rtg)")
    train.add_argument("--batch-size", type=int, default=64)
    train.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    train.add_argument("--train-stride", type=int, default=4,
                       help="poses between training windows (default: %(default)s)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    train.set_defaults(handler=_cmd_train)

    evaluate = subparsers.add_parser(
        "eval-activity", help="top-1, recall per class and a confusion matrix on annotated sources",
        description="Evaluate an activity checkpoint on annotated sources; writes "
                    "confusion_matrix.png and metrics.json to --out. With --rtg: leave-one-subject-out "
                    "evaluation of the reach recogniser (one model trained per held-out participant); "
                    "writes metrics.json, phase_confusion.png, size_confusion.png and "
                    "size_by_reach_fraction.png to --out.")
    evaluate.add_argument("labels", type=Path, nargs="*", help="annotation CSV files")
    evaluate.add_argument("--checkpoint", type=Path, default=None,
                          help="checkpoint (default: activity.checkpoint of the config)")
    evaluate.add_argument("--out", type=Path, default=Path("runs/eval_activity"), help="output folder")
    evaluate.add_argument("--stride", type=int, default=None,
                          help="poses between windows (default: activity.stride_frames)")
    _add_sources_options(evaluate)
    _add_rtg_options(evaluate)
    evaluate.add_argument("--epochs", type=int, default=None,
                          help="--rtg: training epochs per fold (default 20)")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    evaluate.set_defaults(handler=_cmd_eval)
