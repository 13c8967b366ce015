"""The activity classifier: a spatio-temporal graph convolution over the hand skeleton.

ST-GCN (Yan et al., AAAI 2018) on the 21-keypoint hand graph (:data:`skeleton.BONES`): each block
mixes keypoints along the bones (graph convolution, spatial-configuration partitioning: the joint
itself, its neighbour towards the wrist, its neighbours towards the finger tips), then mixes time
(a temporal convolution). Two cheap additions over the original: a learnt residual adjacency per
block (as in 2s-AGCN, Shi et al., CVPR 2019), so that fingers not joined by a bone (thumb and
index in a pinch) can interact early, and pooling that ignores absent hands, so a window may hold
one hand or two.

Checkpoints are safetensors files; the class names, the window settings and the architecture
are stored in the file's metadata, so a checkpoint is self-describing and nothing is unpickled.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from hand_pose_refiner.activity.features import FEATURE_NAMES, IN_CHANNELS
from hand_pose_refiner.atomic import atomic_write_with
from hand_pose_refiner.checkpoint_files import read_checkpoint as read_checkpoint_file
from hand_pose_refiner.config import ActivityConfig
from hand_pose_refiner.errors import ActivityCheckpointError, ActivityClassMismatchError
from hand_pose_refiner.skeleton import BONES, NUM_KEYPOINTS, WRIST

FORMAT = "hand_pose_refiner.activity.stgcn/1"
DEFAULT_CHANNELS: tuple[int, ...] = (32, 48, 64)
DEFAULT_STRIDES: tuple[int, ...] = (1, 2, 2)


def read_checkpoint(path: Path, expected_format: str, what: str) -> tuple[dict[str, str], dict[str, Tensor]]:
    """The metadata and tensors of a safetensors checkpoint of ``expected_format``.

    Every way it can be wrong is an :class:`ActivityCheckpointError` naming the file: missing,
    truncated or not safetensors, NaN or infinite weights, or a checkpoint of another kind
    (``what`` names the wanted one).
    """
    if not path.is_file():
        raise ActivityCheckpointError(f"{path}: {what} checkpoint not found")
    contents = read_checkpoint_file(path, ActivityCheckpointError, torch_files=False)
    metadata, state = contents.metadata, contents.tensors
    if metadata.get("format") != expected_format:
        article = "an" if what[0] in "aeiou" else "a"
        raise ActivityCheckpointError(f"{path}: not {article} {what} checkpoint (format "
                                      f"{metadata.get('format')!r}, expected {expected_format!r})")
    return metadata, state


def hand_adjacency() -> np.ndarray:
    """``(3, 21, 21)`` normalised adjacency: self, towards the wrist, away from the wrist.

    ``A[k, i, j]`` weights what joint ``j`` passes to joint ``i``; columns are divided by the
    node degrees (ST-GCN's ``normalize_digraph``), so every joint's message has the same scale.
    """
    hops = np.full(NUM_KEYPOINTS, -1)
    hops[WRIST] = 0
    for parent, child in BONES:  # bones are listed parent-first, wrist outwards
        hops[child] = hops[parent] + 1
    links = np.eye(NUM_KEYPOINTS)
    for parent, child in BONES:
        links[parent, child] = links[child, parent] = 1.0
    normalised = links / links.sum(axis=0, keepdims=True)
    partitions = np.zeros((3, NUM_KEYPOINTS, NUM_KEYPOINTS))
    for i in range(NUM_KEYPOINTS):
        for j in range(NUM_KEYPOINTS):
            if not links[i, j]:
                continue
            k = 0 if hops[j] == hops[i] else (1 if hops[j] < hops[i] else 2)
            partitions[k, i, j] = normalised[i, j]
    return partitions.astype(np.float32)


class GraphTemporalBlock(nn.Module):
    """Graph convolution over the keypoints, then temporal convolution, with a residual."""

    adjacency: Tensor

    def __init__(self, in_channels: int, out_channels: int, adjacency: Tensor, stride: int,
                 temporal_kernel: int, dropout: float) -> None:
        super().__init__()
        partitions = adjacency.shape[0]
        self.out_channels = out_channels
        self.register_buffer("adjacency", adjacency.clone(), persistent=False)
        self.importance = nn.Parameter(torch.ones_like(adjacency))
        self.learnt = nn.Parameter(torch.zeros_like(adjacency))
        self.graph = nn.Conv2d(in_channels, out_channels * partitions, kernel_size=1)
        self.graph_norm = nn.BatchNorm2d(out_channels)
        self.temporal = nn.Conv2d(out_channels, out_channels, kernel_size=(temporal_kernel, 1),
                                  stride=(stride, 1), padding=(temporal_kernel // 2, 0))
        self.temporal_norm = nn.BatchNorm2d(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.residual: nn.Module
        if in_channels == out_channels and stride == 1:
            self.residual = nn.Identity()
        else:
            self.residual = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=(stride, 1)),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C_in, T, V)`` -> ``(N, C_out, T / stride, V)``."""
        n, _, t, v = x.shape
        mixed = self.graph(x).view(n, -1, self.out_channels, t, v)
        weights = self.adjacency * self.importance + self.learnt
        y = torch.einsum("nkctv,kwv->nctw", mixed, weights)
        y = torch.relu(self.graph_norm(y))
        y = self.dropout(self.temporal_norm(self.temporal(y)))
        return torch.relu(y + self.residual(x))


class ActivityModel(nn.Module):
    """Classifies windows of hand-pose features (:mod:`~hand_pose_refiner.activity.features`).

    Input ``(N, C, T, 21)`` (one hand per window) or ``(N, M, C, T, 21)`` (up to ``M`` hands; a
    hand whose validity channel is all zero counts as absent). Output: class logits ``(N, K)``.
    ``T`` may differ from ``window_frames`` (global pooling), but the model is trained for it.
    """

    def __init__(self, class_names: Sequence[str], window_frames: int = 32, stride_frames: int = 8,
                 channels: Sequence[int] = DEFAULT_CHANNELS, strides: Sequence[int] = DEFAULT_STRIDES,
                 temporal_kernel: int = 9, dropout: float = 0.1) -> None:
        super().__init__()
        if len(channels) != len(strides) or not channels:
            raise ValueError(f"channels {tuple(channels)} and strides {tuple(strides)} must be "
                             f"non-empty and of equal length")
        if len(class_names) < 2 or len(set(class_names)) != len(class_names):
            raise ValueError(f"need at least two distinct class names, got {list(class_names)}")
        self.class_names: tuple[str, ...] = tuple(class_names)
        self.window_frames = int(window_frames)
        self.stride_frames = int(stride_frames)
        self.channels = tuple(int(c) for c in channels)
        self.strides = tuple(int(s) for s in strides)
        self.temporal_kernel = int(temporal_kernel)
        self.dropout_rate = float(dropout)
        adjacency = torch.from_numpy(hand_adjacency())
        self.input_norm = nn.BatchNorm1d(IN_CHANNELS * NUM_KEYPOINTS)
        blocks = []
        previous = IN_CHANNELS
        for width, stride in zip(self.channels, self.strides, strict=True):
            blocks.append(GraphTemporalBlock(previous, width, adjacency, stride, self.temporal_kernel,
                                             self.dropout_rate))
            previous = width
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Linear(previous, len(self.class_names))

    @classmethod
    def for_config(cls, config: ActivityConfig, **architecture: object) -> ActivityModel:
        """A fresh (untrained) model with the config's classes and window settings."""
        return cls(config.class_names, config.window_frames, config.stride_frames,
                   **architecture)  # type: ignore[arg-type]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def embed(self, x: Tensor) -> Tensor:
        """Pooled features ``(N, C_last)`` of one-hand windows ``(N, C, T, V)``."""
        n, c, t, v = x.shape
        x = self.input_norm(x.permute(0, 3, 1, 2).reshape(n, v * c, t))
        x = x.view(n, v, c, t).permute(0, 2, 3, 1).contiguous()
        for block in self.blocks:
            x = block(x)
        return x.mean(dim=(2, 3))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 4:
            return self.head(self.embed(x))
        if x.dim() != 5:
            raise ValueError(f"expected (N, C, T, V) or (N, M, C, T, V) input, got {tuple(x.shape)}")
        n, m = x.shape[:2]
        pooled = self.embed(x.reshape(n * m, *x.shape[2:])).view(n, m, -1)
        present = (x[:, :, -1].flatten(2).amax(dim=2) > 0).to(pooled.dtype)  # validity channel
        weights = present / present.sum(dim=1, keepdim=True).clamp(min=1.0)
        return self.head((pooled * weights.unsqueeze(-1)).sum(dim=1))

    @torch.no_grad()
    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities ``(N, K)`` float32 for a feature batch (evaluation mode)."""
        was_training = self.training
        self.eval()
        try:
            logits = self(torch.as_tensor(np.ascontiguousarray(features), dtype=torch.float32))
            return torch.softmax(logits, dim=-1).numpy()
        finally:
            self.train(was_training)

    # -- checkpoints --------------------------------------------------------------------------

    def metadata(self) -> dict[str, str]:
        """What a checkpoint stores besides the weights (all strings, as safetensors wants)."""
        return {
            "format": FORMAT,
            "class_names": json.dumps(list(self.class_names)),
            "window_frames": str(self.window_frames),
            "stride_frames": str(self.stride_frames),
            "channels": json.dumps(list(self.channels)),
            "strides": json.dumps(list(self.strides)),
            "temporal_kernel": str(self.temporal_kernel),
            "dropout": repr(self.dropout_rate),
            "features": json.dumps(list(FEATURE_NAMES)),
        }

    def save(self, path: str | Path) -> Path:
        """Write the weights and metadata as safetensors, atomically (temp file + rename)."""
        from safetensors.torch import save_file

        tensors = {name: tensor.detach().to("cpu").contiguous() for name, tensor in self.state_dict().items()}
        metadata = self.metadata()
        return atomic_write_with(path, lambda temporary: save_file(tensors, temporary, metadata=metadata))

    @classmethod
    def load(cls, path: str | Path, config: ActivityConfig | None = None) -> ActivityModel:
        """Read a checkpoint written by :meth:`save` (in evaluation mode).

        With ``config``, a checkpoint made for other classes or another window length is refused
        (:class:`ActivityClassMismatchError` / :class:`ActivityCheckpointError`).
        """
        path = Path(path)
        metadata, state = read_checkpoint(path, FORMAT, "activity")
        if metadata.get("features") != json.dumps(list(FEATURE_NAMES)):
            raise ActivityCheckpointError(f"{path}: made for input features {metadata.get('features')}, "
                                          f"this version computes {list(FEATURE_NAMES)}")
        try:
            model = cls(json.loads(metadata["class_names"]), int(metadata["window_frames"]),
                        int(metadata["stride_frames"]), json.loads(metadata["channels"]),
                        json.loads(metadata["strides"]), int(metadata["temporal_kernel"]),
                        float(metadata["dropout"]))
        except (KeyError, ValueError, TypeError) as exc:
            raise ActivityCheckpointError(f"{path}: malformed activity checkpoint metadata: {exc}") from exc
        expected = model.state_dict()
        wrong = sorted(set(expected) ^ set(state)) + [
            name for name in expected if name in state and state[name].shape != expected[name].shape]
        if wrong:
            raise ActivityCheckpointError(f"{path}: tensors do not fit the architecture in its "
                                          f"metadata: {', '.join(wrong[:4])}")
        model.load_state_dict(state)
        model.eval()
        if config is not None:
            model.check_config(config, str(path))
        return model

    def check_config(self, config: ActivityConfig, source: str = "activity model") -> None:
        """Refuse to serve a configuration whose classes or window length differ from the model's."""
        if tuple(config.class_names) != self.class_names:
            raise ActivityClassMismatchError(
                f"{source}: the model's classes {list(self.class_names)} do not match "
                f"activity.class_names {list(config.class_names)} of the configuration")
        if config.window_frames != self.window_frames:
            raise ActivityCheckpointError(
                f"{source}: the model was trained on windows of {self.window_frames} poses, the "
                f"configuration asks for activity.window_frames = {config.window_frames}")
