"""Online reach recognition: per-frame phase, reach-onset events, time to grasp and grasp size.

A cobot controller acts on "the worker has started reaching" and "the hand will close on the part
in N ms" as they happen, so this recogniser is causal and per frame, unlike the window
classifier of :mod:`~hand_pose_refiner.activity.recognizer`: every filtered pose of a track goes
through a small causal temporal convolution network (:class:`ReachModel`) with two heads, and a
size classifier beside it:

* phase: idle / reach / grasp-and-move (:data:`PHASE_NAMES`);
* time to grasp: seconds until the hand closes on the part, meaningful during a reach;
* grasp size: which part size the hand is shaped for, S / M / L (the class names are stored in
  the checkpoint), from a separate, calibrated classifier (:class:`SizeClassifier`).

Why size is not a third head of the network: measured leave-one-subject-out on the RtG
recordings, a size head learnt across people tops out near 0.6 top-1 at the end of the reach,
because camera distance, hand size and grip style differ more between people than the hand
differs between a 2.5 and a 7.5 cm cube. Normalised by the *same person's* other reaches, the
same 2D aperture and position measures give over 0.8. So the size classifier is a linear
softmax over :class:`~hand_pose_refiner.activity.reach_features.SizeFeatures` z-scored by a
:class:`SizeCalibration`: running statistics of the size features at the ends of this person's
earlier reaches (found by the network's own phase output, no labels), shrunk towards the
training people's statistics while few reaches have been seen. Its logits are divided by a
temperature fitted on held-out training people, so that a confidence of 0.8 is right about
80 % of the time. This assumes one person per recogniser (a cell's worker) who grasps a mix of
sizes; :meth:`ReachRecognizer.reset` starts a new person.

Per-frame features (:mod:`~hand_pose_refiner.activity.reach_features`) are one hand's shape in
palm sizes around its palm centre, its grip aperture, where the palm is in the image, how big it
is, how fast it moves (per second of real stamp time) and how far it has moved since the track
began.

:class:`ReachRecognizer` adds the onset event: a reach starts when the reach probability stays
above ``onset_threshold`` for ``onset_frames`` poses in a row while the track was idle; the track
counts as idle again only after ``rearm_s`` seconds of idle decisions, so a noisy reach does not
fire twice. Checkpoints are safetensors files with the settings in their metadata.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import torch
from torch import Tensor, nn

from hand_pose_refiner.activity.model import read_checkpoint
from hand_pose_refiner.activity.reach_features import (
    GRASP_MOVE,
    IDLE,
    NUM_FEATURES,
    NUM_SIZE_FEATURES,
    PHASE_NAMES,
    REACH,
    ReachFeatures,
    frame_hand_features,
)
from hand_pose_refiner.atomic import atomic_write_bytes
from hand_pose_refiner.errors import ActivityCheckpointError
from hand_pose_refiner.hands import FrameHands

FORMAT = "hand_pose_refiner.activity.reach_tcn/2"
FORMAT_PREFIX = "hand_pose_refiner.activity.reach_tcn/"


@dataclass(frozen=True)
class ReachOutput:
    """The network's per-frame output: phase and size probabilities, time to grasp in seconds."""

    phase: np.ndarray
    size: np.ndarray
    time_to_grasp_s: float


class _CausalBlock(nn.Module):
    """A residual dilated convolution over time that sees only the present and the past."""

    def __init__(self, channels: int, dilation: int, kernel: int) -> None:
        super().__init__()
        self.pad = (kernel - 1) * dilation
        self.conv = nn.Conv1d(channels, channels, kernel, dilation=dilation)
        self.mix = nn.Conv1d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        y = nn.functional.relu(self.conv(nn.functional.pad(x, (self.pad, 0))))
        return nn.functional.relu(x + self.mix(y))


