"""`bpiml demo`: the whole method on a handful of forgeries, written up as one HTML page.

Forge images from photos bundled with scikit-image -> draw their boxes (simulated from the exact
masks) -> LiteMedSAM teacher -> pseudo masks -> the shipped student (no box) -> scores of both
against the exact masks -> ``OUT/index.html`` with pictures, numbers and the model's cost.
"""

from __future__ import annotations

import html
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from ..boxes.simulate import BoxSimulationConfig, simulate_boxes
from ..data.images import PathLike, read_image, write_image
from ..data.samples import Box
from ..deployment.complexity import count_gmacs, count_params_m, median_latency_ms
from ..deployment.predictor import Predictor
from ..deployment.shipped import shipped_note
from ..evaluation import metrics as M
from ..fileio import write_text_atomic
from ..student.model import Student
from ..teachers import Teacher
from .photos import DEMO_PLAN, make_demo_images

log = logging.getLogger(__name__)
QUICK_IMAGES = 3
PREVIEW_ROWS = (3, 1)  # the coffee splice and the cat copy-move: the README's picture (docs/figures/demo.png)
PANELS = ("image", "truth", "pseudo", "student")


@dataclass
class DemoRow:
    name: str
    kind: str
    boxes: list[Box]
    teacher_f1: float
    teacher_iou: float
    student_f1: float
    student_iou: float
    student_auc: float | None
    image_score: float
    teacher_seconds: float
    student_seconds: float


@dataclass
class DemoResult:
    out_dir: Path
    rows: list[DemoRow]
    complexity: str
    model_label: str

    def summary(self) -> str:
        t = np.mean([r.teacher_f1 for r in self.rows])
        s = np.mean([r.student_f1 for r in self.rows])
        return (f"{len(self.rows)} images: teacher (with boxes) pixel F1 {t:.3f}, student (no boxes) pixel F1 "
                f"{s:.3f}; open {self.out_dir / 'index.html'}")


