"""bpiml demo: forgeries from bundled photos, and the whole demo on the shipped model (quick)."""

import numpy as np
import pytest

from boxpromptiml.cli import main
from boxpromptiml.demo import make_demo_images
from boxpromptiml.deployment.shipped import ship_model, shipped_model_path
from boxpromptiml.errors import ConfigError
from boxpromptiml.student.model import StudentConfig, build_student
from boxpromptiml.training.checkpoint import load_student, save_checkpoint


def test_demo_forgeries_are_reproducible_with_exact_masks():
    first, again = make_demo_images(3), make_demo_images(3)
    for a, b in zip(first, again, strict=True):
        assert a.name == b.name and np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)
        assert a.image.dtype == np.uint8 and a.image.shape[:2] == a.mask.shape
        assert 0.002 < a.mask.mean() < 0.3
    assert {d.kind for d in first} == {"splice", "copy_move", "removal"}


def test_ship_model_writes_fp16_that_loads(tmp_path):
    model = build_student(StudentConfig(input_size=64))
    save_checkpoint(tmp_path / "run" / "best", model, {"epoch": 3})
    out = ship_model(tmp_path / "run", {"summary": "test"}, tmp_path / "shipped")
    loaded, state = load_student(out)
    assert state["epoch"] == 3 and (out / "training.json").is_file()
    for key, value in model.state_dict().items():
        if value.is_floating_point():
            assert (loaded.state_dict()[key] - value).abs().max() < 1e-2  # fp16 rounding only
    assert (out / "model.safetensors").stat().st_size < 0.6 * (tmp_path / "run" / "best" / "model.safetensors"
                                                              ).stat().st_size


@pytest.mark.skipif(not (shipped_model_path() / "model.safetensors").is_file(), reason="no shipped model yet")
def test_demo_quick_on_the_shipped_model(tmp_path):
    assert main(["demo", "--quick", "--out", str(tmp_path / "demo")]) == 0
    page = (tmp_path / "demo" / "index.html").read_text()
    assert page.count("<tr>") == 4 and "student F1" in page and "GMACs" in page
    assert len(list((tmp_path / "demo" / "img").glob("*.png"))) == 12


def test_shipped_model_loads_by_default_or_says_why():
    from boxpromptiml.deployment.predictor import load_predictor

    if (shipped_model_path() / "model.safetensors").is_file():
        predictor = load_predictor(None)
        prediction = predictor.predict(np.zeros((50, 70, 3), np.uint8))
        assert prediction.probability.shape == (50, 70)
    else:
        with pytest.raises(ConfigError, match="no shipped model"):
            load_predictor(None)