class SizeCalibration:
    """One person's running statistics of the size features at the ends of their reaches.

    :meth:`normalise` z-scores a size feature vector by the mean and variance of the reaches
    :meth:`add`-ed so far, each shrunk towards the training people's average (``prior_mean``,
    ``prior_var``) as if ``prior_reaches`` reaches had shown exactly that: with none seen yet,
    the vector is scored as an average person's; after a dozen it is this person's. Only the
    person's unlabelled poses feed it (the reach ends the recogniser detected itself).
    """

    def __init__(self, size: int = NUM_SIZE_FEATURES) -> None:
        self.count = 0
        self.total = np.zeros(size)
        self.squares = np.zeros(size)

    def add(self, size_features: np.ndarray) -> None:
        values = np.asarray(size_features, np.float64)
        self.count += 1
        self.total += values
        self.squares += values**2

    def normalise(
        self, size_features: np.ndarray, prior_mean: np.ndarray, prior_var: np.ndarray, prior_reaches: float
    ) -> np.ndarray:
        weight = prior_reaches + self.count
        mean = (prior_reaches * prior_mean + self.total) / weight
        spread = self.squares - 2 * mean * self.total + self.count * mean**2  # sum of (x - mean)^2
        var = (prior_reaches * prior_var + np.maximum(spread, 0.0)) / weight
        return (np.asarray(size_features, np.float64) - mean) / np.sqrt(var + 1e-12)


class SizeClassifier(nn.Module):
    """Linear softmax over person-normalised size features, with a fitted temperature.

    Its numbers are buffers, so they travel in the reach checkpoint: the weights, the training
    people's average size-feature mean and variance at the end of a reach (the calibration's
    prior), how many reaches that prior counts as, and the temperature.
    """

    weight: Tensor
    bias: Tensor
    prior_mean: Tensor
    prior_var: Tensor
    prior_reaches: Tensor
    temperature: Tensor

    def __init__(self, classes: int = 3, size: int = NUM_SIZE_FEATURES) -> None:
        super().__init__()
        self.register_buffer("weight", torch.zeros(classes, size))
        self.register_buffer("bias", torch.zeros(classes))
        self.register_buffer("prior_mean", torch.zeros(size))
        self.register_buffer("prior_var", torch.ones(size))
        self.register_buffer("prior_reaches", torch.tensor(3.0))
        self.register_buffer("temperature", torch.tensor(1.0))

    def normalised(self, size_features: np.ndarray, calibration: SizeCalibration | None) -> np.ndarray:
        """``(N, NUM_SIZE_FEATURES)`` raw features -> z-scored by the person's statistics."""
        calibration = calibration or SizeCalibration(self.weight.shape[1])
        return calibration.normalise(
            size_features,
            self.prior_mean.double().numpy(),
            self.prior_var.double().numpy(),
            float(self.prior_reaches),
        )

    def logits(self, normalised: np.ndarray) -> np.ndarray:
        """Uncalibrated logits of already normalised features (``(N, S)``)."""
        weight, bias = self.weight.double().numpy(), self.bias.double().numpy()
        return np.asarray(normalised, np.float64) @ weight.T + bias

    def probabilities(self, size_features: np.ndarray, calibration: SizeCalibration | None) -> np.ndarray:
        """``(N, NUM_SIZE_FEATURES)`` raw features -> ``(N, S)`` calibrated probabilities."""
        logits = self.logits(self.normalised(size_features, calibration)) / float(self.temperature)
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)


