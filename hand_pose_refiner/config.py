"""The one configuration schema of hand_pose_refiner, validated on load.

Every component (models, filters, tracking, activity, topics, QoS) reads its settings from
:class:`Config`. The same keys are the ROS parameters of the nodes, flattened with dots
(``spatial_filter.max_hands``), and ``config/assembly.yaml`` is a ROS 2 parameter file
(``/**: ros__parameters: ...``) that both ``ros2 launch`` and :func:`load_config` read. A plain
mapping without that wrapper is accepted as well.

Bad input is refused with a :class:`ConfigError` naming the file, the key and the value. The
sections' keys, defaults and bounds are defined in :mod:`hand_pose_refiner.config_sections`; this
module gathers them into :class:`Config`, makes them ROS parameters and reads files.
"""

from __future__ import annotations

import json
import math
import os
import typing
from collections.abc import Iterator, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, cast

from hand_pose_refiner.config_file import read_config_yaml
from hand_pose_refiner.config_moved_keys import MOVED_KEYS, with_moved_keys
from hand_pose_refiner.config_sections import (
    REFINEMENT_PATH_KEYS,
    SCHEDULE_KEYS,
    SPATIAL_RULES,
    ActivityConfig,
    MediaPipeConfig,
    MMLabConfig,
    ModelsConfig,
    QosConfig,
    RecurringObjectsConfig,
    RefinementConfig,
    SpatialFilterConfig,
    TemporalFilterConfig,
    TopicsConfig,
    TrackingConfig,
)
from hand_pose_refiner.errors import ConfigError, clip, shown
from hand_pose_refiner.resources import find_share_file

DEFAULT_CONFIG = "config/assembly.yaml"

__all__ = [
    "DEFAULT_CONFIG",
    "MOVED_KEYS",
    "REFINEMENT_PATH_KEYS",
    "SCHEDULE_KEYS",
    "SPATIAL_RULES",
    "ActivityConfig",
    "Config",
    "MMLabConfig",
    "MediaPipeConfig",
    "ModelsConfig",
    "ParameterSpec",
    "QosConfig",
    "RecurringObjectsConfig",
    "RefinementConfig",
    "SpatialFilterConfig",
    "TemporalFilterConfig",
    "TopicsConfig",
    "TrackingConfig",
    "commented_yaml",
    "config_from_mapping",
    "config_from_ros_parameters",
    "load_config",
    "node_parameter_specs",
    "parameter_specs",
    "with_paths_from",
    "with_section_values",
    "yaml_scalar",
]


