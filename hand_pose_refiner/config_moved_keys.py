"""Keys that moved to another section of the configuration schema, and reading them by their old name.

A file, a flat parameter mapping or a node's parameter file that still uses an old name is read
as the new one, with a warning, so that a cell's files keep working after a key moves.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from typing import Any

from hand_pose_refiner.errors import ConfigError

_log = logging.getLogger("hand_pose_refiner.config")

# The keys only one backend reads, which left the models section for that backend's section. A key
# a backend section gains later never had a models.* name and is not listed.
_MOVED_TO: dict[str, tuple[str, ...]] = {
    "mediapipe": ("self_check", "self_check_max_shift", "detector_tile_size", "detector_tiles_per_frame",
                  "detector_tile_period", "surest_crop"),
    "mmlab": ("detector_config", "pose_config"),
}

# old name -> name now
MOVED_KEYS: dict[str, str] = {f"models.{key}": f"{section}.{key}"
                              for section, keys in _MOVED_TO.items() for key in keys}


def moved_keys_in(names: Collection[str], source: str) -> list[tuple[str, str]]:
    """The ``(old, new)`` pairs of :data:`MOVED_KEYS` whose old name is among ``names`` (flat
    ``section.key``); both names at once is a :class:`ConfigError`, as the input would say two
    things."""
    moved = []
    for old_name, new_name in MOVED_KEYS.items():
        if old_name not in names:
            continue
        if new_name in names:
            raise ConfigError(f"{source}: {old_name} and {new_name} are both set; {old_name} is the old "
                              f"name of {new_name}: keep only {new_name}")
        moved.append((old_name, new_name))
    return moved


def with_moved_keys(data: Mapping[str, Any], source: str) -> Mapping[str, Any]:
    """``data`` (sections of keys) with each key of :data:`MOVED_KEYS` under its new name, each
    logged as a warning (:func:`moved_keys_in`). A section that is not a mapping is left as it is,
    for the schema to refuse."""
    sections = {name: body for name, body in data.items() if body is None or isinstance(body, Mapping)}
    names = {f"{section}.{key}" for section, body in sections.items() for key in body or {}}
    moves = [(old, new) for old, new in moved_keys_in(names, source)
             if new.split(".")[0] in sections or new.split(".")[0] not in data]
    if not moves:
        return data
    result = {name: dict(body) if isinstance(body, Mapping) else body for name, body in data.items()}
    for old_name, new_name in moves:
        old_section, old_key = old_name.split(".")
        new_section, new_key = new_name.split(".")
        if result.get(new_section) is None:
            result[new_section] = {}
        result[new_section][new_key] = result[old_section].pop(old_key)
        _log.warning("%s: %s is now %s; read as that (rename it in the file)", source, old_name, new_name)
    return result
