"""What the OpenMMLab detector and pose estimator share: the lazy import of the extra, configs,
and checkpoints.

mmdet, mmpose and mmcv are imported only here and only when an OpenMMLab model is created, so
the default install never needs them. Configs are mmengine configs (a file, a built-in name, or
the text stored in a checkpoint); every model-zoo download they name is removed, since weights
come from the user's checkpoint. Checkpoints are written as safetensors with the config text and
the dataset meta in the header, and read without unpickling anything: OpenMMLab torch files
are read with ``torch.load(weights_only=True)`` (:mod:`hand_pose_refiner.checkpoint_files`).
"""

from __future__ import annotations

import json
import logging
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hand_pose_refiner.atomic import atomic_write_with
from hand_pose_refiner.checkpoint_files import TORCH
from hand_pose_refiner.checkpoint_files import read_checkpoint as read_checkpoint_file
from hand_pose_refiner.errors import ConfigError, ModelError, UnreadableTorchFileError, WeightsError
from hand_pose_refiner.models.mmlab.configs import BUILTIN, builtin_config
from hand_pose_refiner.skeleton import NUM_KEYPOINTS

LOGGER = logging.getLogger("hand_pose_refiner.models.mmlab")
FORMAT = "hand_pose_refiner/mmlab-1"
KINDS = {"detector": "mmdet", "pose": "mmpose"}
INSTALL_HINT = ("install the OpenMMLab extra: `bash scripts/setup.sh --mmlab` builds it in its own "
                "environment (.venv-mmlab; about 10 minutes the first time, for mmcv's ops), then run "
                "`.venv-mmlab/bin/hand-pose-refiner`")
# Init entries that fetch weights from a model zoo (unreachable on many cells): dropped.
_DOWNLOAD_PREFIXES = ("torchvision://", "open-mmlab://", "mmcls://", "openmmlab://", "http://", "https://",
                      "modelzoo://")


def require_mmlab() -> None:
    """Import mmcv (with its compiled ops), mmengine, mmdet and mmpose, or say how to install them."""
    # mmengine imports pkg_resources (hence setuptools < 82), which warns on every start.
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
    try:
        import mmcv.ops  # noqa: F401
        import mmdet.utils
        import mmengine  # noqa: F401
        import mmpose.utils
    except ImportError as exc:
        raise ModelError(f"models.backend 'mmlab' needs mmdet, mmpose and mmcv with its compiled ops, "
                         f"which do not import here ({exc}); {INSTALL_HINT}") from exc
    from mmengine.logging import MMLogger

    mmdet.utils.register_all_modules(init_default_scope=False)
    mmpose.utils.register_all_modules(init_default_scope=False)
    # Building a model logs every parameter's initialisation at INFO level.
    MMLogger.get_current_instance().setLevel(logging.WARNING)


_SCOPE_LOCK = threading.RLock()


@contextmanager
def scope(kind: str) -> Iterator[None]:
    """Registry scope of ``kind``'s library while building models, pipelines or runners.

    mmengine keeps the scope process-wide; the lock keeps two nodes of one process (detector and
    pose estimator, configured on executor threads) from switching it under each other.
    """
    from mmengine.registry import DefaultScope

    with _SCOPE_LOCK, DefaultScope.overwrite_default_scope(KINDS[kind]):
        yield


def build_network(kind: str, config: Any) -> torch.nn.Module:
    """The model of ``config``, initialised as its config says, from a fixed seed.

    Without a checkpoint these are the weights used, so every creation gives the same ones: a
    ``refine`` run started from no checkpoint evaluates and keeps one and the same model.
    """
    if kind == "detector":
        from mmdet.registry import MODELS
    else:
        from mmpose.registry import MODELS
    with scope(kind), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = MODELS.build(config.model)
        net.init_weights()
    return net


def strip_downloads(value: Any) -> Any:
    """``value`` (a config tree) without pre-trained init entries and ``load_from``.

    Weights come from the checkpoint given to the backend; a zoo URL would only try to download.
    """
    if isinstance(value, Mapping):
        cleaned = {}
        for key, item in value.items():
            if key == "init_cfg" and _downloads(item):
                continue
            if key in ("load_from", "pretrained") and isinstance(item, str) and item:
                continue
            cleaned[key] = strip_downloads(item)
        return cleaned
    if isinstance(value, list):
        return [strip_downloads(item) for item in value]
    if isinstance(value, tuple):
        return tuple(strip_downloads(item) for item in value)
    return value