@dataclass(frozen=True)
class Config:
    """All settings; one section per component."""

    models: ModelsConfig = field(default_factory=ModelsConfig)
    mediapipe: MediaPipeConfig = field(default_factory=MediaPipeConfig)
    mmlab: MMLabConfig = field(default_factory=MMLabConfig)
    spatial_filter: SpatialFilterConfig = field(default_factory=SpatialFilterConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    temporal_filter: TemporalFilterConfig = field(default_factory=TemporalFilterConfig)
    recurring_objects: RecurringObjectsConfig = field(default_factory=RecurringObjectsConfig)
    activity: ActivityConfig = field(default_factory=ActivityConfig)
    topics: TopicsConfig = field(default_factory=TopicsConfig)
    qos: QosConfig = field(default_factory=QosConfig)
    refinement: RefinementConfig = field(default_factory=RefinementConfig, metadata={"offline": True})

    def to_ros_parameters(self) -> dict[str, Any]:
        """Flat ``section.key -> value`` mapping: the nodes' ROS parameters (lists as lists)."""
        values = {spec.name: spec.value_in(self) for spec in parameter_specs()}
        return {name: list(v) if isinstance(v, tuple) else v for name, v in values.items()}


@dataclass(frozen=True)
class ParameterSpec:
    """One schema key as a ROS parameter: name, type, default, help and bounds."""

    section: str
    key: str
    type: Any
    default: Any
    help: str
    min: float | None
    max: float | None
    choices: tuple[str, ...] | None
    offline: bool = False  # a key of an offline-only section: not a node parameter

    @property
    def name(self) -> str:
        return f"{self.section}.{self.key}"

    def value_in(self, config: Config) -> Any:
        return getattr(getattr(config, self.section), self.key)

    def bounds_text(self) -> str:
        """Allowed choices and range in words (config show, docs/parameters.md); empty if none."""
        parts = []
        if self.choices:
            several = typing.get_origin(self.type) is tuple
            parts.append(("any of " if several else "one of ") + ", ".join(self.choices))
        if self.min is not None:
            parts.append(f">= {self.min:g}")
        if self.max is not None:
            parts.append(f"<= {self.max:g}")
        return "; ".join(parts)


def _section_fields() -> Iterator[tuple[str, type]]:
    hints = typing.get_type_hints(Config)
    for section in fields(Config):
        yield section.name, hints[section.name]


def _offline_sections() -> set[str]:
    return {section.name for section in fields(Config) if section.metadata.get("offline")}


def parameter_specs() -> list[ParameterSpec]:
    """Every key of the schema, in file order."""
    specs = []
    offline = _offline_sections()
    for section_name, section_type in _section_fields():
        hints = typing.get_type_hints(section_type)
        for item in fields(section_type):
            specs.append(ParameterSpec(
                section=section_name, key=item.name, type=hints[item.name],
                default=_default_of(item), help=item.metadata["help"],
                min=item.metadata["min"], max=item.metadata["max"], choices=item.metadata["choices"],
                offline=section_name in offline,
            ))
    return specs


def node_parameter_specs() -> list[ParameterSpec]:
    """The keys the live nodes declare as ROS parameters: all but the offline-only sections."""
    return [spec for spec in parameter_specs() if not spec.offline]


def _default_of(item: Field[Any]) -> Any:
    if item.default is not MISSING:
        return item.default
    if not callable(item.default_factory):
        raise TypeError(f"schema field {item.name} has no default")
    return item.default_factory()


_TYPE_NAMES = {bool: "a boolean (true/false)", int: "an integer", float: "a number", str: "a string"}


_LIST_NAMES = {int: "integers", float: "numbers", str: "strings"}


def _check_list(spec: ParameterSpec, value: Any, where: str) -> tuple[Any, ...]:
    """Strings: no entry twice, each one of the choices (if any); numbers: each in the bounds."""
    element = typing.get_args(spec.type)[0]
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{where}: must be a list of {_LIST_NAMES[element]}")
    if element is not str:
        return tuple(_check_scalar(spec, element, item, f"{where}: entry {shown(item)}") for item in value)
    if not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: must be a list of strings")
    if spec.choices is not None:
        unknown = [v for v in value if v not in spec.choices]
        if unknown:
            raise ConfigError(f"{where}: unknown entries {clip(', '.join(unknown))}; allowed: "
                              f"{', '.join(spec.choices)}")
    if len(set(value)) != len(value):
        raise ConfigError(f"{where}: lists an entry twice")
    return tuple(value)


def _check_value(spec: ParameterSpec, value: Any, source: str) -> Any:
    """The value converted to the spec's type, or a ConfigError naming source, key and value."""
    where = f"{source}: {spec.name} = {shown(value)}"
    if typing.get_origin(spec.type) is tuple:
        return _check_list(spec, value, where)
    return _check_scalar(spec, spec.type, value, where)


def _check_scalar(spec: ParameterSpec, expected: type, value: Any, where: str) -> Any:
    """One value (a key's, or a list entry's) of type ``expected`` within the spec's bounds."""
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = _int_as_float(value)
    if expected is int and isinstance(value, int) and not _INT64_MIN <= value <= _INT64_MAX:
        raise ConfigError(f"{where}: out of range of a 64-bit integer (a ROS 2 integer parameter)")
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise ConfigError(f"{where}: must be {_TYPE_NAMES[expected]}, not {type(value).__name__}")
    value = cast(Any, value)  # of type ``expected`` now, which mypy cannot follow through a variable
    if expected is float and not math.isfinite(value):
        raise ConfigError(f"{where}: must be a finite number")
    if spec.min is not None and value < spec.min:
        raise ConfigError(f"{where}: out of range, must be >= {spec.min}")
    if spec.max is not None and value > spec.max:
        raise ConfigError(f"{where}: out of range, must be <= {spec.max}")
    if spec.choices is not None and value not in spec.choices:
        raise ConfigError(f"{where}: must be one of {', '.join(spec.choices)}")
    return value


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _int_as_float(value: int) -> float:
    """An integer as a float; infinite beyond the float range (then refused as not finite)."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _check_cross_field(config: Config, source: str) -> None:
    """Rules that involve two keys at once."""
    spatial = config.spatial_filter
    if spatial.min_hand_size_px > spatial.max_hand_size_px:
        raise ConfigError(f"{source}: spatial_filter.min_hand_size_px = {spatial.min_hand_size_px} "
                          f"is larger than spatial_filter.max_hand_size_px = {spatial.max_hand_size_px}")
    if spatial.min_hand_size_fraction > spatial.max_hand_size_fraction:
        raise ConfigError(f"{source}: spatial_filter.min_hand_size_fraction = "
                          f"{spatial.min_hand_size_fraction} is larger than "
                          f"spatial_filter.max_hand_size_fraction = {spatial.max_hand_size_fraction}")
    _check_schedule(config.refinement, source)


def _check_schedule(refinement: RefinementConfig, source: str) -> None:
    """The refinement schedule's lists are its columns: one entry per round, the same count each."""
    lengths = {key: len(getattr(refinement, key)) for key in SCHEDULE_KEYS}
    if min(lengths.values()) == 0 or len(set(lengths.values())) > 1:
        counts = ", ".join(f"refinement.{key}: {count}" for key, count in lengths.items())
        raise ConfigError(f"{source}: the refinement schedule needs one entry per round in each of its "
                          f"lists, at least one, the same number in all ({counts})")


def config_from_mapping(data: Any, source: str = "<config>") -> Config:
    """Validate a nested mapping (YAML body, optionally in a ROS parameter-file wrapper)."""
    if data is None:
        data = {}
    data = _unwrap_ros_parameters(data, source)
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: the top level must be a mapping of sections, "
                          f"not {type(data).__name__}")
    data = with_moved_keys(data, source)
    specs: dict[str, dict[str, ParameterSpec]] = {spec.section: {} for spec in parameter_specs()}
    for spec in parameter_specs():
        specs[spec.section][spec.key] = spec
    sections: dict[str, Any] = {}
    for section_name, body in data.items():
        if section_name not in specs:
            raise ConfigError(f"{source}: unknown section {shown(section_name)}; "
                              f"known: {', '.join(specs)}")
        if body is None:
            body = {}
        if not isinstance(body, Mapping):
            raise ConfigError(f"{source}: {section_name} = {shown(body)}: must be a mapping of keys")
        values = {}
        for key, value in body.items():
            key_spec = specs[section_name].get(str(key))
            if key_spec is None:
                raise ConfigError(f"{source}: unknown key {section_name}.{clip(str(key))} = {shown(value)}; "
                                  f"known keys of {section_name}: {', '.join(specs[section_name])}")
            values[str(key)] = _check_value(key_spec, value, source)
        section_type = dict(_section_fields())[section_name]
        try:
            sections[section_name] = section_type(**values)
        except ConfigError as err:  # a rule between keys of the section (ActivityConfig.__post_init__)
            raise ConfigError(f"{source}: {err}") from err
    config = Config(**sections)
    _check_cross_field(config, source)
    return config


