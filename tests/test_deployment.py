"""Inference and deployment: predictor at any size, predict CLI outputs, ONNX parity, bench."""

import json

import numpy as np
import pytest
import torch

from boxpromptiml.cli import main
from boxpromptiml.deployment.export import export_onnx
from boxpromptiml.deployment.predict_files import expand_inputs
from boxpromptiml.deployment.predictor import Predictor, load_predictor
from boxpromptiml.errors import BPIMLError, DataError
from boxpromptiml.student.model import StudentConfig, build_student
from boxpromptiml.training.checkpoint import load_student, save_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = build_student(StudentConfig(encoder="efficientnet_lite0", encoder_init="random", input_size=64))
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "best", model, {"epoch": 0})


def test_checkpoint_round_trip(checkpoint, tmp_path):
    model, state = load_student(checkpoint)
    again, _ = load_student(save_checkpoint(tmp_path / "copy", model, state))
    for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    half, _ = load_student(save_checkpoint(tmp_path / "half", model, state, half=True))
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert (torch.sigmoid(half(x)) - torch.sigmoid(model(x))).abs().max() < 1e-2


def test_predictor_handles_any_image_size(checkpoint):
    predictor = load_predictor(checkpoint)
    for shape in [(50, 70, 3), (300, 123, 3)]:
        prediction = predictor.predict(np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8))
        assert prediction.probability.shape == shape[:2]
        assert 0 <= prediction.probability.min() and prediction.probability.max() <= 1
        assert prediction.score == pytest.approx(float(prediction.probability.max()), abs=1e-6)


def test_predict_cli_writes_maps_scores_masks_overlays(checkpoint, toy_dataset, tmp_path):
    folder = toy_dataset.tampered[0].image.parent
    assert main(["predict", str(folder / "*_000.png"), str(toy_dataset.authentic[0].image), "--model",
                 str(checkpoint), "-o", str(tmp_path), "--masks", "--overlays"]) == 0
    names = {toy_dataset.tampered[0].name, toy_dataset.authentic[0].name}
    assert {p.stem for p in tmp_path.glob("*.png")} == names
    assert {p.stem for p in (tmp_path / "masks").glob("*.png")} == names
    assert {p.stem for p in (tmp_path / "overlays").glob("*.jpg")} == names
    assert set(json.loads((tmp_path / "scores.json").read_text())) == names


def test_expand_inputs_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        expand_inputs([str(tmp_path / "nothing.png")])
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for folder in ("a", "b"):
        (tmp_path / folder / "x.png").write_bytes(b"")
    with pytest.raises(DataError, match="share the name 'x'"):
        expand_inputs([str(tmp_path / "a"), str(tmp_path / "b")])


def test_evaluate_with_model(checkpoint, toy_dataset, tmp_path):
    assert main(["evaluate", "-d", str(toy_dataset.source), "--model", str(checkpoint),
                 "--json", str(tmp_path / "r.json")]) == 0
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["n_tampered"] == 8 and result["pixel_f1"] is not None


def test_onnx_export_matches_pytorch(checkpoint, toy_dataset, tmp_path):
    model, _ = load_student(checkpoint)
    difference = export_onnx(model, tmp_path / "student.onnx")
    assert difference < 1e-4
    onnx_predictor = Predictor.from_onnx(tmp_path / "student.onnx")
    torch_predictor = Predictor.from_student(model)
    for batch in (1, 5):
        images = torch.rand(batch, 3, 64, 64)
        got, _ = onnx_predictor.predict_batch(images)
        expected, _ = torch_predictor.predict_batch(images)
        assert (got - expected).abs().max() < 1e-4
    assert main(["predict", str(toy_dataset.tampered[0].image), "--model", str(tmp_path / "student.onnx"),
                 "--backend", "onnx", "-o", str(tmp_path / "pred")]) == 0


def test_bench_json(checkpoint, tmp_path):
    assert main(["bench", "--model", str(checkpoint), "--repeats", "1", "--json", str(tmp_path / "b.json")]) == 0
    result = json.loads((tmp_path / "b.json").read_text())
    for key in ("params_m", "gmacs_224", "latency_ms_224_b1", "latency_ms_512_b1", "peak_rss_mb"):
        assert result[key] > 0


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(BPIMLError, match="not a student checkpoint"):
        load_predictor(tmp_path)


def test_predict_shards_fill_one_folder(checkpoint, toy_dataset, tmp_path):
    folder = str(toy_dataset.root / "Tp")
    out = tmp_path / "pred"
    for k in range(3):
        assert main(["predict", folder, "--model", str(checkpoint), "-o", str(out), "--shard", f"{k}/3"]) == 0
    single = tmp_path / "single"
    assert main(["predict", folder, "--model", str(checkpoint), "-o", str(single)]) == 0
    names = sorted(p.name for p in single.glob("*.png"))
    assert names == sorted(p.name for p in out.glob("*.png"))
    assert json.loads((out / "scores.json").read_text()) == json.loads((single / "scores.json").read_text())


def test_predict_processes_fill_one_folder_as_one_process_does(checkpoint, toy_dataset, tmp_path, capsys):
    folder = str(toy_dataset.root / "Tp")
    single, several = tmp_path / "single", tmp_path / "several"
    assert main(["predict", folder, "--model", str(checkpoint), "-o", str(single), "--processes", "1"]) == 0
    assert main(["predict", folder, "--model", str(checkpoint), "-o", str(several), "--processes", "2",
                 "--threads", "2"]) == 0
    assert "(2 processes)" in capsys.readouterr().out
    assert sorted(p.name for p in several.glob("*.png")) == sorted(p.name for p in single.glob("*.png"))
    assert json.loads((several / "scores.json").read_text()) == json.loads((single / "scores.json").read_text())


