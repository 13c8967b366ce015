"""The documentation stays true to the code: the parameters page matches the schema, every bench
script the docs name exists and is indexed, every relative link resolves, and the front page is a door."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hand_pose_refiner.config import parameter_specs

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
GENERATOR = REPO / "scripts" / "gen_parameters_doc.py"
ROOT_PAGES = (REPO / "README.md",)

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
BENCH_SCRIPT = re.compile(r"bench/[a-z0-9_]+\.py")  # placeholders are written in capitals: bench/NAME.py
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def _generator() -> object:
    spec = importlib.util.spec_from_file_location("gen_parameters_doc", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _markdown_pages() -> list[Path]:
    return [REPO / "README.md", *sorted(DOCS.rglob("*.md"))]


def _base_dir(page: Path) -> Path:
    return REPO if page in ROOT_PAGES else page.parent


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return {_slug(match) for match in re.findall(r"^#+\s+(.*)$", text, re.MULTILINE)}


def test_parameters_page_is_generated_from_the_schema() -> None:
    page = (DOCS / "parameters.md").read_text(encoding="utf-8")
    assert page == _generator().render(parameter_specs()), (
        "docs/parameters.md is out of date: run .venv/bin/python scripts/gen_parameters_doc.py")


def test_parameters_page_has_one_row_per_key_with_its_bounds() -> None:
    page, _, old_names = (DOCS / "parameters.md").read_text(encoding="utf-8").partition("## Old names")
    rows = {line.split("|")[1].strip().strip("`"): line for line in page.splitlines()
            if line.startswith("| `")}
    assert set(rows) == {spec.name for spec in parameter_specs()}
    assert "| `models.self_check` | `mediapipe.self_check` |" in old_names
    assert ">= 1" in rows["spatial_filter.max_hands"]
    assert "one of mediapipe, default, mmlab" in rows["models.backend"]


def test_generator_check_fails_on_a_stale_page(tmp_path: Path) -> None:
    page = tmp_path / "parameters.md"
    command = [sys.executable, str(GENERATOR), "--out", str(page)]
    subprocess.run(command, check=True, capture_output=True)
    assert subprocess.run([*command, "--check"], capture_output=True).returncode == 0
    page.write_text(page.read_text(encoding="utf-8").replace("`models.backend`", "`models.engine`"),
                    encoding="utf-8")
    stale = subprocess.run([*command, "--check"], capture_output=True, text=True)
    assert stale.returncode == 1
    assert "gen_parameters_doc.py" in stale.stderr


def test_every_bench_script_named_in_docs_exists() -> None:
    named = {name for page in _markdown_pages()
             for name in BENCH_SCRIPT.findall(page.read_text(encoding="utf-8"))}
    assert named, "the docs name no bench script"
    missing = sorted(name for name in named if not (REPO / name).is_file())
    assert not missing, f"docs name bench scripts that do not exist: {missing}"


def test_every_bench_script_is_indexed() -> None:
    index = (DOCS / "results" / "benchmarks.md").read_text(encoding="utf-8")
    # bench/_*.py are modules the scripts import, not scripts
    scripts = sorted(path.name for path in (REPO / "bench").glob("[!_]*.py"))
    unlisted = [name for name in scripts if f"bench/{name}" not in index]
    assert not unlisted, f"docs/results/benchmarks.md does not list {unlisted}"


@pytest.mark.parametrize("page", _markdown_pages(), ids=lambda page: str(page.relative_to(REPO)))
def test_relative_links_resolve(page: Path) -> None:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    broken = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+:", target):
            continue
        path_part, _, anchor = target.partition("#")
        resolved = (_base_dir(page) / path_part) if path_part else page
        anchor_missing = bool(anchor) and resolved.suffix == ".md" and anchor not in _anchors(resolved)
        if not resolved.exists() or anchor_missing:
            broken.append(target)
    assert not broken, f"{page.relative_to(REPO)}: links that do not resolve: {broken}"


def test_front_page_is_a_door() -> None:
    front = REPO / "README.md"
    lines = front.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200, f"{front.name} has {len(lines)} lines; move detail into docs/"


def test_the_two_commands_are_short_and_name_the_recipe_file() -> None:
    """The README's first code block: the main job and the tests, each one short line."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = FENCE.search(text).group(0).splitlines()[1:-1]
    commands = [line for line in block if line and not line.startswith("#")]
    assert commands == [line for line in commands if len(line) <= 120], commands
    assert len(commands) == 2 and commands[1] == "bash scripts/test.sh"
    recipe = re.search(r"--config (\S+)", commands[0]).group(1)
    assert (REPO / recipe).is_file()
