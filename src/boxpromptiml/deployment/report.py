"""A one-page, self-contained HTML report of one image's analysis (`bpiml predict --report`, `bpiml serve`).

Everything is inside the file (pictures as data URIs, styles inline), so it can be mailed or archived
as is: the photo, the heat map over it, the binary mask, the image-level verdict with the false-alarm
rate its threshold was calibrated to, the file as received (SHA-256, size, format, EXIF), the model by
name and weights hash with its settings, the software versions and the date. No path of the machine
that made it appears in it.
"""

from __future__ import annotations

import base64
import html
import json
from datetime import UTC, datetime
from typing import Any

import cv2
import numpy as np

from ..data.images import fit_within
from ..evaluation.calibration import ImageDecision
from .map_gate import MapGate
from .predict_files import overlay
from .provenance import FileFacts, software_versions

REPORT_SIDE = 1600  # pictures in the report are shrunk to this longer side (the page stays a few MB)


def _data_uri(image: np.ndarray, fmt: str) -> str:
    """An RGB or gray uint8 picture as a ``data:`` URI (JPEG for photos, PNG for masks)."""
    pixels = image[..., ::-1] if image.ndim == 3 else image
    ok, encoded = cv2.imencode(f".{fmt}", pixels, [cv2.IMWRITE_JPEG_QUALITY, 88] if fmt == "jpg" else [])
    if not ok:
        raise ValueError(f"could not encode a {image.shape} picture as {fmt}")
    mime = "image/jpeg" if fmt == "jpg" else "image/png"
    return f"data:{mime};base64,{base64.b64encode(encoded.tobytes()).decode('ascii')}"


def verdict_text(score: float, decision: ImageDecision | None, gate: MapGate | None = None) -> str:
    """The image-level verdict in words (or why there is none), and whether the map gate damped the map."""
    damped = "" if gate is None or score >= gate.threshold else \
        (f"; the map is damped, because the image score is under the map gate {gate.threshold:.3f}: nothing is "
         "marked, and the heat map shows faintly where the model looked (--no-map-gate shows the map as made)")
    if decision is None:
        return (f"image score {score:.3f}; this model has no calibrated image threshold "
                "(bpiml calibrate makes one), so no verdict is given" + damped)
    flagged = score > decision.threshold
    caught = "an unmeasured share" if decision.detection_rate is None else f"{decision.detection_rate:.0%}"
    text = (f"{'TAMPERED' if flagged else 'not flagged'}: image score {score:.3f} against threshold "
            f"{decision.threshold:.3f}, which flagged {decision.false_alarm_rate:.1%} of {decision.n_authentic} "
            f"authentic images of {decision.calibrated_on} (target {decision.target_false_alarm_rate:.0%} false "
            f"alarms) and caught {caught} of its {decision.n_tampered} tampered images")
    weak = decision.detection_rate is None or decision.detection_rate < 0.9
    if not flagged and weak:  # "nothing found" must not read as more certain than the detection rate allows
        text += "; not being flagged is weak evidence of authenticity: look at the heat map"
    return text + damped


def render_report(image: np.ndarray, probability: np.ndarray, score: float, *, image_name: str,
                  model: dict[str, Any], decision: ImageDecision | None, gate: MapGate | None = None,
                  threshold: float = 0.5,
                  created: datetime | None = None, facts: FileFacts | None = None,
                  identity: dict[str, str] | None = None) -> str:
    """The report page as a string. ``model`` describes the model's settings, ``identity`` names it (name and
    weights hash; it replaces the path in ``model``), ``facts`` describe the file as received; ``image`` may be
    a shrunk copy of the photo (the map gives the size reported)."""
    created = created or datetime.now(UTC)
    photo, _ = fit_within(image, REPORT_SIDE)
    prob = cv2.resize(probability.astype(np.float32), (photo.shape[1], photo.shape[0]), interpolation=cv2.INTER_AREA)
    mask = ((prob > threshold) * 255).astype(np.uint8)
    tampered_share = float(np.mean(probability > threshold))
    esc = html.escape
    settings = {k: v for k, v in model.items() if k != "model"}  # the path there is the machine's, not the model's
    about_model = {**(identity or {"model": "(not named)"}), **settings}

    def table(rows: dict[str, Any]) -> str:
        return "".join(f"<tr><th>{esc(str(k))}</th><td>{esc(v if isinstance(v, str) else json.dumps(v))}</td></tr>"
                       for k, v in rows.items())

    flagged = decision is not None and score > decision.threshold
    tone = "flagged" if flagged else "none" if decision is None else "clear"
    file_rows = table(facts.rows()) if facts is not None else "<tr><td>the file's bytes were not kept</td></tr>"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>BoxPromptIML report: {esc(image_name)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
.pictures {{ display: grid; grid-template-columns: repeat(3, 1fr); gap: 12px; }}
figure {{ margin: 0; }} img {{ width: 100%; border: 1px solid #ccc; }}
figcaption {{ font-size: 0.9em; color: #555; }}
.verdict {{ font-size: 1.15em; padding: 0.6em 0.8em; background: #f3f3f3; border-left: 5px solid #999; }}
.verdict.flagged {{ border-left-color: #c33; }} .verdict.clear {{ border-left-color: #4a7bb7; }}
table {{ border-collapse: collapse; font-size: 0.85em; }} th, td {{ text-align: left; padding: 2px 8px;
vertical-align: top; border-bottom: 1px solid #eee; }} td {{ font-family: monospace; word-break: break-all; }}
.note {{ font-size: 0.85em; color: #666; }}
</style></head>
<body>
<h1>Manipulation analysis: {esc(image_name)}</h1>
<p class="verdict {tone}" id="verdict">{esc(verdict_text(score, decision, gate))}</p>
<p>Image {probability.shape[1]} x {probability.shape[0]} pixels; {tampered_share:.1%} of its pixels have tampering
probability above {threshold:.2f}. Created {esc(created.isoformat(timespec="seconds"))}.</p>
<div class="pictures">
<figure><img alt="photo" src="{_data_uri(photo, 'jpg')}"><figcaption>The photo</figcaption></figure>
<figure><img alt="heat map" src="{_data_uri(overlay(photo, prob), 'jpg')}">
<figcaption>Tampering probability in red</figcaption></figure>
<figure><img alt="mask" src="{_data_uri(mask, 'png')}"><figcaption>Mask at {threshold:.2f}</figcaption></figure>
</div>
<h2>File</h2><table>{file_rows}</table>
<h2>Model</h2><table>{table(about_model)}</table>
<h2>Software</h2><table>{table(software_versions())}</table>
<p class="note">Made by BoxPromptIML. A heat map shows where the model sees traces of
manipulation; it is evidence to weigh, not proof.</p>
</body></html>
"""