def with_section_values(config: Config, section: str, values: Mapping[str, Any], source: str) -> Config:
    """``config`` with some keys of one section replaced (command-line flags), validated as a file's."""
    specs = {spec.key: spec for spec in parameter_specs() if spec.section == section}
    checked = {}
    for key, value in values.items():
        if key not in specs:
            raise ConfigError(f"{source}: unknown key {section}.{clip(str(key))} = {shown(value)}")
        checked[key] = _check_value(specs[key], value, source)
    updated = replace(config, **{section: replace(getattr(config, section), **checked)})
    _check_cross_field(updated, source)
    return updated


def config_from_ros_parameters(parameters: Mapping[str, Any], source: str = "<ROS parameters>") -> Config:
    """Validate a flat ``section.key -> value`` mapping, as read back from ROS parameters."""
    nested: dict[str, dict[str, Any]] = {}
    for name, value in parameters.items():
        section, dot, key = name.partition(".")
        if not dot:
            raise ConfigError(f"{source}: parameter {shown(name)} = {shown(value)} is not of the form "
                              f"section.key")
        nested.setdefault(section, {})[key] = value
    return config_from_mapping(nested, source)


def _unwrap_ros_parameters(data: Any, source: str) -> Any:
    """The body of ``{node_name: {ros__parameters: body}}``, or ``data`` itself."""
    if not isinstance(data, Mapping) or len(data) != 1:
        return data
    (node_name, inner), = data.items()
    if isinstance(inner, Mapping) and "ros__parameters" in inner:
        extra = set(inner) - {"ros__parameters"}
        if extra:
            raise ConfigError(f"{source}: {clip(str(node_name))}: unknown keys next to ros__parameters: "
                              f"{clip(', '.join(sorted(map(str, extra))))}")
        return inner["ros__parameters"]
    return data


