"""Robustness suite: every degradation keeps the mask on the image; JPEG really re-encodes; the
CLI writes the JSON rows the issue names."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from boxpromptiml.cli import main
from boxpromptiml.data.images import write_image
from boxpromptiml.data.readers import read_imdl_json
from boxpromptiml.evaluation.robustness import SOCIAL_CHAINS, evaluate_robustness, robustness_suite
from boxpromptiml.fileio import write_json_atomic


def _red_square_dataset(tmp_path, n=3):
    """Tampered images whose tampered region is the red square: a colour 'oracle' can find it."""
    pairs = []
    rng = np.random.default_rng(0)
    for i in range(n):
        image = rng.integers(0, 80, size=(120, 160, 3), dtype=np.uint8)
        mask = np.zeros((120, 160), np.uint8)
        y, x = 20 + 10 * i, 30 + 15 * i
        image[y:y + 40, x:x + 50] = (230, 20, 20)
        mask[y:y + 40, x:x + 50] = 255
        write_image(tmp_path / "Tp" / f"t{i}.png", image)
        write_image(tmp_path / "Gt" / f"t{i}.png", mask)
        pairs.append([f"Tp/t{i}.png", f"Gt/t{i}.png"])
    write_image(tmp_path / "Au" / "a0.png", rng.integers(0, 80, size=(100, 100, 3), dtype=np.uint8))
    pairs.append(["Au/a0.png", "Negative"])
    write_json_atomic(tmp_path / "data.json", pairs)
    return read_imdl_json(tmp_path / "data.json")


def _red_oracle(image):
    red = (image[..., 0].astype(int) - image[..., 1:].max(axis=2)) / 255.0
    prob = np.clip(red * 1.5, 0, 1).astype(np.float32)
    return SimpleNamespace(probability=prob, score=float(prob.max()))


def test_suite_levels_match_the_issue():
    suite = robustness_suite()
    levels = {kind: [d.level for d in suite if d.kind == kind] for kind in {d.kind for d in suite}}
    assert levels["jpeg"] == [100, 90, 80, 70, 60, 50]
    assert levels["blur"][0] == 3 and levels["blur"][-1] == 23
    assert levels["noise"][0] == 3 and levels["noise"][-1] == 23
    assert levels["downscale"] == [0.75, 0.5]
    assert levels["social"] == ["facebook", "wechat", "whatsapp", "weibo"]
    assert {d.kind for d in robustness_suite(("jpeg",))} == {"none", "jpeg"}
    with pytest.raises(ValueError, match="unknown degradation"):
        robustness_suite(("rotate",))


@pytest.mark.parametrize("degradation", robustness_suite(), ids=lambda d: d.label)
def test_each_degradation_keeps_the_mask_aligned(degradation):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 80, size=(90, 130, 3), dtype=np.uint8)
    image[20:60, 30:90] = (230, 20, 20)
    mask = np.zeros((90, 130), bool)
    mask[20:60, 30:90] = True
    out, out_mask = degradation.apply(image, mask, rng)
    assert out.dtype == np.uint8 and out.ndim == 3 and out_mask.shape == out.shape[:2]
    found = _red_oracle(out).probability > 0.5
    overlap = (found & out_mask).sum() / (found | out_mask).sum()
    assert overlap > 0.8, f"{degradation.label}: the mask no longer covers the square (IoU {overlap:.2f})"
    if degradation.kind != "none":
        assert (out.shape != image.shape) or (out != image).any()  # it really changed the image


def test_jpeg_levels_really_reencode():
    rng = np.random.default_rng(2)
    image = rng.integers(0, 255, size=(64, 64, 3), dtype=np.uint8)
    errors = []
    for d in robustness_suite(("jpeg",))[1:]:
        out, _ = d.apply(image, None, rng)
        errors.append(np.abs(out.astype(int) - image).mean())
    assert all(e > 0 for e in errors) and errors == sorted(errors)  # lower quality, larger error
    assert all(1000 <= c.long_side <= 4096 and 40 <= c.quality <= 95 for c in SOCIAL_CHAINS)


def test_evaluate_robustness_rows(tmp_path):
    dataset = _red_square_dataset(tmp_path)
    rows = evaluate_robustness(dataset, _red_oracle, robustness_suite(("jpeg", "downscale")))
    assert [r["degradation"] for r in rows] == ["none"] + ["jpeg"] * 6 + ["downscale"] * 2
    assert rows[0]["pixel_f1"] > 0.95 and rows[0]["n_tampered"] == 3 and rows[0]["n_authentic"] == 1
    assert all(r["pixel_f1"] > 0.8 for r in rows)  # the masks followed the images


def test_robustness_cli_json_and_plot(tmp_path, monkeypatch):
    dataset = _red_square_dataset(tmp_path)
    import boxpromptiml.deployment.predictor as predictor  # the command imports it when it runs

    monkeypatch.setattr(predictor, "load_predictor",
                        lambda model, backend, device, **switches: SimpleNamespace(predict=_red_oracle))
    code = main(["robustness", "-d", str(dataset.source), "--model", "unused", "--only", "social", "blur",
                 "--json", str(tmp_path / "r.json"), "--plot", str(tmp_path / "r.png")])
    assert code == 0
    rows = json.loads((tmp_path / "r.json").read_text())
    assert {"degradation", "level", "pixel_f1", "pixel_auc"} <= set(rows[0])
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
