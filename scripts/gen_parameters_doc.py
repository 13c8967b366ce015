"""Write docs/parameters.md: one table row per key of the configuration schema.

The table is generated from ``hand_pose_refiner.config.parameter_specs()`` (section, key, type,
default, bounds, help), so it cannot say anything the schema does not. test/test_docs.py fails when
the file and the schema differ; after a schema change regenerate it with

    .venv/bin/python scripts/gen_parameters_doc.py

``--check`` only compares and exits 1 when the file is out of date.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import typing
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # document the checkout's schema, not an installed copy

from hand_pose_refiner.config import MOVED_KEYS, ParameterSpec, parameter_specs, yaml_scalar  # noqa: E402

OUTPUT = REPO / "docs" / "parameters.md"
COMMAND = ".venv/bin/python scripts/gen_parameters_doc.py"

HEADER = f"""# Parameters

Every key of the one configuration schema (`hand_pose_refiner/config_sections.py`), as the ROS parameter
`section.key` of every node and as the key of a config file (`config/assembly.yaml` holds the
defaults). A value outside its bounds is refused on load, naming the file, the key and the value.
`hand-pose-refiner config show` prints the effective values of a file; `config check --config FILE`
validates one.

Generated from the schema by `{COMMAND}`; do not edit by hand.
"""

_TYPE_NAMES = {bool: "bool", int: "int", float: "float", str: "string"}


def type_name(spec: ParameterSpec) -> str:
    """The key's type as a config file writes it."""
    if typing.get_origin(spec.type) is tuple:
        item = typing.get_args(spec.type)[0]
        return f"list of {_TYPE_NAMES[item]}s" if item in _TYPE_NAMES else "list"
    return _TYPE_NAMES.get(spec.type, str(spec.type))


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def render(specs: list[ParameterSpec]) -> str:
    """The whole Markdown page: the header, then one table per section in schema order."""
    lines = [HEADER]
    for section, section_specs in itertools.groupby(specs, key=lambda spec: spec.section):
        lines += [f"## `{section}`", "", "| key | type | default | bounds | what it is for |",
                  "|---|---|---|---|---|"]
        for spec in section_specs:
            default = spec.default
            row = (f"`{spec.name}`", type_name(spec),
                   f"`{yaml_scalar(list(default) if isinstance(default, tuple) else default)}`",
                   spec.bounds_text(), spec.help)
            lines.append("| " + " | ".join(_cell(text) for text in row) + " |")
        lines.append("")
    lines += ["## Old names", "",
              "Keys that moved into their backend's own section. A file, a parameter file or `-p` that",
              "still uses the old name is read as the new one, with a warning; both names at once are",
              "refused.", "", "| old name | new name |", "|---|---|"]
    lines += [f"| `{old}` | `{new}` |" for old, new in MOVED_KEYS.items()]
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is out of date")
    parser.add_argument("--out", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    text = render(parameter_specs())
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is out of date: run {COMMAND}", file=sys.stderr)
            return 1
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out} ({len(parameter_specs())} keys)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
