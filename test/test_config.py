from dataclasses import replace

import pytest
import yaml

from hand_pose_refiner.config import (
    Config,
    commented_yaml,
    config_from_mapping,
    config_from_ros_parameters,
    load_config,
    parameter_specs,
)
from hand_pose_refiner.errors import ConfigError
from hand_pose_refiner.resources import find_share_file


def write(tmp_path, text: str):
    path = tmp_path / "cell.yaml"
    path.write_text(text)
    return path


def test_shipped_config_is_valid_complete_and_generated_from_the_schema():
    path = find_share_file("config/assembly.yaml")
    config = load_config(path)
    assert config == Config()
    body = yaml.safe_load(path.read_text())["/**"]["ros__parameters"]
    flat = {f"{section}.{key}" for section, keys in body.items() for key in keys}
    assert flat == {spec.name for spec in parameter_specs()}, "every schema key is documented"
    assert commented_yaml(config) == path.read_text(), \
        "regenerate with `hand-pose-refiner config show --defaults > config/assembly.yaml`"


def test_glovebox_config_is_the_defaults_with_tiles_for_small_hands():
    """The main job's cell config overrides one key: if the schema's defaults change, the cell
    follows them instead of holding a stale copy."""
    config = load_config(find_share_file("config/glovebox.yaml"))
    assert config.models.detector_tile_size == 0.5
    assert config == replace(Config(), models=replace(Config().models, detector_tile_size=0.5))


def test_plain_mapping_and_ros_wrapper_are_both_accepted(tmp_path):
    plain = load_config(write(tmp_path, "spatial_filter:\n  max_hands: 4\n"))
    wrapped_text = "/**:\n  ros__parameters:\n    spatial_filter:\n      max_hands: 4\n"
    wrapped = load_config(write(tmp_path, wrapped_text))
    assert plain == wrapped
    assert plain.spatial_filter.max_hands == 4
    assert plain.temporal_filter == Config().temporal_filter


def test_ros_parameters_round_trip():
    config = config_from_mapping({"tracking": {"min_hits": 3}, "qos": {"image_reliability": "reliable"}})
    flat = config.to_ros_parameters()
    assert flat["tracking.min_hits"] == 3
    assert config_from_ros_parameters(flat) == config


def test_rules_list_switches_rules_off():
    config = config_from_mapping({"spatial_filter": {"rules": ["hand_score", "max_hands"]}})
    assert config.spatial_filter.rules == ("hand_score", "max_hands")
    assert config.to_ros_parameters()["spatial_filter.rules"] == ["hand_score", "max_hands"]


def test_int_is_accepted_for_a_float_key():
    config = config_from_mapping({"spatial_filter": {"min_hand_size_px": 20}})
    assert config.spatial_filter.min_hand_size_px == 20.0
    assert isinstance(config.spatial_filter.min_hand_size_px, float)


@pytest.mark.parametrize(("text", "expected"), [
    ("spatial_filter:\n  max_hand: 2\n", r"cell\.yaml: unknown key spatial_filter\.max_hand = 2"),
    ("spatil_filter:\n  max_hands: 2\n", r"cell\.yaml: unknown section 'spatil_filter'"),
    ("spatial_filter:\n  max_hands: two\n",
     r"cell\.yaml: spatial_filter\.max_hands = 'two': must be an integer, not str"),
    ("spatial_filter:\n  max_hands: true\n", r"spatial_filter\.max_hands = True: must be an integer"),
    ("spatial_filter:\n  max_hands: 0\n",
     r"cell\.yaml: spatial_filter\.max_hands = 0: out of range, must be >= 1"),
    ("spatial_filter:\n  min_keypoint_score: 1.5\n",
     r"spatial_filter\.min_keypoint_score = 1\.5: out of range, must be <= 1"),
    ("models:\n  device: tpu\n", r"models\.device = 'tpu': must be one of auto, cpu, cuda"),
    ("temporal_filter:\n  smoothing: 1\n", r"temporal_filter\.smoothing = 1: must be a boolean"),
    ("temporal_filter:\n  max_gap_s: .nan\n", r"temporal_filter\.max_gap_s = nan: must be a finite number"),
    ("spatial_filter:\n  rules: [hand_score, bone_lenght]\n",
     r"spatial_filter\.rules = \['hand_score', 'bone_lenght'\]: unknown entries bone_lenght"),
    ("spatial_filter:\n  rules: hand_score\n",
     r"spatial_filter\.rules = 'hand_score': must be a list of strings"),
    ("spatial_filter: 3\n", r"spatial_filter = 3: must be a mapping"),
    ("- a\n- b\n", r"top level must be a mapping"),
    ("spatial_filter:\n  min_hand_size_px: 50\n  max_hand_size_px: 10\n",
     r"min_hand_size_px = 50.0 is larger than spatial_filter\.max_hand_size_px = 10.0"),
    ("spatial_filter: [unclosed\n", r"cell\.yaml: not valid YAML"),
])
def test_malformed_config_names_file_key_and_value(tmp_path, text, expected):
    with pytest.raises(ConfigError, match=expected):
        load_config(write(tmp_path, text))


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"nothing\.yaml: cannot read config file"):
        load_config(tmp_path / "nothing.yaml")


def test_bad_ros_parameter_name():
    with pytest.raises(ConfigError, match=r"'max_hands' = 2 is not of the form section\.key"):
        config_from_ros_parameters({"max_hands": 2})
