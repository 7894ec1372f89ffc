"""Issue 23's tools for traces, not objects: scores by group and area, the authentic false-alarm measures,
JPEG re-saving before evaluation, the copy-move branch, plain clones and the false-alarm loss term."""

import numpy as np
import pytest
import torch

from boxpromptiml.data.samples import Label
from boxpromptiml.errors import ConfigError
from boxpromptiml.evaluation.evaluate import Evaluator, evaluate_predictor
from boxpromptiml.evaluation.groups import GroupSpec, group_scores
from boxpromptiml.student.config import StudentConfig
from boxpromptiml.student.model import build_student
from boxpromptiml.student.similarity import SelfSimilarity, near_positions
from boxpromptiml.synthesis.clones import CLONE_SHAPES, clone
from boxpromptiml.synthesis.online import OnlineSynthesisConfig, forge_online
from boxpromptiml.training.config import LossConfig
from boxpromptiml.training.losses import DistillationLoss


def _square_mask(size: int, side: int) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    mask[:side, :side] = True
    return mask


def test_groups_split_scores_by_name_and_by_tampered_area():
    evaluator = Evaluator(0.5, groups=(GroupSpec.parse("spliced=^Sp_D_"), GroupSpec.parse("copy-moved=^Sp_S_")))
    small, large = _square_mask(100, 10), _square_mask(100, 50)  # 1% and 25% of the image
    evaluator.add("Sp_D_a", Label.TAMPERED, small.astype(np.float32), small)  # perfect
    evaluator.add("Sp_S_b", Label.TAMPERED, np.zeros((100, 100), np.float32), large)  # missed
    authentic = np.zeros((100, 100), np.float32)
    authentic[0, :20] = 0.9  # 20 of 10,000 pixels marked
    evaluator.add("Au_c", Label.AUTHENTIC, authentic)
    evaluator.add("Au_d", Label.AUTHENTIC, np.zeros((100, 100), np.float32))
    report = evaluator.report()
    rows = {g.group: g for g in report.groups}
    assert rows["spliced"].pixel_f1 == 1.0 and rows["spliced"].missed_rate == 0.0
    assert rows["copy-moved"].pixel_f1 == 0.0 and rows["copy-moved"].missed_rate == 1.0
    assert rows["area 0-2%"].n_tampered == 1 and rows["area 0-2%"].pixel_f1 == 1.0
    assert rows["area 15-100%"].n_tampered == 1 and rows["area 15-100%"].pixel_f1 == 0.0
    assert "area 2-5%" not in rows  # no image there
    # the spliced image's score (1.0) beats both authentic ones (0.9, 0.0); the missed copy (0.0) beats neither
    assert rows["spliced"].image_auc == 1.0 and rows["copy-moved"].image_auc == 0.25
    assert report.authentic_marked_rate == 0.5
    assert report.authentic_marked_area_median == pytest.approx(0.001)
    assert "copy-moved" in report.format_table() and report.to_dict()["groups"][0]["group"] == "spliced"


def test_group_specs_are_checked():
    with pytest.raises(ConfigError, match="NAME=REGEX"):
        GroupSpec.parse("no-equals-sign")
    with pytest.raises(ConfigError, match="regular expression"):
        GroupSpec.parse("bad=(")
    assert group_scores([], (GroupSpec.parse("x=y"),)) == []


def test_resave_jpeg_re_encodes_every_image_before_prediction(toy_dataset):
    seen = []

    class Prediction:
        def __init__(self, image):
            self.probability = np.zeros(image.shape[:2], np.float32)
            self.score = 0.0

    def predict(image):
        seen.append(image)
        return Prediction(image)

    from boxpromptiml.data.degrade import jpeg_recompress
    from boxpromptiml.data.images import read_image

    report, _ = evaluate_predictor(toy_dataset, predict, resave_jpeg=90)
    assert report.resave_jpeg == 90 and len(seen) == len(toy_dataset)
    first = read_image(toy_dataset.samples[0].image)
    np.testing.assert_array_equal(seen[0], jpeg_recompress(first, 90))
    assert not np.array_equal(seen[0], first)


def test_self_similarity_finds_the_copied_position_and_ignores_neighbours():
    torch.manual_seed(0)
    branch = SelfSimilarity(in_channels=8, dim=8, top_k=4, exclude_radius=1)
    with torch.no_grad():
        branch.project.weight.copy_(torch.eye(8)[:, :, None, None])
        branch.project.bias.zero_()
    features = torch.randn(1, 8, 6, 6)
    features[0, :, 0, 0] = features[0, :, 4, 5]  # position (0, 0) is a copy of (4, 5)
    features[0, :, 0, 1] = features[0, :, 0, 0]  # ... and its neighbour repeats it, which must not count
    scores = {}  # the sorted best-match profile that enters the 1x1 conv
    branch.encode[0].register_forward_hook(lambda module, inputs, output: scores.update(profile=inputs[0]))
    out = branch(features)
    assert out.shape == (1, branch.out_channels, 6, 6)
    profile = scores["profile"][0]  # top_k x h x w, descending
    assert torch.allclose(profile[0, 0, 0], torch.tensor(1.0), atol=1e-5)  # its copy far away
    assert torch.allclose(profile[0, 4, 5], torch.tensor(1.0), atol=1e-5)
    assert profile[0, 3, 3] < 0.99  # an ordinary position has no perfect match
    assert bool((profile[:-1] >= profile[1:] - 1e-6).all())  # sorted
    near = near_positions(3, 3, 1, torch.device("cpu"))
    assert near.shape == (9, 9) and bool(near.diagonal().all()) and not bool(near[0, 8])