class ReachModel(nn.Module):
    """A causal temporal convolution network (TCN) with phase and time-to-grasp heads, and the size
    classifier (:class:`SizeClassifier`) whose numbers travel in the same checkpoint.

    Dilated convolutions (Bai et al., 2018) rather than a recurrent network: a TCN trains in
    parallel over time, which on a CPU is an order of magnitude faster than a GRU over the same
    recordings, and it is causal by construction (left padding only). It sees the last
    :attr:`receptive_field` poses (about 2 s at 60 fps); what happened before is carried by the
    features that accumulate over the track (distance travelled, its maximum).
    """

    def __init__(
        self, size_names: Sequence[str] = ("S", "M", "L"), hidden: int = 64, levels: int = 6, kernel: int = 3
    ) -> None:
        super().__init__()
        self.size_names = tuple(size_names)
        self.hidden, self.levels, self.kernel = hidden, levels, kernel
        self.encode = nn.Conv1d(NUM_FEATURES, hidden, 1)
        self.blocks = nn.Sequential(*(_CausalBlock(hidden, 2**level, kernel) for level in range(levels)))
        self.heads = nn.Conv1d(hidden, len(PHASE_NAMES) + 1, 1)
        self.size_classifier = SizeClassifier(len(self.size_names))

    @property
    def receptive_field(self) -> int:
        return 1 + (self.kernel - 1) * (2**self.levels - 1)

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """``features`` ``(B, T, F)`` -> phase logits ``(B, T, 3)``, time to grasp ``(B, T)`` in
        seconds; output ``t`` depends on inputs ``<= t`` only."""
        # Zero *feature* rows before the first pose, as many as the network sees: then an output
        # near a track's start is computed exactly as :meth:`step` computes it from its history.
        context = self.receptive_field - 1
        padded = nn.functional.pad(features.transpose(1, 2), (context, 0))
        out = self.heads(self.blocks(nn.functional.relu(self.encode(padded))))
        out = out[..., context:].transpose(1, 2)
        phases = len(PHASE_NAMES)
        return out[..., :phases], nn.functional.softplus(out[..., phases])

    @torch.no_grad()
    def step(
        self,
        features: np.ndarray,
        state: list[Tensor] | None,
        size_features: np.ndarray | None = None,
        calibration: SizeCalibration | None = None,
    ) -> tuple[ReachOutput, list[Tensor]]:
        """One pose of one track (``(F,)``) and that track's state (None for a new track).

        The size probabilities come from :attr:`size_classifier` over ``size_features``
        normalised by ``calibration`` (the person's statistics so far; None: the training
        people's); uniform if ``size_features`` is None.

        Streams: each block keeps the few past inputs its dilated convolution reads, so a step
        costs one column per layer, not a pass over the whole receptive field. A new track's
        state is that after :attr:`receptive_field` - 1 zero feature rows, which is how
        :meth:`forward` pads, so the outputs of both agree (to float rounding).
        """
        if state is None:
            state = [torch.zeros(1, self.hidden, block.pad + 1) for block in self._causal_blocks()]
            zeros = torch.zeros(1, NUM_FEATURES, 1)
            for _ in range(self.receptive_field - 1):
                _, state = self._stream(zeros, state)
        out, state = self._stream(torch.from_numpy(np.asarray(features, np.float32)).view(1, -1, 1), state)
        out = out[0, :, 0]
        phases = len(PHASE_NAMES)
        if size_features is None:
            size = np.full(len(self.size_names), 1 / len(self.size_names), np.float32)
        else:
            size = self.size_classifier.probabilities(size_features[None], calibration)[0]
        return ReachOutput(
            torch.softmax(out[:phases], 0).numpy(), size, float(nn.functional.softplus(out[phases]))
        ), state

    def _causal_blocks(self) -> list[_CausalBlock]:
        return [cast(_CausalBlock, block) for block in self.blocks.children()]

    def _stream(self, row: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        x = nn.functional.relu(self.encode(row))
        updated = []
        for block, history in zip(self._causal_blocks(), state, strict=True):
            history = torch.cat([history[..., 1:], x], dim=-1)
            x = nn.functional.relu(x + block.mix(nn.functional.relu(block.conv(history))))
            updated.append(history)
        return self.heads(x), updated

    def save(self, path: Path | str, training: Mapping[str, object] | None = None) -> Path:
        """Write a safetensors checkpoint (atomically) with the settings in its metadata, and
        ``training`` (what it was trained on, how; read back by :func:`checkpoint_training`)."""
        from safetensors.torch import save

        path = Path(path)
        settings = {
            "size_names": list(self.size_names),
            "hidden": self.hidden,
            "levels": self.levels,
            "kernel": self.kernel,
        }
        metadata = {"format": FORMAT, "settings": json.dumps(settings)}
        if training is not None:
            metadata["training"] = json.dumps(training, sort_keys=True)
        tensors = {name: value.detach().contiguous() for name, value in self.state_dict().items()}
        atomic_write_bytes(path, _sorted_header(save(tensors, metadata=metadata)))
        return path

    @classmethod
    def load(cls, path: Path | str) -> ReachModel:
        """Read a checkpoint written by :meth:`save`; errors name the file and what is wrong."""
        path = Path(path)
        found = checkpoint_format(path)
        if found is not None and found.startswith(FORMAT_PREFIX) and found != FORMAT:
            raise ActivityCheckpointError(
                f"{path}: reach checkpoint of an older format ({found!r}, expected {FORMAT!r}: its "
                "grasp size came from a network head, now from a per-person calibrated classifier); "
                "retrain it with `hand-pose-refiner train-activity --rtg DIR`"
            )
        metadata, state = read_checkpoint(path, FORMAT, "reach model")
        try:
            model = cls(**json.loads(metadata["settings"]))
        except (KeyError, ValueError, TypeError) as exc:
            raise ActivityCheckpointError(f"{path}: its settings metadata is missing or malformed "
                                          f"({type(exc).__name__}: {exc})") from exc
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise ActivityCheckpointError(f"{path}: weights do not match its settings ({exc})") from exc
        return model.eval()


def _sorted_header(data: bytes) -> bytes:
    """A safetensors file with its JSON header's keys in sorted order.

    safetensors writes the metadata in hash order, which changes from run to run; sorted, the
    same weights and metadata always give the same bytes. Tensor offsets count from the end of
    the header, so they stay valid; the header is padded with spaces to 8 bytes, as safetensors does.
    """
    length = int.from_bytes(data[:8], "little")
    header = json.dumps(json.loads(data[8 : 8 + length]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    return len(header).to_bytes(8, "little") + header + data[8 + length :]


def checkpoint_metadata(path: Path | str) -> dict[str, str]:
    """The metadata of a safetensors checkpoint (empty if it has none or is unreadable)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except Exception:
        return {}


def checkpoint_format(path: Path | str) -> str | None:
    """The ``format`` metadata of a safetensors checkpoint (None if it has none or is unreadable)."""
    return checkpoint_metadata(path).get("format")


def checkpoint_training(path: Path | str) -> dict[str, object]:
    """What a reach checkpoint says it was trained on and how (empty if it says nothing)."""
    text = checkpoint_metadata(path).get("training")
    try:
        return dict(json.loads(text)) if text else {}
    except (ValueError, TypeError):
        return {}


@dataclass(frozen=True)
class ReachSettings:
    """How probabilities become events: the onset rule and when a size is said."""

    onset_threshold: float = 0.5
    onset_frames: int = 2
    rearm_s: float = 0.5
    size_confidence: float = 0.8
    # The size may be said only this long after the detected reach end: the classifier is fitted
    # to the closing hand, and as the hand then grips, lifts and moves the part its confident
    # scores go wrong more often (leave-one-subject-out, pooled, p >= 0.8: within 0.1 s 79 % right
    # in 58 % of reaches; at the end frame only about 88 % in 43 %; any time after 68 % in 96 %).
    size_window_s: float = 0.1
    max_gap_s: float = 0.5


@dataclass(frozen=True)
class ReachResult:
    """One track's decision for one pose (the content of a HandActivity message).

    ``onset`` is True on the one decision at which a reach was detected to start; ``reach_end``
    on the one at which that reach was first seen to turn into grasp-and-move (the hand closed);
    ``time_to_grasp_s`` is NaN outside a reach; ``grasp_size`` is empty until, within
    ``size_window_s`` after the reach end, the size probability reaches ``size_confidence``, and
    then stays said until the next reach starts (if it does not, no size is said for that reach).
    Not before the end, nor long after: the size classifier is trained on, and calibrated for, the
    closing hand (mid-reach it is barely above chance, see docs/results/reach.md).
    """

    track_id: int
    stamp_ns: int
    phase: int
    phase_scores: np.ndarray
    onset: bool
    time_to_grasp_s: float
    grasp_size: str
    size_scores: np.ndarray
    reach_start_ns: int | None
    reach_end: bool = False

    @property
    def label(self) -> str:
        return PHASE_NAMES[self.phase]


class ReachDecider:
    """Turns one track's per-pose network outputs into decisions and onset events.

    Shared by the online recogniser and the offline evaluation, so that what is measured is what
    the node publishes.
    """

    def __init__(self, size_names: Sequence[str], settings: ReachSettings) -> None:
        self.size_names = tuple(size_names)
        self.settings = settings
        self.in_reach = False
        self.reach_start_ns: int | None = None
        self._above = 0
        self._idle_since_ns: int | None = None
        self._size = ""
        self._ended = False
        self._end_ns = 0

    def decide(self, stamp_ns: int, output: ReachOutput, track_id: int = -1) -> ReachResult:
        settings = self.settings
        phase = int(np.argmax(output.phase))
        onset = False
        self._above = self._above + 1 if output.phase[REACH] >= settings.onset_threshold else 0
        if not self.in_reach and self._above >= settings.onset_frames:
            self.in_reach, onset, self.reach_start_ns, self._size = True, True, stamp_ns, ""
            self._ended = False
        reach_end = self.in_reach and not self._ended and phase == GRASP_MOVE
        if reach_end:
            self._ended, self._end_ns = True, stamp_ns
        if phase == IDLE:
            if self._idle_since_ns is None:
                self._idle_since_ns = stamp_ns
            if self.in_reach and stamp_ns - self._idle_since_ns >= settings.rearm_s * 1e9:
                self.in_reach = False
        else:
            self._idle_since_ns = None
        said_window = self._ended and stamp_ns - self._end_ns <= settings.size_window_s * 1e9
        if said_window and not self._size and output.size.max() >= settings.size_confidence:
            self._size = self.size_names[int(np.argmax(output.size))]
        time_to_grasp = output.time_to_grasp_s if phase == REACH else float("nan")
        return ReachResult(
            track_id,
            stamp_ns,
            phase,
            output.phase,
            onset,
            time_to_grasp,
            self._size,
            output.size,
            self.reach_start_ns if self.in_reach else None,
            reach_end,
        )


@dataclass
class _Track:
    features: ReachFeatures
    decider: ReachDecider
    state: list[Tensor] | None = None
    last_stamp_ns: int = 0


class ReachRecognizer:
    """Feeds every filtered pose of every track through a :class:`ReachModel`, online.

    A track not seen for ``max_gap_s`` starts afresh (new features, empty history): after such
    a gap the person may have left, and the motion before it says nothing about the next reach.
    The size calibration (:class:`SizeCalibration`) is the recogniser's, not a track's: tracks
    come and go, the person at the cell stays; each detected reach end adds to it after that
    pose's size was scored. Call :meth:`reset` when a different person takes over.
    Cost per pose: see ``bench/bench_reach.py``; call ``torch.set_num_threads(1)`` in a process
    that runs only this (one step is far too small for intra-op threads to pay off).
    """

    def __init__(self, model: ReachModel, settings: ReachSettings | None = None) -> None:
        self.model = model.eval()
        self.settings = settings or ReachSettings()
        self._tracks: dict[int, _Track] = {}
        self.calibration = SizeCalibration()

    @property
    def size_names(self) -> tuple[str, ...]:
        return self.model.size_names

    def reset(self) -> None:
        """Forget every track and the person's size statistics."""
        self._tracks.clear()
        self.calibration = SizeCalibration()

    def push(self, frame: FrameHands) -> list[ReachResult]:
        """One filtered, tracked frame in; one decision per hand in it out."""
        max_gap_ns = self.settings.max_gap_s * 1e9
        results = []
        for hand in range(len(frame)):
            track_id = int(frame.track_ids[hand])
            track = self._tracks.get(track_id)
            if track is None or frame.stamp_ns - track.last_stamp_ns > max_gap_ns:
                track = self._tracks[track_id] = _Track(
                    ReachFeatures(), ReachDecider(self.size_names, self.settings)
                )
            track.last_stamp_ns = frame.stamp_ns
            features = frame_hand_features(frame, hand, track.features)
            size_features = track.features.size_features
            output, track.state = self.model.step(features, track.state, size_features, self.calibration)
            result = track.decider.decide(frame.stamp_ns, output, track_id)
            if result.reach_end:
                self.calibration.add(size_features)
            results.append(result)
        stale = [
            key for key, track in self._tracks.items() if frame.stamp_ns - track.last_stamp_ns > max_gap_ns
        ]
        for key in stale:
            del self._tracks[key]
        return results