def _downloads(init_cfg: Any) -> bool:
    entries = init_cfg if isinstance(init_cfg, list) else [init_cfg]
    return any(isinstance(entry, Mapping)
               and (entry.get("type") == "Pretrained"
                    or str(entry.get("checkpoint", "")).startswith(_DOWNLOAD_PREFIXES))
               for entry in entries)


@dataclass
class Checkpoint:
    """Weights read from a file, with what the file says about the model (if anything)."""

    path: Path
    state_dict: dict[str, torch.Tensor]
    config_text: str | None
    meta: dict[str, Any]


def read_checkpoint(path: str | Path, kind: str) -> Checkpoint:
    """Read one of our safetensors checkpoints, or an OpenMMLab torch file (tensors only)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: {kind} checkpoint not found")
    try:
        contents = read_checkpoint_file(path, WeightsError)
    except UnreadableTorchFileError as exc:
        raise WeightsError(
            f"{path}: cannot be read with torch.load(weights_only=True): {exc.reason}; only plain tensors "
            f"and containers are accepted. In an environment that trusts the file, keep its weights: "
            f"torch.save({{'state_dict': torch.load(path, weights_only=False)['state_dict']}}, new_path)"
        ) from exc
    if contents.format == TORCH:
        meta = contents.extra.get("meta", {})
        dataset_meta = meta.get("dataset_meta", {}) if isinstance(meta, dict) else {}
        return Checkpoint(path, contents.tensors, None, dict(dataset_meta) if isinstance(dataset_meta, dict)
                          else {})
    header = contents.metadata
    if header.get("format") != FORMAT:
        raise WeightsError(f"{path}: not an OpenMMLab checkpoint of hand_pose_refiner "
                           f"(format {header.get('format')!r}, expected {FORMAT!r})")
    if header.get("kind") != kind:
        raise WeightsError(f"{path}: holds a {header.get('kind')} model, not a {kind} model")
    try:
        meta = json.loads(header.get("meta", "{}"))
    except ValueError as exc:
        raise WeightsError(f"{path}: its dataset meta is not JSON: {exc}") from exc
    return Checkpoint(path, contents.tensors, header.get("config") or None, meta)


def write_checkpoint(path: str | Path, kind: str, model: torch.nn.Module, config_text: str,
                     meta: Mapping[str, Any]) -> Path:
    """Write ``model``'s weights, its config text and dataset meta as safetensors, atomically."""
    from safetensors.torch import save_file

    tensors = {name: tensor.detach().to("cpu").contiguous().clone()
               for name, tensor in model.state_dict().items()}
    header = {"format": FORMAT, "kind": kind, "config": config_text,
              "meta": json.dumps(_jsonable(meta))}
    return atomic_write_with(Path(path),
                             lambda temporary: save_file(tensors, str(temporary), metadata=header))


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def load_config(kind: str, reference: str, checkpoint: Checkpoint | None) -> tuple[Any, str]:
    """The mmengine config of the model and a name for it in messages.

    ``reference`` is a config file, a built-in name (``paper``, ``small``) or empty: then the config
    stored in the checkpoint, else the built-in ``paper`` config.
    """
    from mmengine.config import Config

    if not reference and checkpoint is not None and checkpoint.config_text:
        source = f"{checkpoint.path} (stored config)"
        config = Config.fromstring(checkpoint.config_text, ".py")
    elif not reference or reference in BUILTIN:
        name = reference or "paper"
        source = f"built-in {name} {kind} config"
        config = Config(builtin_config(kind, name))
    else:
        path = Path(reference)
        if not path.is_file():
            raise ConfigError(f"{path}: {kind} config file not found")
        try:
            config = Config.fromfile(str(path))
        except Exception as exc:
            raise ConfigError(f"{path}: cannot read the {kind} config: {exc}") from exc
        source = str(path)
    if "model" not in config:
        raise ConfigError(f"{source}: has no 'model' section")
    config = Config(strip_downloads(config.to_dict()))
    check_config(kind, config, source)
    return config, source


