"""Reading a config file's YAML body, safe against hostile files.

A config is a few sections of scalar keys and short lists, so anything else is refused with a
:class:`ConfigError` naming the file before it can cost time or memory: files over
:data:`MAX_CONFIG_BYTES`, text that is not UTF-8, YAML anchors and aliases (a few hundred bytes
of aliases expand to gigabytes), and nesting deeper than :data:`MAX_DEPTH`. Numbers are read as
YAML 1.2 and ROS 2 parameter files read them (``1e-3`` is a number; YAML 1.1 wants a dot), and
dates stay strings, as in YAML 1.2.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from hand_pose_refiner.errors import ConfigError, clip

MAX_CONFIG_BYTES = 1 << 20
MAX_DEPTH = 32

# libyaml's parser when the installed PyYAML has it (a 1 MB file in about a second, nesting
# limited in C); the pure-Python one otherwise.
_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# What a construction may raise on a malformed scalar under an explicit tag (``!!int abc``,
# ``!!float ""``, ``!!bool maybe``) or an integer longer than Python parses.
_SCALAR_ERRORS = (ValueError, TypeError, AttributeError, KeyError, IndexError, OverflowError)

_YAML12_FLOAT = re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$")
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


class ConfigLoader(_BaseLoader):
    """SafeLoader that reads ``1e-3``, ``1E5`` and ``+1e3`` as numbers and dates as strings."""


ConfigLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
ConfigLoader.add_implicit_resolver("tag:yaml.org,2002:float", _YAML12_FLOAT, list("-+0123456789."))


def read_config_yaml(path: Path) -> Any:
    """The YAML body of the config file ``path`` (None when empty), or a ConfigError naming it."""
    text = _config_text(path)
    _check_structure(text, path)
    try:
        return yaml.load(text, Loader=ConfigLoader)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(err)}") from err
    except _SCALAR_ERRORS as err:
        raise ConfigError(f"{path}: a value cannot be read as its YAML type: {clip(str(err))}") from err
    except RecursionError as err:
        raise ConfigError(f"{path}: nested too deeply to read") from err


def _config_text(path: Path) -> str:
    """The file's text: at most MAX_CONFIG_BYTES, UTF-8."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as err:
        raise ConfigError(f"{path}: cannot read config file: {err.strerror}") from err
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than 1 MB ({MAX_CONFIG_BYTES} bytes), the most a config "
                          f"file may hold")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text: byte 0x{data[err.start]:02x} at offset {err.start} "
                          f"({err.reason}); config files are UTF-8 YAML") from err


def _check_structure(text: str, path: Path) -> None:
    """Refuse anchors, aliases and deep nesting from the event stream, before anything is built."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=_BaseLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
                raise ConfigError(f"{path}: line {event.start_mark.line + 1}: uses YAML anchors or "
                                  f"aliases (&/*), which config files do not allow")
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise ConfigError(f"{path}: line {event.start_mark.line + 1}: nested deeper than "
                                      f"{MAX_DEPTH} levels")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(err)}") from err


def _yaml_problem(err: yaml.YAMLError) -> str:
    """A parser error in one line: where, and what is wrong."""
    if not isinstance(err, yaml.MarkedYAMLError) or err.problem is None:
        return clip(" ".join(str(err).split()))
    where = err.problem_mark or err.context_mark
    at = f"line {where.line + 1}, column {where.column + 1}: " if where is not None else ""
    context = f" ({err.context})" if err.context else ""
    return f"{at}{err.problem}{context}"
