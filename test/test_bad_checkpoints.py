"""Hostile or broken weight files: told apart by content, refused naming the file and the entry,
never loaded with NaN or infinite weights, never a traceback."""

from __future__ import annotations

import pickle

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from hand_pose_refiner.activity.model import ActivityModel
from hand_pose_refiner.activity.packaged import PACKAGED_REACH_CHECKPOINT
from hand_pose_refiner.activity.reach_checkpoint import FORMAT
from hand_pose_refiner.activity.reach_model import ReachModel
from hand_pose_refiner.checkpoint_files import SAFETENSORS, TORCH, file_format, read_checkpoint
from hand_pose_refiner.errors import ActivityCheckpointError, WeightsError
from hand_pose_refiner.models.mediapipe import MediaPipeHandDetector, MediaPipePoseEstimator
from hand_pose_refiner.models.mediapipe.palm_detector import PalmDetectorNet
from hand_pose_refiner.models.mediapipe.weights import load_weights
from hand_pose_refiner.models.mmlab.runtime import read_checkpoint as read_mmlab_checkpoint

NETWORK = "palm_detection_full"


@pytest.fixture(scope="module")
def pretrained() -> dict[str, torch.Tensor]:
    """The pre-trained palm detector's weights, converted from the MediaPipe wheel."""
    state = MediaPipeHandDetector(device="cpu").net.state_dict()
    return {name: tensor.detach().clone().contiguous() for name, tensor in state.items()}


def with_value(state: dict[str, torch.Tensor], value: float) -> dict[str, torch.Tensor]:
    """The weights with one entry of the second tensor set to ``value``."""
    changed = {name: tensor.clone() for name, tensor in state.items()}
    name = list(changed)[1]
    changed[name].view(-1)[3] = value
    return changed


def test_a_torch_file_of_ints_is_refused_naming_the_key(tmp_path, pretrained):
    path = tmp_path / "ints.pt"
    torch.save({name: 1 for name in pretrained}, path)
    first = next(iter(pretrained))
    with pytest.raises(WeightsError, match=rf"ints\.pt: {first} holds int 1, not a tensor"):
        load_weights(path, PalmDetectorNet(), NETWORK)


def test_a_torch_file_named_ckpt_loads(tmp_path, pretrained):
    path = tmp_path / "palm.ckpt"
    torch.save(pretrained, path)
    net = PalmDetectorNet()
    load_weights(path, net, NETWORK)
    assert all(torch.equal(net.state_dict()[name], tensor) for name, tensor in pretrained.items())


def test_a_safetensors_file_named_pt_and_a_legacy_torch_file_load(tmp_path, pretrained):
    named_pt = tmp_path / "palm.pt"
    save_file(pretrained, str(named_pt), metadata={"network": NETWORK})
    legacy = tmp_path / "palm.bin"
    torch.save({"state_dict": pretrained}, legacy, _use_new_zipfile_serialization=False)
    for path in (named_pt, legacy):
        net = PalmDetectorNet()
        load_weights(path, net, NETWORK)
        assert torch.equal(net.stem.weight, pretrained["stem.weight"])


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights_are_refused_naming_the_tensor(tmp_path, pretrained, value):
    second = list(pretrained)[1]
    safetensors_file, torch_file = tmp_path / "palm.safetensors", tmp_path / "palm.pt"
    save_file(with_value(pretrained, value), str(safetensors_file), metadata={"network": NETWORK})
    torch.save(with_value(pretrained, value), torch_file)
    for path in (safetensors_file, torch_file):
        refusal = rf"{path.name}: tensor {second} holds [01] NaN and [01] infinite"
        with pytest.raises(WeightsError, match=refusal):
            MediaPipeHandDetector(path, device="cpu")


def test_non_finite_pose_weights_are_refused(tmp_path):
    estimator = MediaPipePoseEstimator(device="cpu")
    with torch.no_grad():
        estimator.net.presence.bias.fill_(float("nan"))
    saved = estimator.save(tmp_path / "pose.safetensors")
    with pytest.raises(WeightsError, match=r"pose\.safetensors: tensor presence\.bias holds 1 NaN"):
        MediaPipePoseEstimator(saved, device="cpu")


def small_activity_model() -> ActivityModel:
    torch.manual_seed(0)
    return ActivityModel(("idle", "reach", "grasp"), window_frames=12, stride_frames=4, channels=(8, 16),
                         strides=(1, 2), temporal_kernel=3).eval()


def test_non_finite_activity_weights_are_refused(tmp_path):
    model = small_activity_model()
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = float("inf")
    path = model.save(tmp_path / "activity.safetensors")
    name = next(iter(model.state_dict()))
    with pytest.raises(ActivityCheckpointError, match=rf"activity\.safetensors: tensor {name} holds 0 NaN "
                                                      r"and 1 infinite"):
        ActivityModel.load(path)


def test_a_torch_file_is_refused_as_an_activity_checkpoint(tmp_path):
    path = tmp_path / "activity.safetensors"
    torch.save(small_activity_model().state_dict(), path)
    with pytest.raises(ActivityCheckpointError, match=r"activity\.safetensors: a torch file; this "
                                                      r"checkpoint must be a safetensors file"):
        ActivityModel.load(path)


