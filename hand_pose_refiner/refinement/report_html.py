"""report.html: the report's rounds, inputs, figures and close-ups as one static page.

Built from the report's JSON form (what :func:`~hand_pose_refiner.refinement.report.write_report`
writes to report.json), every value HTML-escaped.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return html.escape(str(value))


def render_html(report: dict[str, Any], run_dir: Path) -> str:
    """The whole page of a report (its JSON form) of the run in ``run_dir``."""
    head = ("<tr><th>iteration</th><th>started from</th><th>detection rate (targets)</th>"
            "<th>check recordings</th>"
            "<th>accepted poses</th><th>mean keypoint confidence</th><th>PCK@0.2 labelled</th>"
            "<th>pseudo-labels (hands / frames)</th><th>candidate thresholds (det, presence)</th>"
            "<th>rejections per rule</th></tr>")
    body = []
    for row in report["iterations"]:
        pseudo = row.get("pseudo_labels")
        thresholds = pseudo["thresholds"] if pseudo else None
        rejections = "<br>".join(f"{html.escape(k)}: {v}" for k, v in row["rejections"].items())
        best = " (best)" if row["iteration"] == report["best_iteration"] else ""
        body.append(
            f"<tr><td>{row['iteration']}{best}</td><td>{_fmt(row.get('models_from', '–'))}</td>"
            f"<td>{_fmt(row['detection_rate'])}</td><td>{_fmt(row['check_detection_rate'])}</td>"
            f"<td>{row['accepted_poses']}</td><td>{_fmt(row['mean_keypoint_confidence'])}</td>"
            f"<td>{_fmt(row['pck'])}</td>"
            f"<td>{_fmt(pseudo['accepted_hands']) if pseudo else '–'} / "
            f"{_fmt(pseudo['frames_with_hands']) if pseudo else '–'}</td>"
            f"<td>{_fmt(thresholds['detection_score_threshold']) if thresholds else '–'}, "
            f"{_fmt(thresholds['min_presence']) if thresholds else '–'}</td>"
            f"<td style='font-size:small'>{rejections}</td></tr>")
    images = "".join(f"<h3>{html.escape(name)}</h3><img src='{html.escape(name)}' style='max-width:100%'>"
                     for name in report["figures"])
    crops = _crops_html(report["hand_crops"])
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Refinement report: {html.escape(run_dir.name)}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #999;padding:4px 8px;vertical-align:top}}
.crops{{display:flex;flex-wrap:wrap;gap:6px}} .crops figure{{margin:0;width:128px;font-size:11px}}
.crops img{{width:128px;height:128px;display:block}}</style></head><body>
<h1>Self-supervised refinement: {html.escape(str(run_dir))}</h1>
<p>Best iteration: <b>{report['best_iteration']}</b> ({html.escape(str(report['best_models']))}).
Stopped because: {html.escape(str(report['stopped_because']))}.</p>
<p>Detection rate: fraction of frames with at least one hand accepted by the live filter chain, at the
live configuration's thresholds. It counts false positives as detections: check the overlay grids
below (same frames, initial models left, best round right) for boxes that are not hands.</p>
<table>{head}{''.join(body)}</table>
{_skipped_html(report["iterations"])}
{_inputs_html(report["inputs"])}
{images}
{crops}
</body></html>
"""


def _inputs_html(inputs: list[dict[str, Any]]) -> str:
    """Which frames the run used for what: one line per input, by role."""
    if not inputs:
        return ""
    lines = []
    for item in inputs:
        count = "" if item["frames"] is None else f" ({item['frames']} frames)"
        lines.append(f"<li><b>{html.escape(item['role'])}</b> ({html.escape(item['use'])}): "
                     f"<code>{html.escape(item['path'])}</code>, {html.escape(item['frames_used'])}"
                     f"{count}</li>")
    return f"<h2>Inputs: which frames were used for what</h2><ul>{''.join(lines)}</ul>"


def _skipped_html(rows: list[dict[str, Any]]) -> str:
    """The target frames that could not be decoded (the same every round: counted, never used)."""
    skipped = rows[0].get("skipped_frames", {}) if rows else {}
    if not skipped:
        return ""
    counts = ", ".join(f"{html.escape(reason)}: {count}" for reason, count in skipped.items())
    return f"<p>Target frames skipped while reading (they could not be decoded): {counts}.</p>"


def _crops_html(sections: list[dict[str, Any]]) -> str:
    """The close-up grids: one figure per accepted hand, captioned with its frame and scores."""
    if not sections:
        return ""
    parts = ["<h2>Accepted hands, close up</h2><p>Every hand the filters accepted, zoomed in with its "
             "skeleton: track id, handedness, detection score (det) and mean keypoint score (kp). "
             "A crop that shows no hand is a false pseudo-label.</p>"]
    for section in sections:
        figures = "".join(
            f"<figure class='hand-crop'><img src='{html.escape(crop['path'])}' loading='lazy' "
            f"alt='{html.escape(crop['frame'])}'><figcaption>{html.escape(crop['frame'])}<br>"
            f"{html.escape(crop['caption'])}</figcaption></figure>" for crop in section["crops"])
        parts.append(f"<h3 id='{html.escape(section['name'])}'>{html.escape(section['title'])}: "
                     f"{len(section['crops'])} hands</h3><div class='crops'>{figures}</div>")
    return "\n".join(parts)
