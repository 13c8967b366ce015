"""The report of a refinement run: report.json, report.html, metric plots, overlay grids and
close-ups of every accepted hand.

Numbers alone cannot tell a real hand from a wooden block that the filters let through, so the
report puts the same frames side by side, drawn with the initial models' hands and with the
best round's, for a person to check. A hand a few pixels wide cannot be judged at frame scale,
so every hand of each round's pseudo-labels and of the kept round's evaluation is also shown as
a zoomed crop with its skeleton (``report_crops/<section>/``, JPEG), captioned with its frame and
scores. Everything is derived from ``state.json`` and the replay folders, so the report can be
rebuilt at any time.

This module puts the report together (:func:`write_report`); its parts: what it says
(:mod:`.report_data`), the plots and grids (:mod:`.report_figures`), the close-ups
(:mod:`.report_crops`) and the page (:mod:`.report_html`).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from hand_pose_refiner.atomic import atomic_write_json, atomic_write_text
from hand_pose_refiner.refinement.report_crops import crop_sections
from hand_pose_refiner.refinement.report_data import input_roles, iteration_rows
from hand_pose_refiner.refinement.report_figures import overlay_grids, plot_metrics, plot_rejections
from hand_pose_refiner.refinement.report_html import render_html
from hand_pose_refiner.refinement.run_state import read_state


def write_report(run_dir: Path, grid_frames: int | None = 16) -> Path:
    """Write report.json, report.html and the PNGs into ``run_dir``; returns the HTML path."""
    state = read_state(run_dir, any_format=True)
    rows = iteration_rows(state)
    best = state.best_iteration
    if best is None:
        best = rows[-1]["iteration"] if rows else 0
    figures = run_dir / "report_figures"
    figures.mkdir(exist_ok=True)
    pngs: list[Path] = []
    if rows:
        plot_metrics(rows, figures / "metrics.png")
        plot_rejections(rows, figures / "rejections.png")
        pngs = [figures / "metrics.png", figures / "rejections.png"]
    grids = overlay_grids(run_dir / "iter0" / "eval", run_dir / f"iter{best}" / "eval", figures, grid_frames,
                          f"iter{best}") if rows else []
    sections = crop_sections(run_dir, best) if rows else []
    report = {"run_dir": str(run_dir), "iterations": rows, "best_iteration": best,
              "best_models": state.best_models, "stopped_because": state.stopped_because,
              "finished": state.finished, "options": state.options,
              "inputs": input_roles(state),
              "figures": [str(p.relative_to(run_dir)) for p in pngs + grids],
              "hand_crops": [asdict(section) for section in sections]}
    atomic_write_json(run_dir / "report.json", report)
    return atomic_write_text(run_dir / "report.html", render_html(report, run_dir))