def test_openmmlab_torch_files_are_checked_the_same_way(tmp_path, pretrained):
    ints, nan = tmp_path / "ints.pth", tmp_path / "nan.pth"
    torch.save({"state_dict": {"backbone.conv1.weight": 3}, "meta": {}}, ints)
    torch.save({"state_dict": with_value(pretrained, float("nan"))}, nan)
    with pytest.raises(WeightsError, match=r"ints\.pth: backbone\.conv1\.weight holds int 3, not a tensor"):
        read_mmlab_checkpoint(ints, "pose")
    with pytest.raises(WeightsError, match=r"nan\.pth: tensor .* holds 1 NaN"):
        read_mmlab_checkpoint(nan, "pose")
    state = {"w": torch.ones(2)}
    torch.save({"state_dict": state, "meta": {"dataset_meta": {"classes": ["hand"]}}}, tmp_path / "ok.ckpt")
    checkpoint = read_mmlab_checkpoint(tmp_path / "ok.ckpt", "detector")
    assert checkpoint.meta == {"classes": ["hand"]} and torch.equal(checkpoint.state_dict["w"], state["w"])


def test_the_format_is_told_by_content_not_by_name(tmp_path, pretrained):
    small = {"stem.weight": pretrained["stem.weight"]}
    save_file(small, str(tmp_path / "a.pt"))
    torch.save(small, tmp_path / "b.safetensors")
    torch.save(small, tmp_path / "c.txt", _use_new_zipfile_serialization=False)
    (tmp_path / "d.safetensors").write_bytes(b"GIF89a" + bytes(100))
    (tmp_path / "e.pt").write_bytes(b"")
    assert [file_format(tmp_path / name) for name in ("a.pt", "b.safetensors", "c.txt", "d.safetensors",
                                                      "e.pt")] == [SAFETENSORS, TORCH, TORCH, None, None]
    with pytest.raises(WeightsError, match=r"d\.safetensors: neither a safetensors nor a torch weight file "
                                           r"\(106 bytes\)"):
        read_checkpoint(tmp_path / "d.safetensors")


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_pickle_with_objects_is_refused_unread(tmp_path):
    path = tmp_path / "evil.ckpt"
    path.write_bytes(pickle.dumps({"stem.weight": print}, protocol=2))
    with pytest.raises(WeightsError, match=r"evil\.ckpt: not a readable torch weight file: it pickles print"):
        load_weights(path, PalmDetectorNet(), NETWORK)
    path.write_bytes(pickle.dumps({"stem.weight": print}))
    with pytest.raises(WeightsError, match=r"evil\.ckpt: not a readable torch weight file: Unsupported"):
        load_weights(path, PalmDetectorNet(), NETWORK)


# Random weight files: read_checkpoint returns finite tensors only, or raises the package's error.
FUZZ = settings(max_examples=80, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
numbers = st.floats(allow_nan=True, allow_infinity=True, width=32)
tensors = st.builds(lambda values, dtype: torch.tensor(values, dtype=dtype),
                    st.lists(numbers, min_size=1, max_size=6),
                    st.sampled_from([torch.float32, torch.float16, torch.float64, torch.bfloat16]))
int_tensors = st.lists(st.integers(-1000, 1000), min_size=1, max_size=6).map(torch.tensor)
values = st.one_of(tensors, int_tensors, st.integers(), st.floats(), st.text(max_size=5), st.none(),
                   st.lists(st.integers(), max_size=3))
state_dicts = st.dictionaries(st.text(min_size=1, max_size=8), values, max_size=5)


def reads_or_refuses(path) -> None:
    try:
        contents = read_checkpoint(path)
    except WeightsError as refused:
        assert str(refused).startswith(f"{path}: ")
        return
    for tensor in contents.tensors.values():
        assert not tensor.is_floating_point() or bool(torch.isfinite(tensor).all())


@FUZZ
@given(state=state_dicts, nested=st.booleans())
def test_random_torch_state_dicts_load_or_are_refused(tmp_path, state, nested):
    path = tmp_path / "random.pt"
    torch.save({"state_dict": state} if nested else state, path)
    reads_or_refuses(path)


@FUZZ
@given(state=st.dictionaries(st.text(min_size=1, max_size=8), st.one_of(tensors, int_tensors), max_size=5))
def test_random_safetensors_files_load_or_are_refused(tmp_path, state):
    path = tmp_path / "random.safetensors"
    save_file(state, str(path))
    reads_or_refuses(path)


@FUZZ
@given(content=st.binary(max_size=300), keep=st.integers(0, 2000), torch_file=st.booleans())
def test_random_and_truncated_bytes_are_refused(tmp_path, pretrained, content, keep, torch_file):
    whole = tmp_path / "whole.pt"
    small = {"stem.weight": pretrained["stem.weight"][:2]}
    if torch_file:
        torch.save(small, whole)
    else:
        save_file(small, str(whole))
    cut = tmp_path / "cut.pt"
    cut.write_bytes(whole.read_bytes()[:keep] + content)
    reads_or_refuses(cut)


@pytest.mark.parametrize("settings_text", ["{not json", "[1, 2]", '{"no_such_setting": 1}'])
def test_a_reach_checkpoint_with_malformed_settings_is_refused(tmp_path, settings_text):
    path = tmp_path / "reach.safetensors"
    save_file(load_file(str(PACKAGED_REACH_CHECKPOINT)), str(path),
              metadata={"format": FORMAT, "settings": settings_text})
    with pytest.raises(ActivityCheckpointError, match="settings"):
        ReachModel.load(path)
