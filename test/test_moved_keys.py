"""Keys that moved into a backend's own section (``config.MOVED_KEYS``): a file, a flat parameter
mapping or a node's parameter file that still uses the old name is read as the new one, with a
warning; both names at once are refused."""

from __future__ import annotations

import logging

import pytest

from hand_pose_refiner.config import (
    MOVED_KEYS,
    Config,
    MediaPipeConfig,
    MMLabConfig,
    config_from_ros_parameters,
    load_config,
)
from hand_pose_refiner.errors import ConfigError

OLD_CELL = """/**:
  ros__parameters:
    models:
      device: cpu
      detector_tile_size: 0.5
      detector_tiles_per_frame: 3
      self_check: false
      detector_config: small
"""


def test_every_backend_key_moved_from_the_models_section():
    assert set(MOVED_KEYS) == {f"models.{name}" for name in (
        "self_check", "self_check_max_shift", "detector_tile_size", "detector_tiles_per_frame",
        "detector_tile_period", "surest_crop", "detector_config", "pose_config")}
    names = {spec for spec in Config().to_ros_parameters()}
    assert not set(MOVED_KEYS) & names and set(MOVED_KEYS.values()) <= names


def test_a_file_with_the_old_names_reads_as_the_new_ones_and_says_so(tmp_path, caplog):
    path = tmp_path / "old_cell.yaml"
    path.write_text(OLD_CELL)
    with caplog.at_level(logging.WARNING, logger="hand_pose_refiner.config"):
        config = load_config(path)
    assert config.mediapipe == MediaPipeConfig(detector_tile_size=0.5, detector_tiles_per_frame=3,
                                               self_check=False)
    assert config.mmlab == MMLabConfig(detector_config="small")
    assert config.models.device == "cpu"
    warned = " ".join(record.getMessage() for record in caplog.records)
    assert f"{path}: models.detector_tile_size is now mediapipe.detector_tile_size" in warned
    assert "models.detector_config is now mmlab.detector_config" in warned


def test_old_and_new_name_together_are_refused(tmp_path):
    path = tmp_path / "both.yaml"
    path.write_text("models:\n  self_check: false\nmediapipe:\n  self_check: true\n")
    with pytest.raises(ConfigError, match=r"both.yaml: models.self_check and mediapipe.self_check are "
                                          r"both set"):
        load_config(path)


def test_a_moved_value_is_still_validated_under_its_new_name(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("models:\n  detector_tile_size: 2.0\n")
    with pytest.raises(ConfigError, match=r"mediapipe.detector_tile_size = 2.0: out of range"):
        load_config(path)


def test_flat_ros_parameters_with_an_old_name():
    config = config_from_ros_parameters({"models.surest_crop": False, "spatial_filter.max_hands": 1})
    assert config.mediapipe.surest_crop is False and config.spatial_filter.max_hands == 1


def test_a_node_given_an_old_parameter_file_declares_the_new_names(ros_context, tmp_path, capfd):
    from rclpy.parameter import Parameter

    from hand_pose_refiner.ros.nodes.spatial_filter import SpatialFilterNode

    node = SpatialFilterNode(context=ros_context, parameter_overrides=[
        Parameter("models.detector_tile_size", value=0.5), Parameter("models.self_check", value=False),
        Parameter("spatial_filter.max_handz", value=3)])
    try:
        assert node.get_parameter("mediapipe.detector_tile_size").value == 0.5
        assert node.get_parameter("mediapipe.self_check").value is False
        assert not node.has_parameter("models.self_check")
        config = config_from_ros_parameters(node.schema_parameters())
        assert config.mediapipe.detector_tile_size == 0.5
    finally:
        node.destroy_node()
    logged = capfd.readouterr().err
    assert "parameter models.self_check is now mediapipe.self_check" in logged
    assert "unknown parameter spatial_filter.max_handz is ignored" in logged


def test_a_node_given_both_names_refuses_to_start(ros_context):
    from rclpy.parameter import Parameter

    from hand_pose_refiner.ros.nodes.spatial_filter import SpatialFilterNode

    both = r"node spatial_filter: models\.surest_crop and mediapipe\.surest_crop are both set"
    with pytest.raises(ConfigError, match=both):
        SpatialFilterNode(context=ros_context, parameter_overrides=[
            Parameter("models.surest_crop", value=False), Parameter("mediapipe.surest_crop", value=True)])


def test_a_node_started_with_an_old_parameter_file_reads_the_new_names(rclpy_types, tmp_path):
    """As ``--params-file`` (the launch file's way) gives it: the old cell file, unchanged."""
    import rclpy

    from hand_pose_refiner.ros.nodes.spatial_filter import SpatialFilterNode

    path = tmp_path / "old_cell.yaml"
    path.write_text(OLD_CELL)
    context = rclpy.Context()
    rclpy.init(context=context, args=["--ros-args", "--params-file", str(path)])
    try:
        node = SpatialFilterNode(context=context)
        config = config_from_ros_parameters(node.schema_parameters())
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
    assert config.mediapipe == MediaPipeConfig(detector_tile_size=0.5, detector_tiles_per_frame=3,
                                               self_check=False)
    assert config.mmlab.detector_config == "small"
