"""Hostile config files: each is refused with one ConfigError line naming the file, never a traceback,
and never after spending the time or memory it asks for."""

from __future__ import annotations

import contextlib
import string

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hand_pose_refiner.cli import main
from hand_pose_refiner.config import Config, config_from_mapping, load_config, parameter_specs
from hand_pose_refiner.config_file import MAX_CONFIG_BYTES
from hand_pose_refiner.errors import MAX_SHOWN, ConfigError
from hand_pose_refiner.resources import find_share_file

SHIPPED = find_share_file("config/assembly.yaml").read_text()


def write(tmp_path, content: str | bytes, name: str = "cell.yaml"):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def shipped_with(old: str, new: str) -> str:
    """The shipped config with one line changed."""
    assert SHIPPED.count(old) == 1
    return SHIPPED.replace(old, new)


def alias_bomb() -> str:
    """Nine levels of nine aliases: under 400 bytes that expand to 9**9 strings."""
    levels = ['&a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for previous, current in zip("abcdefgh", "bcdefghi", strict=True):
        levels.append(f"&{current} [" + ",".join([f"*{previous}"] * 9) + "]")
    return "models:\n  detector_checkpoint: [\n    " + ",\n    ".join(levels) + "]\n"


def test_binary_file_is_refused_naming_the_byte_and_its_offset(tmp_path):
    path = write(tmp_path, SHIPPED.encode()[:100] + b"\x8e\xff\x00binary")
    with pytest.raises(ConfigError, match=r"cell\.yaml: not UTF-8 text: byte 0x8e at offset 100"):
        load_config(path)


def test_latin1_file_is_refused_naming_the_byte_and_its_offset(tmp_path):
    path = write(tmp_path, shipped_with('image: "image_raw"', 'image: "caméra"').encode("latin-1"))
    offset = path.read_bytes().index(b"\xe9")
    with pytest.raises(ConfigError, match=rf"not UTF-8 text: byte 0xe9 at offset {offset} "):
        load_config(path)


@pytest.mark.parametrize("number", ["1e400", "1.0e+400", "-1e400", "1" + "0" * 400])
def test_a_number_beyond_the_float_range_is_not_finite(tmp_path, number):
    path = write(tmp_path, shipped_with("max_hand_size_px: 2000.0", f"max_hand_size_px: {number}"))
    with pytest.raises(ConfigError, match=r"spatial_filter\.max_hand_size_px = .*must be a finite number"):
        load_config(path)


def test_an_integer_beyond_64_bits_is_refused(tmp_path):
    path = write(tmp_path, shipped_with("min_keypoints: 12", f"min_keypoints: {2**64}"))
    with pytest.raises(ConfigError, match=r"min_keypoints = 18446744073709551616: out of range of a 64-bit"):
        load_config(path)


@pytest.mark.parametrize("nesting", [" " + "[" * 20000 + "]" * 20000, "\n    " + "- " * 20000 + "x",
                                     " " + "[" * 40 + "]" * 40])
def test_deep_nesting_is_refused(tmp_path, nesting):
    path = write(tmp_path, f"models:\n  batch_size:{nesting}\n")
    with pytest.raises(ConfigError, match=r"cell\.yaml: .*(nesting depth|nested deeper than 32 levels)"):
        load_config(path)


def test_an_alias_bomb_is_refused_before_anything_is_expanded(tmp_path):
    path = write(tmp_path, alias_bomb())
    assert path.stat().st_size < 400
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert str(refused.value) == (f"{path}: line 3: uses YAML anchors or aliases (&/*), which config "
                                  f"files do not allow")


def test_even_a_harmless_alias_is_refused(tmp_path):
    path = write(tmp_path, "models:\n  device: &d cpu\ntopics:\n  image: *d\n")
    with pytest.raises(ConfigError, match="line 2: uses YAML anchors or aliases"):
        load_config(path)


def test_a_file_over_one_megabyte_is_refused_unread(tmp_path):
    path = write(tmp_path, SHIPPED + "#" * (30 * MAX_CONFIG_BYTES))
    with pytest.raises(ConfigError, match=r"cell\.yaml: larger than 1 MB \(1048576 bytes\)"):
        load_config(path)
    just_fits = SHIPPED + "#" * (MAX_CONFIG_BYTES - len(SHIPPED.encode()) - 1) + "\n"
    assert load_config(write(tmp_path, just_fits, "fits.yaml")) == Config()


@pytest.mark.parametrize(("written", "read"), [("1e-3", 0.001), ("1E5", 1e5), ("+1e3", 1000.0),
                                               ("2.5e-1", 0.25), ("1.0e+2", 100.0), ("1_000.5", 1000.5)])
def test_numbers_with_an_exponent_are_numbers_as_in_yaml_1_2(tmp_path, written, read):
    path = write(tmp_path, shipped_with("max_keypoint_speed: 10.0", f"max_keypoint_speed: {written}"))
    assert load_config(path).temporal_filter.max_keypoint_speed == read


def test_integers_stay_integers_and_dates_stay_strings(tmp_path):
    text = shipped_with('image: "image_raw"', "image: 2024-01-31").replace("\n      batch_size: 8\n",
                                                                          "\n      batch_size: 16\n")
    config = load_config(write(tmp_path, text))
    assert config.models.batch_size == 16 and config.topics.image == "2024-01-31"


@pytest.mark.parametrize("tagged", ["!!int abc", '!!float ""', "!!bool maybe", "!!timestamp x",
                                    '!!binary "é"', "!!python/object:os.system x", "1" * 5000])
def test_a_value_that_cannot_be_built_is_refused(tmp_path, tagged):
    path = write(tmp_path, f"models:\n  device: {tagged}\n")
    with pytest.raises(ConfigError, match=r"cell\.yaml: (a value cannot be read|not valid YAML)"):
        load_config(path)


def test_a_huge_value_is_shown_cut_short(tmp_path):
    path = write(tmp_path, shipped_with('image: "image_raw"', f"image: [{', '.join(['x' * 50] * 5000)}]"))
    refusal = r"topics\.image = \['x.*\.\.\.: must be a string, not list"
    with pytest.raises(ConfigError, match=refusal) as refused:
        load_config(path)
    assert len(str(refused.value)) < len(str(path)) + MAX_SHOWN + 60


@pytest.mark.parametrize("command", [["config", "check"], ["doctor"]])
@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\n\x00\x00", alias_bomb().encode(),
                                     b"models: " + b"[" * 20000, b"a: " + b"x" * (2 * MAX_CONFIG_BYTES)])