def count_in_config(kind: str, model: Mapping[str, Any]) -> list[int]:
    """Classes of every box head (detector) or keypoints of the head (pose) the config declares."""
    if kind == "pose":
        head = model.get("head", {})
        return [int(head["out_channels"])] if "out_channels" in head else []
    heads: list[Any] = []
    roi_head = model.get("roi_head") or {}
    bbox_head = roi_head.get("bbox_head")
    heads += bbox_head if isinstance(bbox_head, list) else [bbox_head] if bbox_head else []
    if model.get("bbox_head"):
        heads.append(model["bbox_head"])
    return [int(head["num_classes"]) for head in heads if isinstance(head, Mapping) and "num_classes" in head]


def check_config(kind: str, config: Any, source: str) -> None:
    """Refuse a detector config that is not one-class ('hand') or a pose config not of 21 keypoints."""
    counts = count_in_config(kind, config.model)
    wanted, what = (1, "classes") if kind == "detector" else (NUM_KEYPOINTS, "keypoints")
    if not counts:
        key = "roi_head.bbox_head.num_classes" if kind == "detector" else "head.out_channels"
        raise ConfigError(f"{source}: cannot find the number of {what} in the model config ({key})")
    wrong = sorted({c for c in counts if c != wanted})
    if wrong:
        raise ConfigError(f"{source}: the {kind} config has {wrong[0]} {what}; the backend needs {wanted}"
                          + (" (one class: 'hand')" if kind == "detector" else " (one hand)"))


def load_state(model: torch.nn.Module, checkpoint: Checkpoint, kind: str, source: str) -> None:
    """Copy the checkpoint's weights into ``model``; refuse missing, extra or misshapen tensors.

    A different number of classes or keypoints shows as a misshapen head tensor; the error says so.
    """
    expected = model.state_dict()
    state = checkpoint.state_dict
    path = checkpoint.path
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} tensors missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} tensors the model does not have (e.g. {unexpected[0]})")
        raise WeightsError(f"{path}: does not fit the {kind} model of {source}: {'; '.join(parts)}")
    for name, tensor in state.items():
        if name in expected and tuple(tensor.shape) != tuple(expected[name].shape):
            got, want = tuple(tensor.shape), tuple(expected[name].shape)
            hint = _count_mismatch(kind, name, got, want)
            raise WeightsError(f"{path}: {hint or f'tensor {name} has shape {got}'}, but the model of "
                               f"{source} needs {want if not hint else _wanted(kind)}")
    model.load_state_dict(state, strict=True)


def load_network(kind: str, reference: str, path: str | Path | None,
                 pipeline_of: Callable[[Any], list[dict[str, Any]]]) -> tuple[Any, str, torch.nn.Module, Any]:
    """What both adapters' ``load`` does: config (from ``reference`` or the checkpoint), network,
    inference pipeline and weights. Returns ``(config, source, net, pipeline)``; without a
    checkpoint the network keeps its random initialisation (and says so)."""
    from mmengine.dataset import Compose

    checkpoint = read_checkpoint(path, kind) if path else None
    config, source = load_config(kind, reference, checkpoint)
    net = build_network(kind, config)
    with scope(kind):
        pipeline = Compose(pipeline_of(config))
    if checkpoint is not None:
        load_state(net, checkpoint, kind, source)
    else:
        LOGGER.warning("no %s checkpoint: the %s starts from random weights", kind, source)
    return config, source, net, pipeline


def _wanted(kind: str) -> str:
    return "1 class ('hand')" if kind == "detector" else f"{NUM_KEYPOINTS} keypoints"


def _count_mismatch(kind: str, name: str, got: tuple[int, ...], want: tuple[int, ...]) -> str | None:
    """A head tensor whose first dimension counts classes or keypoints, described as such."""
    if kind == "detector" and name.endswith(("fc_cls.weight", "fc_cls.bias")):
        return f"the detector checkpoint has {got[0] - 1} classes ({name} has shape {got})"
    if kind == "pose" and name.startswith("head.final_layer.") and got[1:] == want[1:]:
        return f"the pose checkpoint has {got[0]} keypoints ({name} has shape {got})"
    return None


def config_text(config: Any) -> str:
    """The config as mmengine python text (stored in checkpoints, readable by people)."""
    return str(config.pretty_text)