def _heatmap(image: np.ndarray, prob: np.ndarray) -> np.ndarray:
    colour = cv2.applyColorMap((np.clip(prob, 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
    return (0.45 * image + 0.55 * colour).astype(np.uint8)


def _with_boxes(image: np.ndarray, boxes: list[Box]) -> np.ndarray:
    out = image.copy()
    for b in boxes:
        cv2.rectangle(out, (int(b.x1), int(b.y1)), (int(b.x2), int(b.y2)), (255, 230, 0), 2)
    return out


def _gray(prob: np.ndarray) -> np.ndarray:
    return (np.clip(prob, 0, 1) * 255).astype(np.uint8)


def complexity_line(model: Student) -> str:
    size = model.config.input_size
    params = count_params_m(model)
    latency = median_latency_ms(model, size, 1, 5)
    return (f"student {model.config.encoder} + {model.config.fusion}: {params:.2f} M parameters, "
            f"{count_gmacs(model, 224):.2f} GMACs at 224x224, {latency:.0f} ms per {size}x{size} image on this CPU "
            f"({torch.get_num_threads()} threads)")


def run_demo(out_dir: PathLike, teacher: Teacher, student: Student, quick: bool = False, seed: int = 0,
             model_label: str | None = None) -> DemoResult:
    """Run the demo into ``out_dir`` (``quick``: 3 images instead of 8). ``model_label`` says where the
    student came from (default: the shipped model's training note)."""
    out = Path(out_dir)
    count = QUICK_IMAGES if quick else len(DEMO_PLAN)
    log.info("making %d forgeries from scikit-image's bundled photos", count)
    images = make_demo_images(count, seed)
    predictor = Predictor.from_student(student.eval(), "shipped")
    rows = []
    for item in tqdm(images, desc="demo", unit="img", disable=None):
        boxes = simulate_boxes(item.mask, BoxSimulationConfig(), np.random.default_rng([seed, len(rows)]))
        started = time.perf_counter()
        pseudo = teacher.segment(item.image, boxes)
        teacher_seconds = time.perf_counter() - started
        started = time.perf_counter()
        prediction = predictor.predict(item.image)
        student_seconds = time.perf_counter() - started
        prob = prediction.probability
        t_conf, s_conf = M.confusion(pseudo, item.mask), M.confusion(prob, item.mask)
        rows.append(DemoRow(item.name, item.kind, boxes, M.f1(t_conf), M.iou(t_conf), M.f1(s_conf), M.iou(s_conf),
                            M.binary_auc(prob, item.mask), prediction.score, teacher_seconds, student_seconds))
        for suffix, picture in (("image", _with_boxes(item.image, boxes)), ("truth", _gray(item.mask)),
                                ("pseudo", _gray(pseudo)), ("student", _heatmap(item.image, prob))):
            write_image(out / "img" / f"{item.name}_{suffix}.png", picture)
    write_preview(out, [images[i].name for i in PREVIEW_ROWS if i < len(images)])
    label = model_label or "shipped model: " + shipped_note().get("summary", "see docs/results.md")
    result = DemoResult(out, rows, complexity_line(student), label)
    write_text_atomic(out / "index.html", render_html(result, teacher.describe()))
    return result


def write_preview(out: Path, names: list[str], width: int = 200) -> None:
    """``OUT/preview.png``: the four panels of the named rows, side by side, for a README."""
    rows = []
    for name in names:
        tiles = [read_image(out / "img" / f"{name}_{panel}.png") for panel in PANELS]
        tiles = [cv2.resize(t, (width, int(width * t.shape[0] / t.shape[1])), interpolation=cv2.INTER_AREA)
                 for t in tiles]
        height = max(t.shape[0] for t in tiles)
        rows.append(np.concatenate([np.pad(t, ((0, height - t.shape[0]), (0, 4), (0, 0)), constant_values=255)
                                    for t in tiles], axis=1))
    if rows:
        full = max(r.shape[1] for r in rows)
        write_image(out / "preview.png", np.concatenate(
            [np.pad(r, ((0, 4), (0, full - r.shape[1]), (0, 0)), constant_values=255) for r in rows]))


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _teacher_text(teacher: dict) -> str:
    """``litemedsam (resize=longest-side, ..., grabcut_weight=0.45)`` from a teacher's description."""
    settings = teacher.get("settings") or {}
    detail = ", ".join(f"{k}={v}" for k, v in settings.items())
    return f"{teacher.get('teacher', '?')}" + (f" ({detail})" if detail else "")


def render_html(result: DemoResult, teacher: dict) -> str:
    rows = []
    for r in result.rows:
        cells = "".join(f'<td><img src="img/{r.name}_{s}.png" alt="{s}"></td>'
                        for s in PANELS)
        numbers = (f"<b>{html.escape(r.kind.replace('_', '-'))}</b><br>teacher F1 {_num(r.teacher_f1)} / IoU "
                   f"{_num(r.teacher_iou)}<br>student F1 {_num(r.student_f1)} / IoU {_num(r.student_iou)}<br>"
                   f"student pixel AUC {_num(r.student_auc)}<br>image score {_num(r.image_score)}<br>"
                   f"<small>teacher {r.teacher_seconds:.1f} s, student {r.student_seconds * 1000:.0f} ms</small>")
        rows.append(f"<tr><td class=name>{html.escape(r.name)}</td>{cells}<td>{numbers}</td></tr>")
    mean_t = np.mean([r.teacher_f1 for r in result.rows])
    mean_s = np.mean([r.student_f1 for r in result.rows])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>BoxPromptIML demo</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; }}
td, th {{ padding: 4px 8px; vertical-align: top; border-bottom: 1px solid #ddd; }}
img {{ max-width: 220px; }} .name {{ font-family: monospace; }} small {{ color: #666; }}
</style></head><body>
<h1>BoxPromptIML demo</h1>
<p>Forgeries made from photos bundled with scikit-image (splicing, copy-move, removal by inpainting).
An annotator's coarse box (yellow, simulated from the exact mask) prompts the frozen teacher, whose
soft mask is what the student is trained on. The student sees the image only, with no box.
Scores: pixel F1 / IoU at threshold 0.5 against the exact masks.</p>
<p><b>Mean pixel F1: teacher with boxes {mean_t:.3f}, student without boxes {mean_s:.3f}</b>
over {len(result.rows)} images.</p>
<p>Teacher: {html.escape(_teacher_text(teacher))}.<br>
{html.escape(result.complexity)}.<br>Student: {html.escape(result.model_label)}</p>
<table><tr><th>name</th><th>image + box</th><th>ground truth</th><th>teacher pseudo mask</th>
<th>student heat map</th><th>numbers</th></tr>
{chr(10).join(rows)}
</table></body></html>
"""
