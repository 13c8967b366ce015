"""The reach network: a causal temporal convolution network over one track's per-frame features.

Every filtered pose of a track goes through :class:`ReachModel`, with two heads: the phase
(idle / reach / grasp-and-move, :data:`~hand_pose_refiner.activity.reach_features.PHASE_NAMES`)
and the time to grasp (seconds until the hand closes on the part, meaningful during a reach).
The grasp-size classifier
(:class:`~hand_pose_refiner.activity.reach_size_classifier.SizeClassifier`) sits beside the
network and travels in the same checkpoint
(:mod:`~hand_pose_refiner.activity.reach_checkpoint`: the file format). :meth:`ReachModel.step`
streams one pose at a time, as the online recogniser
(:class:`~hand_pose_refiner.activity.reach.ReachRecognizer`) runs it.
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
from hand_pose_refiner.activity.reach_checkpoint import (
    FORMAT,
    FORMAT_PREFIX,
    checkpoint_format,
    sorted_header,
)
from hand_pose_refiner.activity.reach_features import NUM_FEATURES, PHASE_NAMES
from hand_pose_refiner.activity.reach_size_classifier import SizeCalibration, SizeClassifier
from hand_pose_refiner.atomic import atomic_write_bytes
from hand_pose_refiner.errors import ActivityCheckpointError


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
            state = self.initial_state()
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

    @torch.no_grad()
    def initial_state(self) -> list[Tensor]:
        """A new track's state: that after :attr:`receptive_field` - 1 zero feature rows. The
        same for every track while the weights stay, so a caller may keep one and pass it to
        :meth:`step` for each new track (steps never change a state in place)."""
        state = [torch.zeros(1, self.hidden, block.pad + 1) for block in self._causal_blocks()]
        zeros = torch.zeros(1, NUM_FEATURES, 1)
        for _ in range(self.receptive_field - 1):
            _, state = self._stream(zeros, state)
        return state

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
        ``training`` (what it was trained on, how; read back by
        :func:`~hand_pose_refiner.activity.reach_checkpoint.checkpoint_training`)."""
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
        atomic_write_bytes(path, sorted_header(save(tensors, metadata=metadata)))
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