def test_processes_auto_splits_only_large_cpu_jobs_outside_shards(monkeypatch):
    from boxpromptiml.cli.common import AUTO_ITEMS_PER_PROCESS, processes_for

    monkeypatch.setattr("os.cpu_count", lambda: 2)
    large = 2 * AUTO_ITEMS_PER_PROCESS
    assert processes_for("auto", large, on_cpu=True, sharded=False) == 2
    assert processes_for("auto", large - 1, on_cpu=True, sharded=False) == 1
    assert processes_for("auto", large, on_cpu=False, sharded=False) == 1  # one GPU is not split
    assert processes_for("auto", large, on_cpu=True, sharded=True) == 1
    assert processes_for("3", 2, on_cpu=True, sharded=False) == 2  # never more processes than photos
    with pytest.raises(BPIMLError, match="--processes"):
        processes_for("many", 10, on_cpu=True, sharded=False)
    with pytest.raises(BPIMLError, match="at least 1"):
        processes_for("0", 10, on_cpu=True, sharded=False)
    # large photos weigh more: few of them can be worth two processes, and a given number is kept as it is
    assert processes_for("auto", 20, on_cpu=True, sharded=False, work=large) == 2
    assert processes_for("auto", large, on_cpu=True, sharded=False, work=large - 1) == 1
    # a command with its own threshold (bpiml predict's)
    assert processes_for("auto", 100, on_cpu=True, sharded=False, per_process=50) == 2
    assert processes_for("auto", 99, on_cpu=True, sharded=False, per_process=50) == 1
    assert processes_for("1", 20, on_cpu=True, sharded=False, work=1000) == 1


def test_photo_work_counts_large_photos_as_several_from_their_headers(tmp_path):
    from PIL import Image

    from boxpromptiml.deployment.predict_files import photo_work

    common, large = tmp_path / "common.png", tmp_path / "large.png"
    Image.new("RGB", (1024, 768)).save(common)
    Image.new("RGB", (4000, 3000)).save(large)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    assert photo_work([common]) == pytest.approx(1.0)
    assert 2 < photo_work([large]) < 3  # about 2.5 photos of 1024 x 768: what a second process saves on it
    assert photo_work([broken, tmp_path / "missing.jpg"]) == pytest.approx(2.0)  # predicting them reports why
    assert photo_work([large] * 100, enough=20) < 23  # a large folder is not read through


def test_a_failing_process_is_a_clear_error(tmp_path):
    from boxpromptiml.data.images import read_image
    from boxpromptiml.sharding import run_in_processes

    missing = tmp_path / "missing.jpg"
    with pytest.raises(BPIMLError, match=r"process \d of 2 failed: .*missing\.jpg"):
        run_in_processes(read_image, (missing,), 2)


def test_glob_through_a_symlink_loop_takes_each_file_once(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    from PIL import Image

    Image.new("RGB", (8, 8)).save(folder / "a.png")
    (folder / "loop").symlink_to(folder, target_is_directory=True)
    paths = expand_inputs([str(folder / "**" / "*.png")])
    assert [p.name for p in paths] == ["a.png"]


def test_overlays_of_large_photos_are_shrunk_for_viewing():
    from boxpromptiml.deployment.predict_files import shrunk_for_viewing

    image = np.full((300, 500, 3), 200, np.uint8)
    prob = np.zeros((300, 500), np.float16)
    prob[100:200, 200:300] = 1.0
    small_image, small_prob = shrunk_for_viewing(image, prob, side=100)
    assert small_image.shape == (60, 100, 3) and small_prob.shape == (60, 100)
    assert small_prob[30, 50] == 1.0 and small_prob[5, 5] == 0.0
    same_image, same_prob = shrunk_for_viewing(image, prob, side=500)
    assert same_image is image and same_prob is prob



@pytest.mark.parametrize("height, width", [(1700, 2300), (1001, 3001)])
def test_a_large_map_is_shrunk_in_bands_close_to_one_area_resize(height, width):
    """Shrinking a map for an overlay averages along rows a band at a time, then along columns (no full-size
    8-bit copy); area averaging is separable, so it must match one area resize of the whole 8-bit map."""
    import cv2

    from boxpromptiml.data.images import probability_to_uint8
    from boxpromptiml.deployment.predict_files import shrunk_map

    coarse = np.random.default_rng(0).random((height // 40, width // 40)).astype(np.float32)
    prob = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_LINEAR).astype(np.float16)
    small = shrunk_map(prob, side=500)
    expected = cv2.resize(probability_to_uint8(prob), small.shape[::-1], interpolation=cv2.INTER_AREA) / 255.0
    assert small.dtype == np.float32 and max(small.shape) == 500
    assert np.abs(small - expected).max() <= 1.01 / 255  # one grey level of rounding at most


def test_the_readme_export_then_predict_pair_works_on_a_run_folder(checkpoint, toy_dataset, tmp_path):
    """`bpiml export --model RUN` then `bpiml predict --model RUN --backend onnx`, as README writes them."""
    import shutil

    run = tmp_path / "mine"
    shutil.copytree(checkpoint, run / "best")
    assert main(["export", "--model", str(run)]) == 0
    assert (run / "best" / "student.onnx").is_file()
    assert main(["predict", str(toy_dataset.tampered[0].image), "--model", str(run), "--backend", "onnx",
                 "-o", str(tmp_path / "pred")]) == 0
    assert main(["export"]) == 2  # the shipped model sits in the package: an --onnx file is needed
