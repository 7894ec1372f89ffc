"""Robustness: the same evaluation after the degradations images meet on the web.

Each :class:`Degradation` level maps (image, mask, rng) to a degraded image and the mask that
follows it (resizing moves the mask with the image; blur, noise and JPEG leave it alone). Images
are read and decoded once; every level is applied to the originals.

Social-network chains are approximations, not measurements: resize so the long side is at most
the platform's limit, then re-encode as JPEG at its quality. The parameters below are commonly
reported values for the platforms' default (non-"original quality") upload paths around 2020-2023;
platforms change them without notice, and none of them was measured here. Note that CASIA v1
(384 x 256) and COVERAGE (about 400 px) images are below every limit, so on these sets only the
JPEG step acts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..data.degrade import gaussian_blur, gaussian_noise, jpeg_recompress, limit_long_side, rescale
from ..data.images import read_image
from ..data.samples import Dataset, Sample
from ..errors import DataError
from ..fileio import write_atomic
from ..runner import run_per_sample
from .evaluate import Evaluator, load_ground_truth

Degrade = Callable[[np.ndarray, np.ndarray | None, np.random.Generator], tuple[np.ndarray, np.ndarray | None]]


@dataclass(frozen=True)
class SocialChain:
    """A platform-like chain: long side limited to ``long_side`` px, then JPEG at ``quality``."""

    name: str
    long_side: int
    quality: int


SOCIAL_CHAINS = (
    SocialChain("facebook", 2048, 72),
    SocialChain("wechat", 1280, 70),
    SocialChain("whatsapp", 1600, 60),
    SocialChain("weibo", 2048, 80),
)
JPEG_QUALITIES = (100, 90, 80, 70, 60, 50)
BLUR_KERNELS = (3, 7, 11, 15, 19, 23)
NOISE_SIGMAS = (3, 7, 11, 15, 19, 23)
DOWNSCALES = (0.75, 0.5)
DEGRADATION_KINDS = ("jpeg", "blur", "noise", "downscale", "social")  # plus "none", always measured


@dataclass(frozen=True)
class Degradation:
    """One level of one degradation."""

    kind: str
    level: str | int | float
    apply: Degrade

    @property
    def label(self) -> str:
        return f"{self.kind} {self.level}"


def _jpeg(quality: int) -> Degrade:
    return lambda image, mask, rng: (jpeg_recompress(image, quality), mask)


def _blur(kernel: int) -> Degrade:
    return lambda image, mask, rng: (gaussian_blur(image, kernel), mask)


def _noise(sigma: float) -> Degrade:
    return lambda image, mask, rng: (gaussian_noise(image, sigma, rng), mask)


def _downscale(scale: float) -> Degrade:
    return lambda image, mask, rng: rescale(image, scale, mask)


def _social(chain: SocialChain) -> Degrade:
    def apply(image, mask, rng):
        image, mask = limit_long_side(image, chain.long_side, mask)
        return jpeg_recompress(image, chain.quality), mask

    return apply


def robustness_suite(kinds: tuple[str, ...] | None = None) -> list[Degradation]:
    """The standard levels: none; JPEG 100..50; blur 3..23; noise 3..23; downscale; social chains."""
    suite = [Degradation("none", 0, lambda image, mask, rng: (image, mask))]
    suite += [Degradation("jpeg", q, _jpeg(q)) for q in JPEG_QUALITIES]
    suite += [Degradation("blur", k, _blur(k)) for k in BLUR_KERNELS]
    suite += [Degradation("noise", s, _noise(s)) for s in NOISE_SIGMAS]
    suite += [Degradation("downscale", s, _downscale(s)) for s in DOWNSCALES]
    suite += [Degradation("social", c.name, _social(c)) for c in SOCIAL_CHAINS]
    if kinds is not None:
        unknown = set(kinds) - {d.kind for d in suite}
        if unknown:
            raise ValueError(f"unknown degradation(s) {sorted(unknown)}; known: none, {', '.join(DEGRADATION_KINDS)}")
        suite = [d for d in suite if d.kind in kinds or d.kind == "none"]
    return suite


def evaluate_robustness(dataset: Dataset, predict: Callable[[np.ndarray], object], suite: list[Degradation],
                        seed: int = 0, progress: Callable[[str], None] | None = None) -> list[dict]:
    """One row per degradation level: ``degradation``, ``level`` and the `bpiml evaluate` numbers.

    Unreadable images are skipped (listed in each row's ``failures``), as in `bpiml evaluate`.
    """

    def load(sample: Sample) -> tuple[Sample, np.ndarray, np.ndarray | None]:
        return sample, read_image(sample.image), load_ground_truth(sample)

    loaded = run_per_sample(dataset, load, desc="read images", total=len(dataset))
    rows = []
    for degradation in suite:
        if progress:
            progress(degradation.label)
        evaluator = Evaluator()
        for index, (sample, image, mask) in enumerate(loaded.results.values()):
            rng = np.random.default_rng([seed, index])
            degraded, degraded_mask = degradation.apply(image, mask, rng)
            if degraded_mask is not None and degraded_mask.shape != degraded.shape[:2]:
                raise DataError(f"{degradation.label}: mask of {sample.image} no longer fits its image")
            prediction = predict(degraded)
            evaluator.add(sample.name, sample.label, prediction.probability, degraded_mask, prediction.score)
        report = evaluator.report()
        rows.append({"degradation": degradation.kind, "level": degradation.level, "pixel_f1": report.pixel_f1,
                     "pixel_iou": report.pixel_iou, "pixel_auc": report.pixel_auc, "image_auc": report.image_auc,
                     "authentic_marked_rate": report.authentic_marked_rate,
                     "n_tampered": report.n_tampered, "n_authentic": report.n_authentic,
                     "failures": dict(loaded.failures)})
    return rows


def plot_robustness(rows_by_dataset: dict[str, list[dict]], out_path) -> None:
    """F1 against degradation level, one panel per degradation, one line per dataset (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(DEGRADATION_KINDS), figsize=(3.2 * len(DEGRADATION_KINDS), 3.2), sharey=True)
    for ax, kind in zip(axes, DEGRADATION_KINDS, strict=True):
        for name, rows in rows_by_dataset.items():
            clean = next((r["pixel_f1"] for r in rows if r["degradation"] == "none"), None)
            picked = [r for r in rows if r["degradation"] == kind]
            if not picked:
                continue
            labels = [str(r["level"]) for r in picked]
            line = ax.plot(range(len(picked)), [r["pixel_f1"] for r in picked], marker="o", label=name)[0]
            if clean is not None:
                ax.axhline(clean, color=line.get_color(), linestyle=":", linewidth=1)
            ax.set_xticks(range(len(picked)), labels, rotation=45 if kind == "social" else 0, fontsize=8)
        ax.set_title(kind)
        ax.set_ylim(0, 1)
    axes[0].set_ylabel("pixel F1 (dotted: undegraded)")
    handles = {line.get_label(): line for ax in axes for line in ax.get_lines() if not line.get_label().startswith("_")}
    if handles:
        axes[0].legend(list(handles.values()), list(handles), fontsize=7)
    fig.tight_layout()
    write_atomic(out_path, lambda tmp: fig.savefig(tmp, dpi=90, format="png"))
    plt.close(fig)
