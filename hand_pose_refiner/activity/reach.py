"""Online reach recognition: per-frame phase, reach-onset events, time to grasp and grasp size.

A cobot controller acts on "the worker has started reaching" and "the hand will close on the part
in N ms" as they happen, so this recogniser is causal and per frame, unlike the window
classifier of :mod:`~hand_pose_refiner.activity.recognizer`: every filtered pose of a track goes
through a small causal temporal convolution network (:class:`ReachModel`) with three heads:

* phase: idle / reach / grasp-and-move (:data:`PHASE_NAMES`);
* time to grasp: seconds until the hand closes on the part, meaningful during a reach;
* grasp size: which part size the hand is shaped for, S / M / L (the class names are stored in
  the checkpoint).

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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from hand_pose_refiner.activity.model import read_checkpoint
from hand_pose_refiner.activity.reach_features import (
    IDLE,
    NUM_FEATURES,
    PHASE_NAMES,
    REACH,
    ReachFeatures,
    frame_hand_features,
)
from hand_pose_refiner.atomic import atomic_write_with
from hand_pose_refiner.errors import ActivityCheckpointError
from hand_pose_refiner.hands import FrameHands

FORMAT = "hand_pose_refiner.activity.reach_tcn/1"


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


class ReachModel(nn.Module):
    """A causal temporal convolution network (TCN) with phase, time-to-grasp and size heads.

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
        self.heads = nn.Conv1d(hidden, len(PHASE_NAMES) + 1 + len(self.size_names), 1)

    @property
    def receptive_field(self) -> int:
        return 1 + (self.kernel - 1) * (2**self.levels - 1)

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``features`` ``(B, T, F)`` -> phase logits ``(B, T, 3)``, time to grasp ``(B, T)`` in
        seconds, size logits ``(B, T, S)``; output ``t`` depends on inputs ``<= t`` only."""
        # Zero *feature* rows before the first pose, as many as the network sees: then an output
        # near a track's start is computed exactly as :meth:`step` computes it from its history.
        context = self.receptive_field - 1
        padded = nn.functional.pad(features.transpose(1, 2), (context, 0))
        out = self.heads(self.blocks(nn.functional.relu(self.encode(padded))))
        out = out[..., context:].transpose(1, 2)
        phases = len(PHASE_NAMES)
        return out[..., :phases], nn.functional.softplus(out[..., phases]), out[..., phases + 1 :]

    @torch.no_grad()
    def step(self, features: np.ndarray, state: list[Tensor] | None) -> tuple[ReachOutput, list[Tensor]]:
        """One pose of one track (``(F,)``) and that track's state (None for a new track).

        Streams: each block keeps the few past inputs its dilated convolution reads, so a step
        costs one column per layer, not a pass over the whole receptive field. A new track's
        state is that after :attr:`receptive_field` - 1 zero feature rows, which is how
        :meth:`forward` pads, so the outputs of both agree (to float rounding).
        """
        if state is None:
            state = [torch.zeros(1, self.hidden, block.pad + 1) for block in self.blocks]
            zeros = torch.zeros(1, NUM_FEATURES, 1)
            for _ in range(self.receptive_field - 1):
                _, state = self._stream(zeros, state)
        out, state = self._stream(torch.from_numpy(np.asarray(features, np.float32)).view(1, -1, 1), state)
        out = out[0, :, 0]
        phases = len(PHASE_NAMES)
        return ReachOutput(
            torch.softmax(out[:phases], 0).numpy(),
            torch.softmax(out[phases + 1 :], 0).numpy(),
            float(nn.functional.softplus(out[phases])),
        ), state

    def _stream(self, row: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        x = nn.functional.relu(self.encode(row))
        updated = []
        for block, history in zip(self.blocks, state, strict=True):
            history = torch.cat([history[..., 1:], x], dim=-1)
            x = nn.functional.relu(x + block.mix(nn.functional.relu(block.conv(history))))
            updated.append(history)
        return self.heads(x), updated

    def save(self, path: Path | str) -> Path:
        """Write a safetensors checkpoint (atomically) with the settings in its metadata."""
        from safetensors.torch import save_file

        path = Path(path)
        settings = {
            "size_names": list(self.size_names),
            "hidden": self.hidden,
            "levels": self.levels,
            "kernel": self.kernel,
        }
        metadata = {"format": FORMAT, "settings": json.dumps(settings)}
        tensors = {name: value.detach().contiguous() for name, value in self.state_dict().items()}
        atomic_write_with(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
        return path

    @classmethod
    def load(cls, path: Path | str) -> ReachModel:
        """Read a checkpoint written by :meth:`save`; errors name the file and what is wrong."""
        path = Path(path)
        metadata, state = read_checkpoint(path, FORMAT, "reach model")
        model = cls(**json.loads(metadata["settings"]))
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise ActivityCheckpointError(f"{path}: weights do not match its settings ({exc})") from exc
        return model.eval()


def checkpoint_format(path: Path | str) -> str | None:
    """The ``format`` metadata of a safetensors checkpoint (None if it has none or is unreadable)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return (handle.metadata() or {}).get("format")
    except Exception:
        return None


@dataclass(frozen=True)
class ReachSettings:
    """How probabilities become events: the onset rule and when a size is said."""

    onset_threshold: float = 0.5
    onset_frames: int = 2
    rearm_s: float = 0.5
    size_confidence: float = 0.8
    max_gap_s: float = 0.5


@dataclass(frozen=True)
class ReachResult:
    """One track's decision for one pose (the content of a HandActivity message).

    ``onset`` is True on the one decision at which a reach was detected to start;
    ``time_to_grasp_s`` is NaN outside a reach; ``grasp_size`` is empty until the size
    probability reaches ``size_confidence`` during or after a reach, and then stays said until
    the next reach starts.
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

    def decide(self, stamp_ns: int, output: ReachOutput, track_id: int = -1) -> ReachResult:
        settings = self.settings
        phase = int(np.argmax(output.phase))
        onset = False
        self._above = self._above + 1 if output.phase[REACH] >= settings.onset_threshold else 0
        if not self.in_reach and self._above >= settings.onset_frames:
            self.in_reach, onset, self.reach_start_ns, self._size = True, True, stamp_ns, ""
        if phase == IDLE:
            if self._idle_since_ns is None:
                self._idle_since_ns = stamp_ns
            if self.in_reach and stamp_ns - self._idle_since_ns >= settings.rearm_s * 1e9:
                self.in_reach = False
        else:
            self._idle_since_ns = None
        if self.in_reach and not self._size and output.size.max() >= settings.size_confidence:
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
    Cost per pose: see ``bench/bench_reach.py``; call ``torch.set_num_threads(1)`` in a process
    that runs only this (one step is far too small for intra-op threads to pay off).
    """

    def __init__(self, model: ReachModel, settings: ReachSettings | None = None) -> None:
        self.model = model.eval()
        self.settings = settings or ReachSettings()
        self._tracks: dict[int, _Track] = {}

    @property
    def size_names(self) -> tuple[str, ...]:
        return self.model.size_names

    def reset(self) -> None:
        self._tracks.clear()

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
            output, track.state = self.model.step(features, track.state)
            results.append(track.decider.decide(frame.stamp_ns, output, track_id))
        stale = [
            key for key, track in self._tracks.items() if frame.stamp_ns - track.last_stamp_ns > max_gap_ns
        ]
        for key in stale:
            del self._tracks[key]
        return results
