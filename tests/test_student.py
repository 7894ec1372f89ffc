"""Student: encoders, MGFM switches, shapes and gradients, pretrained initialisation, configs."""

import pytest
import torch

from boxpromptiml.errors import ConfigError
from boxpromptiml.student.encoders import ENCODERS, create_encoder
from boxpromptiml.student.model import Fusion, StudentConfig, build_student
from boxpromptiml.student.pretrained import initialise_encoder
from boxpromptiml.training.config import TrainConfig, load_config

VARIANTS = [
    dict(),
    dict(use_memory=False),
    dict(use_gates=False),
    dict(use_gates=False, use_memory=False),
    dict(fusion="fpn"),
    dict(image_head=True),
]


@pytest.mark.parametrize("encoder", ENCODERS.names())
def test_encoder_taps_match_feature_info(encoder):
    net = create_encoder(encoder).eval()
    taps = net(torch.rand(1, 3, 128, 96))
    assert [t.shape[1] for t in taps] == [f.channels for f in net.feature_info]
    assert [(128 // t.shape[2], 96 // t.shape[3]) for t in taps] == [(f.stride, f.stride) for f in net.feature_info]


@pytest.mark.parametrize("encoder", ENCODERS.names())
@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: ",".join(f"{k}={x}" for k, x in v.items()) or "mgfm")
def test_shapes_and_gradients(encoder, variant):
    model = build_student(StudentConfig(encoder=encoder, input_size=64, **variant))
    images = torch.rand(2, 3, 64, 64)
    logits = model(images)
    assert logits.shape == (2, 1, 64, 64) and torch.isfinite(logits).all()
    logits.mean().backward()
    grads = [p.grad for p in model.decoder.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    if variant.get("image_head"):
        _, score = model.forward_with_score(images)
        assert score.shape == (2,)


def test_mgfm_combination_rule():
    model = build_student(StudentConfig(input_size=64)).eval()
    decoder = model.decoder
    assert 0 < torch.sigmoid(decoder.alpha).item() < 1
    with torch.no_grad():
        decoder.alpha.fill_(50.0)  # a -> 1: only the gated base map remains
        full = model(torch.rand(1, 3, 64, 64))
    assert full.shape == (1, 1, 64, 64)
    no_memory = build_student(StudentConfig(input_size=64, use_memory=False))
    assert not hasattr(no_memory.decoder, "memory")
    assert build_student(StudentConfig(input_size=64, use_gates=False)).decoder.gates is None


def test_default_student_fits_the_paper_budget():
    model = build_student(StudentConfig())
    assert sum(p.numel() for p in model.parameters()) <= 6_000_000


def test_unknown_encoder_lists_known():
    with pytest.raises(ConfigError, match="known: tinyvit5m, efficientnet_lite0"):
        StudentConfig(encoder="resnet50")
    with pytest.raises(ConfigError, match="multiple of 32"):
        StudentConfig(input_size=100)


def test_tinyvit_init_from_litemedsam_reports_what_loaded():
    encoder = create_encoder("tinyvit5m")
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    report = initialise_encoder("tinyvit5m", encoder, "litemedsam")
    assert len(report.loaded) > 250
    assert report.kept_random == []
    changed = [k for k, v in encoder.state_dict().items() if not torch.equal(v, before[k])]
    assert "body.stages_2.blocks.0.attn.qkv.weight" in changed


def test_tinyvit_stem_starts_as_litemedsams_pointwise_stem():
    """LiteMedSAM's 1x1 stem kernels sit at the centre of timm's 3x3 kernels, zero elsewhere."""
    from boxpromptiml.teachers.checkpoints import litemedsam_weights_path, read_state_dict

    encoder = create_encoder("tinyvit5m")
    initialise_encoder("tinyvit5m", encoder, "litemedsam")
    source = read_state_dict(litemedsam_weights_path())
    for timm_name, litemedsam_name in (("conv1", "seq.0"), ("conv2", "seq.2")):
        kernel = encoder.body.patch_embed.get_submodule(timm_name).conv.weight.detach()
        pointwise = source[f"image_encoder.patch_embed.{litemedsam_name}.c.weight"]
        assert kernel.shape[2:] == (3, 3) and torch.equal(kernel[:, :, 1, 1], pointwise[:, :, 0, 0])
        kernel[:, :, 1, 1] = 0
        assert not kernel.any()


def test_efficientnet_init_from_imagenet_loads_everything():
    report = initialise_encoder("efficientnet_lite0", create_encoder("efficientnet_lite0"), "imagenet")
    assert report.kept_random == [] and len(report.loaded) > 200
    assert initialise_encoder("efficientnet_lite0", create_encoder("efficientnet_lite0"), "pretrained").source \
        == report.source  # "pretrained" picks each encoder's own weights
    with pytest.raises(ConfigError, match="no 'imagenet' weights for encoder 'tinyvit5m'"):
        initialise_encoder("tinyvit5m", create_encoder("tinyvit5m"), "imagenet")


def test_student_config_round_trip():
    config = StudentConfig(encoder="efficientnet_lite0", fusion=Fusion.FPN, use_memory=False)
    assert StudentConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="unknown student settings"):
        StudentConfig.from_dict({"encoder": "tinyvit5m", "depth": 3})


def test_train_config_yaml_and_overrides(tmp_path):
    (tmp_path / "c.yaml").write_text(
        "student: {encoder: efficientnet_lite0}\n"
        "optim: {epochs: 3, lr: 1e-3}\n"
        "data:\n  train: [{dataset: a.json, pseudo_labels: pl}]\n  val: [v.json]\n  supervision: full\n")
    config = load_config(tmp_path / "c.yaml", ["optim.batch_size=2", "student.use_gates=false"])
    assert config.student.encoder == "efficientnet_lite0" and not config.student.use_gates
    assert config.optim.epochs == 3 and config.optim.lr == 1e-3 and config.optim.batch_size == 2
    assert config.data.train[0].pseudo_labels == "pl" and config.data.val == ("v.json",)
    assert str(config.data.supervision) == "full"
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="unknown setting 'optim.lrr'"):
        config.override(["optim.lrr=1"])
    with pytest.raises(ConfigError, match="expected a number"):
        config.override(["optim.lr=fast"])