def load_config(path: str | Path | None = None) -> Config:
    """Read and validate a YAML config file (default: the packaged ``config/assembly.yaml``)."""
    path = Path(path) if path is not None else find_share_file(DEFAULT_CONFIG)
    data = read_config_yaml(path)
    return with_paths_from(config_from_mapping(data, str(path)), path.parent)


def with_paths_from(config: Config, folder: Path) -> Config:
    """``config`` with the refinement section's relative input paths resolved against ``folder``
    (the folder of the file that set them), so that a file works from any working directory.

    A resolved path is written relative to the working directory: the path the same input has
    when it is given on the command line there, so that both make the same refinement options.
    """
    section = config.refinement
    resolved: dict[str, Any] = {key: tuple(_resolve_path(value, folder) for value in getattr(section, key))
                                for key in REFINEMENT_PATH_KEYS}
    return replace(config, refinement=replace(section, **resolved))


def _resolve_path(value: str, folder: Path) -> str:
    return value if os.path.isabs(value) else os.path.relpath(os.path.join(folder, value))


def commented_yaml(config: Config, offline_sections: bool = True) -> str:
    """The config as a ROS 2 parameter file, every key preceded by its help line.

    ``config/assembly.yaml`` is exactly this text for the default config:
    ``hand-pose-refiner config show --defaults > config/assembly.yaml`` regenerates it. Without
    ``offline_sections`` it holds only the nodes' parameters. An offline key whose list is empty
    is written as a comment (its default): not every ROS 2 parameter-file parser accepts an empty
    list. Refinement input paths are written absolute, so that the text works in any folder.
    """
    lines = [
        "# hand_pose_refiner configuration: one schema for every node and offline tool.",
        "# A ROS 2 parameter file: `ros2 launch` passes it to every node (the /** key matches any node",
        "# name and namespace), and `hand-pose-refiner ... --config` reads the same keys.",
        "# Check a file with: hand-pose-refiner config check --config FILE",
        "",
        "/**:",
        "  ros__parameters:",
    ]
    section = None
    values = config.to_ros_parameters()
    for key in REFINEMENT_PATH_KEYS:
        values[f"refinement.{key}"] = [os.path.abspath(path) for path in values[f"refinement.{key}"]]
    for spec in parameter_specs():
        if spec.offline and not offline_sections:
            continue
        if spec.section != section:
            section = spec.section
            lines.append(f"    {section}:")
            if spec.offline:
                lines.append("      # offline only (refine): the nodes neither declare nor read it")
        bounds = spec.bounds_text()
        lines.append(f"      # {spec.help}" + (f" [{bounds}]" if bounds else ""))
        empty = spec.offline and values[spec.name] == []
        lines.append(f"      {'# ' if empty else ''}{spec.key}: {yaml_scalar(values[spec.name])}")
    return "\n".join(lines) + "\n"


def yaml_scalar(value: object) -> str:
    """``value`` as a YAML scalar or flow list that PyYAML reads back as the same value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a YAML double-quoted scalar, escapes included
    if isinstance(value, list):
        return "[" + ", ".join(yaml_scalar(v) for v in value) + "]"
    text = repr(value)
    if isinstance(value, float) and "e" in text and "." not in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent}"  # YAML 1.1 (PyYAML) reads 2e-05 as a string, 2.0e-05 as a number
    return text