def test_the_command_line_reports_one_line_and_exit_code_2(tmp_path, capsys, command, content):
    path = write(tmp_path, content)
    assert main([*command, "--config", str(path)]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 1 and errors[0].startswith(f"hand-pose-refiner: error: {path}: ")


# Random input: whatever the bytes, load_config returns a Config or raises ConfigError, quickly.
FUZZ = settings(max_examples=100, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
YAML_PIECES = ["models:", "spatial_filter:", "topics:", "/**:", "ros__parameters:", "  ", "    ", "\n",
               "\t", "- ", ": ", "[", "]", "{", "}", ",", "&a ", "*a", "!!int ", "!!float ", "!!bool ",
               "!!timestamp ", "!!binary ", "!!set ", "? ", "|", ">", "#", "'", '"', "---", "...",
               "%YAML 1.1", "1e400", "1e-3", "-.inf", ".nan", "0x1F", "2024-13-45", "batch_size",
               "min_hand_score", "rules", "device", "image", "\\u0000", "\x00", "\ufeff", "é", "~", "null"]
yaml_like = st.lists(st.one_of(st.sampled_from(YAML_PIECES), st.text(string.printable, max_size=5)),
                     max_size=60).map("".join)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
                    st.integers(min_value=-(10**30), max_value=10**30))
nested = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=20)
SECTIONS = sorted({spec.section for spec in parameter_specs()})
KEYS = sorted({spec.key for spec in parameter_specs()})
schema_shaped = st.dictionaries(st.sampled_from([*SECTIONS, "nonsense"]),
                                st.dictionaries(st.sampled_from([*KEYS, "nonsense"]), nested, max_size=4),
                                max_size=4)


def loads_or_refuses(path) -> None:
    try:
        assert isinstance(load_config(path), Config)
    except ConfigError as refused:
        assert str(refused).startswith(f"{path}: ")


@FUZZ
@given(content=st.binary(max_size=400))
def test_random_bytes_load_or_are_refused(tmp_path, content):
    loads_or_refuses(write(tmp_path, content))


@FUZZ
@given(text=yaml_like)
def test_random_yaml_like_text_loads_or_is_refused(tmp_path, text):
    loads_or_refuses(write(tmp_path, text.encode()))


@FUZZ
@given(body=st.one_of(nested, schema_shaped), wrapped=st.booleans())
def test_random_structures_load_or_are_refused(tmp_path, body, wrapped):
    data = {"/**": {"ros__parameters": body}} if wrapped else body
    loads_or_refuses(write(tmp_path, yaml.safe_dump(data, allow_unicode=True)))
    with contextlib.suppress(ConfigError):  # the same mapping straight, as the ROS nodes validate theirs
        config_from_mapping(data, "<fuzz>")