def test_self_similarity_pads_tiny_grids():
    branch = SelfSimilarity(in_channels=4, top_k=8)
    assert branch(torch.randn(2, 4, 2, 2)).shape == (2, branch.out_channels, 2, 2)


def test_student_with_the_copy_move_branch_predicts_any_size():
    model = build_student(StudentConfig(encoder_init="random", resolution="native", self_similarity=True)).eval()
    assert model.similarity is not None
    with torch.no_grad():
        assert model(torch.rand(1, 3, 96, 160)).shape == (1, 1, 96, 160)
    plain = build_student(StudentConfig(encoder_init="random"))
    assert plain.similarity is None
    assert sum(p.numel() for p in model.parameters()) - sum(p.numel() for p in plain.parameters()) < 50_000


@pytest.mark.parametrize("shape", CLONE_SHAPES)
def test_a_clone_copies_pixels_of_the_photo_and_leaves_the_rest_untouched(shape):
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    forgery = None
    while forgery is None:
        forgery = clone(image, rng, shape)
    changed = np.any(forgery.image != image, axis=2)
    assert forgery.mask.any() and not changed[~forgery.mask].any()  # outside the copy: the photo as it was
    assert changed[forgery.mask].mean() > 0.5
    assert forgery.record["shape"] == shape


def test_online_forgeries_include_clones_when_asked():
    host = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    kinds = {forge_online(host, host, np.random.default_rng(seed), OnlineSynthesisConfig(clone_share=1.0))
             .record["kind"] for seed in range(5)}
    assert kinds == {"clone"}


def test_false_alarm_term_punishes_the_brightest_pixels_of_authentic_images_only():
    loss = DistillationLoss(LossConfig(bce=0.0, dice=0.0, false_alarm=1.0))
    logits = torch.full((2, 1, 10, 10), -10.0)
    logits[0, 0, 0, 0] = 10.0  # one confident pixel in image 0
    target, region = torch.zeros_like(logits), torch.ones_like(logits)
    total, terms = loss(logits, target, region, torch.tensor([0.0, 1.0]))
    assert terms["false_alarm"] == pytest.approx(1.0, abs=1e-3)  # top 1% of 100 pixels = that pixel
    _, terms = loss(logits, target, region, torch.tensor([1.0, 0.0]))  # image 0 tampered: not an alarm
    assert terms["false_alarm"] == pytest.approx(0.0, abs=1e-3)
    _, terms = loss(logits, target, region, torch.tensor([1.0, 1.0]))
    assert "false_alarm" not in terms


def test_a_run_with_the_copy_move_branch_clones_and_false_alarm_term_trains(prepared, tmp_path):
    from boxpromptiml.training import loop
    from boxpromptiml.training.checkpoint import load_student
    from boxpromptiml.training.config import TrainConfig

    config = TrainConfig.from_dict({
        "student": {"input_size": 64, "encoder_init": "random", "resolution": "native", "self_similarity": True},
        "data": {"train": [{"dataset": prepared["dataset"], "boxes": prepared["boxes"],
                            "pseudo_labels": prepared["pl"]}], "val": [prepared["dataset"]],
                 "synthetic": [prepared["dataset"]], "synthetic_fraction": 0.5, "synthetic_clones": 1.0},
        "loss": {"false_alarm": 0.5},
        "augment": {"jpeg": 1.0},
        "optim": {"epochs": 1, "samples_per_epoch": 16, "batch_size": 4, "workers": 0, "threads": 1},
    })
    loop.train(config, tmp_path / "run")
    row = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    header, values = row[0].split(","), row[1].split(",")
    assert float(values[header.index("false_alarm")]) > 0
    model, _ = load_student(tmp_path / "run")
    assert model.config.self_similarity and model.similarity is not None


def test_the_copy_move_branch_exports_to_onnx(tmp_path):
    pytest.importorskip("onnxscript")
    from boxpromptiml.deployment.export import export_onnx
    from boxpromptiml.deployment.predictor import Predictor

    torch.manual_seed(0)
    model = build_student(StudentConfig(encoder_init="random", input_size=64, resolution="native",
                                        self_similarity=True)).eval()
    assert export_onnx(model, tmp_path / "student.onnx") < 1e-4
    images = torch.rand(1, 3, 96, 128)  # another grid than the export's example
    got, _ = Predictor.from_onnx(tmp_path / "student.onnx").predict_batch(images)
    expected, _ = Predictor.from_student(model).predict_batch(images)
    assert (got - expected).abs().max() < 1e-4


def test_the_false_alarm_term_is_ramped_in_over_the_start_of_the_budget():
    loss = DistillationLoss(LossConfig(bce=0.0, dice=0.0, false_alarm=1.0, false_alarm_ramp=0.5))
    logits = torch.full((1, 1, 10, 10), 10.0)
    args = (logits, torch.zeros_like(logits), torch.ones_like(logits), torch.tensor([0.0]))
    assert float(loss(*args, progress=0.0)[0]) == 0.0
    assert float(loss(*args, progress=0.25)[0]) == pytest.approx(0.5, abs=1e-3)
    assert float(loss(*args, progress=0.9)[0]) == pytest.approx(1.0, abs=1e-3)
