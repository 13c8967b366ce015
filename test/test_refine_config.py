"""refine --config FILE: the recipe as a file, equal to the same recipe given as flags."""

from __future__ import annotations

import os
import shlex
from dataclasses import replace
from pathlib import Path

import pytest
from support import REPO

from hand_pose_refiner.cli import build_parser, main
from hand_pose_refiner.config import Config, RefinementConfig, load_config
from hand_pose_refiner.errors import ConfigError
from hand_pose_refiner.refinement.cli import recipe_config
from hand_pose_refiner.refinement.input_spec import InputSpec
from hand_pose_refiner.refinement.recipe import refine_options
from hand_pose_refiner.refinement.refine import LabelledSet, RefineSettings

DATA = "../shared/data"
# The main job as the 719-character command of before (run from the repository root).
FLAG_COMMAND = (
    f"refine {DATA}/hags_gloved_assembly/side_view/gloved {DATA}/hags_gloved_assembly/top_view/gloved "
    f"--stills --check {DATA}/bare_hand_clips/hands1.webm --check {DATA}/bare_hand_clips/hands4.webm "
    f"--anchor {DATA}/bare_hand_clips/hands2.webm --anchor {DATA}/bare_hand_clips/hands3.webm "
    f"--anchor {DATA}/bare_hand_clips/hands5.webm --anchor {DATA}/bare_hand_clips/hands8.webm "
    f"--labelled {DATA}/labelled_hands/onehand10k/test_onehand10k.json "
    f"--labelled-tip-first {DATA}/labelled_hands/rhd/test_rhd.json --search-rounds 1 --iterations 2 "
    f"--config config/glovebox.yaml --threads 2 --out runs/gloved")
FILE_COMMAND = "refine --config config/refine_glovebox.yaml --out runs/gloved"


def recipe_of(command: str) -> tuple[Config, RefineSettings]:
    config = recipe_config(build_parser().parse_args(shlex.split(command)))
    return config, refine_options(config.refinement)


def options_the_flags_made_before() -> RefineSettings:
    """What the flag command built before the recipe was a config section: every input with the
    command line's reading settings, and the command line's defaults for every other option."""

    def specs(*paths: str) -> tuple[InputSpec, ...]:  # --stills: here, image folders only
        return tuple(InputSpec(Path(p), None, 10.0, Path(p).is_dir(), 1, None) for p in paths)

    clips = f"{DATA}/bare_hand_clips"
    return RefineSettings(
        targets=specs(*(f"{DATA}/hags_gloved_assembly/{view}/gloved" for view in ("side_view", "top_view"))),
        checks=specs(f"{clips}/hands1.webm", f"{clips}/hands4.webm"),
        anchors=specs(*(f"{clips}/hands{n}.webm" for n in (2, 3, 5, 8))), anchor_ratio=3.0,
        labelled=(LabelledSet(Path(f"{DATA}/labelled_hands/onehand10k/test_onehand10k.json")),
                  LabelledSet(Path(f"{DATA}/labelled_hands/rhd/test_rhd.json"), tip_first=True)),
        iterations=2, epochs=2, batch_size=8, samples_per_image=4, learning_rate=2e-5, detector_epochs=12,
        detector_learning_rate=3e-4, glove_probability=0.5, max_train_images_per_input=60, patience=1,
        seed=0, search_rounds=1)


@pytest.fixture
def in_repo(monkeypatch, shared_data):
    monkeypatch.chdir(REPO)


def test_the_main_job_file_builds_the_options_and_config_of_the_flag_command(in_repo):
    from_flags, from_file = recipe_of(FLAG_COMMAND), recipe_of(FILE_COMMAND)
    assert from_file[0] == from_flags[0]
    assert from_file[1] == from_flags[1] == options_the_flags_made_before()
    # so a run folder made by the flag command resumes with the file (its state stores the identity)
    assert from_file[1].identity() == options_the_flags_made_before().identity()
    targets = from_file[1].targets
    assert len(targets) == 2 and all(spec.stills and spec.path.is_dir() for spec in targets)
    assert from_file[0].refinement.threads == 2 and from_file[0].refinement.search_rounds == 1
    # the cell's settings are config/glovebox.yaml's
    cell = load_config(REPO / "config" / "glovebox.yaml")
    assert replace(from_file[0], refinement=RefinementConfig()) == cell


def test_the_main_job_file_names_the_same_data_from_any_working_directory(in_repo, tmp_path, monkeypatch):
    here = load_config(REPO / "config" / "refine_glovebox.yaml").refinement
    monkeypatch.chdir(tmp_path)
    elsewhere = load_config(REPO / "config" / "refine_glovebox.yaml").refinement
    for key in ("targets", "checks", "anchors", "labelled", "labelled_tip_first"):
        ours, theirs = getattr(here, key), getattr(elsewhere, key)
        assert ours and len(ours) == len(theirs)
        assert all(os.path.samefile(REPO / a, b) for a, b in zip(ours, theirs, strict=True))
    assert main(["config", "check", "--config", str(REPO / "config" / "refine_glovebox.yaml")]) == 0


def test_flags_replace_the_keys_of_the_file(in_repo):
    config, options = recipe_of(f"{FILE_COMMAND} {DATA}/bare_hand_clips/hands1.webm --check "
                                f"{DATA}/bare_hand_clips/hands4.webm --iterations 5 --epochs 3 --threads 1 "
                                "--max-frames 4")
    recipe = config.refinement
    assert recipe.targets == (f"{DATA}/bare_hand_clips/hands1.webm",)
    assert recipe.checks == (f"{DATA}/bare_hand_clips/hands4.webm",)
    assert len(recipe.anchors) == 4 and recipe.search_rounds == 1  # kept from the file
    assert (recipe.iterations, recipe.epochs, recipe.threads) == (5, 3, 1)
    assert options.iterations == 5 and options.epochs == 3
    assert all(spec.max_frames == 4 for spec in options.targets + options.checks + options.anchors)
    # --stills: every target, whatever its kind; check and anchor videos stay videos
    assert options.targets[0].stills and not any(spec.stills for spec in options.checks + options.anchors)
    assert recipe_of(FILE_COMMAND)[1].targets[0].max_frames is None  # 0 in the file: all frames


def test_flags_are_validated_by_the_schema_and_targets_are_required(in_repo, capsys, tmp_path):
    with pytest.raises(ConfigError, match=r"command line: refinement\.iterations = -1: out of range"):
        recipe_of(f"{FILE_COMMAND} --iterations -1")
    assert main(["refine", "--out", str(tmp_path / "run")]) == 2
    assert "no target recordings" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_the_main_jobs_rounds_build_models_with_its_backend_section(tmp_path):
    """The recipe's mediapipe section (tiles, their live rotation, the self check) reaches every
    round's models, as the models section does."""
    from hand_pose_refiner.refinement.round_models import RoundModels

    config = load_config(REPO / "config" / "refine_glovebox.yaml")
    on_cpu = replace(config, models=replace(config.models, device="cpu"))
    detector, estimator = RoundModels(tmp_path, on_cpu).build(0)
    assert (detector.tile_size, detector.tiles_per_frame) == (0.5, 3)
    assert estimator.self_check and estimator.surest_crop
