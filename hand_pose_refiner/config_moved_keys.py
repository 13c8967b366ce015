"""Keys that moved to another section of the configuration schema, and reading them by their old name.

A file, a flat parameter mapping or a node's parameter file that still uses an old name is read
as the new one, with a warning, so that a cell's files keep working after a key moves.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from hand_pose_refiner.config_sections import MediaPipeConfig, MMLabConfig
from hand_pose_refiner.errors import ConfigError

_log = logging.getLogger("hand_pose_refiner.config")

# old name -> name now: the keys only one backend reads left the models section for that backend's
MOVED_KEYS: dict[str, str] = {
    **{f"models.{item.name}": f"mediapipe.{item.name}" for item in fields(MediaPipeConfig)},
    **{f"models.{item.name}": f"mmlab.{item.name}" for item in fields(MMLabConfig)},
}


def with_moved_keys(data: Mapping[str, Any], source: str) -> Mapping[str, Any]:
    """``data`` (sections of keys) with each key of :data:`MOVED_KEYS` under its new name.

    An old name is read as the new one and logged as a warning; both names at once is a
    :class:`ConfigError`, as the file would say two things.
    """
    removed: list[tuple[str, str]] = []
    added: list[tuple[str, str, Any]] = []
    for old_name, new_name in MOVED_KEYS.items():
        old_section, old_key = old_name.split(".")
        body = data.get(old_section)
        if not isinstance(body, Mapping) or old_key not in body:
            continue
        new_section, new_key = new_name.split(".")
        new_body = data.get(new_section)
        if new_body is not None and not isinstance(new_body, Mapping):
            continue  # refused below: a section must be a mapping
        if new_body is not None and new_key in new_body:
            raise ConfigError(f"{source}: {old_name} and {new_name} are both set; {old_name} is the old "
                              f"name of {new_name}: keep only {new_name}")
        removed.append((old_section, old_key))
        added.append((new_section, new_key, body[old_key]))
        _log.warning("%s: %s is now %s; read as that (rename it in the file)", source, old_name, new_name)
    if not removed:
        return data
    result = {name: dict(body) if isinstance(body, Mapping) else body for name, body in data.items()}
    for section, key in removed:
        result[section].pop(key)
    for section, key, value in added:
        if result.get(section) is None:
            result[section] = {}
        result[section][key] = value
    return result
