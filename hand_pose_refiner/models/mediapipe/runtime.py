"""Where the MediaPipe networks run for inference: torch itself, or OpenVINO compiled from torch.

The torch modules stay the networks' one definition: they are trained, saved and loaded as they
are. For inference on the CPU, :class:`NetworkRunner` can hand a batch to an OpenVINO compilation
of the same module instead (the same outputs within 1e-4; 2-2.7x faster for the palm detector and
1.4-2x for the landmark network on a 2-core CPU, see docs/design/inference_runtime.md). The
compilation follows the module: whenever a weight changes (a load, a fine-tuning step, kept heads
added) or torch's thread count does, the next call compiles again. Compilations are shared between
runners whose modules hold the same weights, so a process that builds many models of the same
weights compiles once.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from hand_pose_refiner.errors import ModelError

RUNTIMES = ("auto", "torch", "openvino")
COMPILED_KEPT = 8  # compilations kept per process (each holds one copy of a network's weights)

# uint8 (n, size, size, 3) RGB batch -> output tensors; the torch code of one inference step.
InferenceFunction = Callable[[torch.Tensor], Sequence[torch.Tensor]]


def openvino_installed() -> bool:
    """Whether the ``openvino`` package can be imported (it is not imported here)."""
    return importlib.util.find_spec("openvino") is not None


def resolve_runtime(requested: str, device: torch.device, installed: bool | None = None) -> str:
    """The runtime that runs inference: ``torch`` or ``openvino``.

    ``auto`` is OpenVINO on the CPU when it is installed, else torch; on a GPU torch always runs
    (OpenVINO compiles for the CPU here). ``openvino`` without the package is a :class:`ModelError`.
    """
    if requested not in RUNTIMES:
        raise ModelError(f"unknown inference runtime {requested!r}; choose one of {', '.join(RUNTIMES)}")
    available = openvino_installed() if installed is None else installed
    if requested == "openvino" and not available:
        raise ModelError("inference runtime openvino: the openvino package is not installed "
                         "(pip install openvino, or set mediapipe.runtime: torch)")
    if requested == "torch" or device.type != "cpu":
        return "torch"
    return "openvino" if available else "torch"


class _Traced(nn.Module):
    """An inference function as a traceable module over ``module`` (whose weights it reads)."""

    def __init__(self, module: nn.Module, function: InferenceFunction) -> None:
        super().__init__()
        self.module = module
        self.function = function

    def forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.function(batch))


class _WeightsWatch:
    """Tells whether a module's weights may have changed since the last look: a tensor written in
    place (its version counter), replaced or moved (its storage), or a top-level layer set (kept
    heads added or dropped). Cheap enough for every call: the tensor list is kept between looks."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self._layers: tuple[int, ...] = ()
        self._tensors: list[torch.Tensor] = []

    def state(self) -> tuple[object, ...]:
        layers = tuple(id(child) for child in self.module.children())
        if layers != self._layers:
            self._layers = layers
            self._tensors = [*self.module.parameters(), *self.module.buffers()]
        return layers, tuple((t.data_ptr(), t._version) for t in self._tensors)


def _weights_digest(module: nn.Module) -> str:
    """The weights' content (names, shapes and values): equal for equal networks."""
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().to("cpu").contiguous().numpy().tobytes())
    return digest.hexdigest()


_compiled: OrderedDict[tuple[str, int, int], Any] = OrderedDict()
_compiled_lock = threading.Lock()


def _compile(module: nn.Module, function: InferenceFunction, input_size: int, threads: int) -> Any:
    """An OpenVINO CPU compilation of ``function`` (uint8 batches of ``(n, size, size, 3)``),
    shared by every module with the same weights and thread count."""
    import openvino

    key = (_weights_digest(module), input_size, threads)
    with _compiled_lock:
        if key in _compiled:
            _compiled.move_to_end(key)
            return _compiled[key]
        example = torch.zeros(1, input_size, input_size, 3, dtype=torch.uint8)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on shape arithmetic
            traced = torch.jit.trace(_Traced(module, function).eval(), example, check_trace=False)
        shape = openvino.PartialShape([-1, input_size, input_size, 3])
        # Copied weights: shared ones would change under the compilation when torch trains in place.
        model = openvino.convert_model(traced, input=[(shape, openvino.Type.u8)], share_weights=False)
        compiled = openvino.Core().compile_model(model, "CPU", {
            "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": "f32",  # never bf16/fp16, whatever the CPU offers
            # Threads not pinned to cores: the model nodes (threads or processes) each compile
            # their own network, and pinned they would all sit on the same first cores.
            "ENABLE_CPU_PINNING": False})
        _compiled[key] = compiled
        while len(_compiled) > COMPILED_KEPT:
            _compiled.popitem(last=False)
        return compiled


class NetworkRunner:
    """Runs one inference function of a network on uint8 batches with the chosen runtime.

    ``function`` is the torch code of the whole step, from a uint8 ``(n, size, size, 3)`` RGB
    batch to the outputs the caller reads (decoded, squashed): with ``openvino`` all of it runs
    compiled, so that no torch operation is left around the call (torch's idle worker threads
    would spin on the cores OpenVINO's threads need). Torch runs it while the module is in
    training mode (fine-tuning) or on a GPU.
    """

    def __init__(self, module: nn.Module, function: InferenceFunction, input_size: int,
                 runtime: str) -> None:
        self.module = module
        self.function = function
        self.input_size = input_size
        self.runtime = runtime
        self._watch = _WeightsWatch(module)
        self._request: Any = None
        self._state: tuple[object, ...] = ()
        self._lock = threading.Lock()

    def __call__(self, batch: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.float32], ...]:
        """The function's outputs, as numpy arrays, for a uint8 ``(n, size, size, 3)`` batch."""
        device = next(self.module.parameters()).device
        if self.runtime == "torch" or self.module.training or device.type != "cpu":
            with torch.inference_mode():
                outputs = self.function(torch.from_numpy(batch).to(device))
                return tuple(output.cpu().numpy() for output in outputs)
        with self._lock:
            request = self._current_request()
            results = request.infer(np.ascontiguousarray(batch), share_outputs=False)
            return tuple(np.asarray(results[index]) for index in range(len(results)))

    @contextlib.contextmanager
    def torch_only(self) -> Iterator[None]:
        """Inference with torch while the block runs: fine-tuning evaluates its weights after every
        epoch, and compiling each epoch's weights would cost more than it saves."""
        previous, self.runtime = self.runtime, "torch"
        try:
            yield
        finally:
            self.runtime = previous

    def warm_up(self) -> None:
        """Compile now (OpenVINO) or run once (torch) on a blank batch of one."""
        self(np.zeros((1, self.input_size, self.input_size, 3), np.uint8))

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without its compilation (a process compiles its own) or its lock."""
        state = dict(self.__dict__)
        state.update(_request=None, _state=(), _lock=None, _watch=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._watch = _WeightsWatch(self.module)

    def _current_request(self) -> Any:
        state = (self._watch.state(), torch.get_num_threads())
        if self._request is None or state != self._state:
            compiled = _compile(self.module, self.function, self.input_size, torch.get_num_threads())
            self._request = compiled.create_infer_request()
            self._state = state
        return self._request
