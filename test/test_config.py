import os
from dataclasses import replace

import pytest
import yaml

from hand_pose_refiner.config import (
    Config,
    RefinementConfig,
    commented_yaml,
    config_from_mapping,
    config_from_ros_parameters,
    load_config,
    node_parameter_specs,
    parameter_specs,
    with_section_values,
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
    text = path.read_text()
    body = yaml.safe_load(text)["/**"]["ros__parameters"]
    flat = {f"{section}.{key}" for section, keys in body.items() for key in keys}
    # the empty input lists of the offline refinement section are written as comments
    commented = {f"refinement.{key}" for key in ("targets", "checks", "anchors", "labelled",
                                                  "labelled_tip_first")}
    assert all(f"      # {name.split('.')[1]}: []\n" in text for name in commented)
    assert flat | commented == {spec.name for spec in parameter_specs()}, "every schema key is documented"
    assert "[]" not in text.replace("# targets: []", "").replace("# checks: []", "").replace(
        "# anchors: []", "").replace("# labelled: []", "").replace("# labelled_tip_first: []", ""), \
        "not every ROS 2 parameter-file parser accepts an empty list"
    assert commented_yaml(config) == path.read_text(), \
        "regenerate with `hand-pose-refiner config show --defaults > config/assembly.yaml`"


def test_glovebox_config_is_the_defaults_with_tiles_for_small_hands():
    """The main job's cell config overrides the tile keys: if the schema's defaults change, the cell
    follows them instead of holding a stale copy."""
    config = load_config(find_share_file("config/glovebox.yaml"))
    assert config.mediapipe.detector_tile_size == 0.5
    assert config == replace(Config(), mediapipe=replace(Config().mediapipe, detector_tile_size=0.5,
                                                         detector_tiles_per_frame=3))


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


def test_nodes_neither_declare_nor_receive_the_offline_refinement_section():
    node_keys = {spec.name for spec in node_parameter_specs()}
    assert node_keys and not any(name.startswith("refinement.") for name in node_keys)
    assert node_keys | {spec.name for spec in parameter_specs() if spec.offline} == {
        spec.name for spec in parameter_specs()}
    # a node's parameters make a config with the refinement defaults
    live = {name: value for name, value in Config().to_ros_parameters().items() if name in node_keys}
    assert config_from_ros_parameters(live) == Config()
    recipe = config_from_mapping({"refinement": {"targets": ["/data/a"], "iterations": 5}})
    node_file = yaml.safe_load(commented_yaml(recipe, offline_sections=False))["/**"]["ros__parameters"]
    assert set(node_file) == {spec.section for spec in node_parameter_specs()}
    assert "refinement" not in node_file


def test_refinement_section_round_trips_through_its_commented_yaml(tmp_path):
    recipe = config_from_mapping({"refinement": {
        "targets": ["/data/a", "/data/b"], "labelled": ["/data/l.json"], "stills": True, "iterations": 4,
        "learning_rate": 1e-5, "schedule_min_keypoints": [18, 16], "schedule_min_presence": [0.2, 0.3],
        "schedule_detection_score_threshold": [0.1, 0.2], "schedule_min_hand_score": [0.02, 0.05],
        "schedule_min_keypoint_score": [0.15, 0.25], "schedule_bone_ratio_tolerance": [1.3, 1.4],
        "schedule_max_backward_bend_deg": [35, 40]}})
    assert recipe.refinement.schedule()[1] == (0.2, 0.3, 0.05, 0.25, 16, 1.4, 40.0)
    assert "learning_rate: 1.0e-05" in commented_yaml(recipe)  # 1e-05 would be a string to YAML 1.1
    assert load_config(write(tmp_path, commented_yaml(recipe))) == recipe


def test_refinement_schedule_matches_the_loop_default():
    from hand_pose_refiner.refinement.recipe import refine_options
    from hand_pose_refiner.refinement.refine import DEFAULT_SCHEDULE

    assert refine_options(replace(RefinementConfig(), targets=("x",))).schedule == DEFAULT_SCHEDULE


def test_relative_refinement_paths_are_relative_to_the_file_from_any_working_directory(tmp_path,
                                                                                        monkeypatch):
    cell = tmp_path / "cell"
    (cell / "data").mkdir(parents=True)
    (cell / "data" / "clip.webm").write_bytes(b"")
    path = cell / "refine.yaml"
    path.write_text("refinement:\n  targets: [data/clip.webm, /abs/other.webm]\n  checks: [../up.webm]\n")
    for working_directory in (tmp_path, cell / "data"):
        monkeypatch.chdir(working_directory)
        recipe = load_config(path).refinement
        assert os.path.samefile(recipe.targets[0], cell / "data" / "clip.webm")
        assert recipe.targets[1] == "/abs/other.webm"
        assert os.path.abspath(recipe.checks[0]) == str(tmp_path / "up.webm")
    assert not os.path.isabs(recipe.targets[0])  # as a command line there would name it


@pytest.mark.parametrize(("text", "expected"), [
    ("refinement:\n  iterations: -1\n", r"refinement\.iterations = -1: out of range, must be >= 0"),
    ("refinement:\n  targets: data\n", r"refinement\.targets = 'data': must be a list of strings"),
    ("refinement:\n  targets: [a, a]\n", r"refinement\.targets = \['a', 'a'\]: lists an entry twice"),
    ("refinement:\n  schedule_min_keypoints: [18, 1]\n",
     r"schedule_min_keypoints = \[18, 1\]: entry 1: out of range, must be >= 2"),
    ("refinement:\n  schedule_min_presence: [0.2, x]\n", r"entry 'x': must be a number, not str"),
    ("refinement:\n  schedule_min_presence: [0.2]\n",
     r"one entry per round .*refinement\.schedule_min_presence: 1, refinement\.schedule_min_hand_score: 3"),
    ("refinement:\n  glove_probability: 2\n",
     r"refinement\.glove_probability = 2: out of range, must be <= 1"),
    ("refinement:\n  itterations: 2\n", r"unknown key refinement\.itterations"),
])
def test_malformed_refinement_section_names_file_key_and_value(tmp_path, text, expected):
    with pytest.raises(ConfigError, match=expected):
        load_config(write(tmp_path, text))


def test_command_line_values_are_validated_as_a_files():
    config = with_section_values(Config(), "refinement", {"iterations": 4}, "the command line")
    assert config.refinement.iterations == 4 and config.models == Config().models
    with pytest.raises(ConfigError, match=r"the command line: refinement\.epochs = 0: out of range"):
        with_section_values(Config(), "refinement", {"epochs": 0}, "the command line")
