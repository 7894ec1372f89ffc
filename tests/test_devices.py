"""Device choice and mixed precision: clear errors for absent devices, bf16 training on the CPU."""

import pytest
import torch

from boxpromptiml.devices import autocast, grad_scaler, resolve_device
from boxpromptiml.errors import ConfigError
from boxpromptiml.student.model import StudentConfig, build_student
from boxpromptiml.training.config import TrainConfig


def test_auto_and_cpu():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert resolve_device("auto").type == expected


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_absent_cuda_is_a_clear_error():
    with pytest.raises(ConfigError, match="CUDA is not available"):
        resolve_device("cuda:0")
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("tpu9")


def test_bf16_autocast_keeps_logits_finite():
    model = build_student(StudentConfig(encoder_init="random", input_size=64)).train()
    with autocast(torch.device("cpu"), "bf16"):
        logits = model(torch.rand(2, 3, 64, 64))
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all()
    assert not grad_scaler(torch.device("cpu"), "bf16").is_enabled()
    with pytest.raises(ConfigError):
        autocast(torch.device("cpu"), "fp8")


def test_precision_is_validated_and_device_is_an_invocation_setting():
    with pytest.raises(ConfigError, match="precision"):
        TrainConfig().override(["optim.precision=half"])
    from boxpromptiml.training.run_folder import INVOCATION_SETTINGS

    assert "device" in INVOCATION_SETTINGS and "precision" not in INVOCATION_SETTINGS


def test_pseudo_label_and_predict_take_a_device(toy_dataset, tmp_path):
    from boxpromptiml.cli import main

    boxes = tmp_path / "boxes.json"
    assert main(["boxes", "-d", str(toy_dataset.source), "-o", str(boxes)]) == 0
    assert main(["pseudo-label", "-d", str(toy_dataset.source), "--boxes", str(boxes), "--teacher", "box",
                 "--device", "cpu", "-o", str(tmp_path / "pl")]) == 0
    assert main(["pseudo-label", "-d", str(toy_dataset.source), "--boxes", str(boxes), "--teacher", "box",
                 "--device", "nonsense", "-o", str(tmp_path / "pl2")]) == 2


def test_bf16_on_a_cpu_without_native_support_is_warned_about(monkeypatch):
    from boxpromptiml import devices

    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: False)
    assert "6x slower" in devices.precision_warning(torch.device("cpu"), "bf16")
    assert devices.precision_warning(torch.device("cpu"), "fp32") is None
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: True)
    assert devices.precision_warning(torch.device("cpu"), "bf16") is None


def test_auto_precision_is_bf16_only_where_the_cpu_computes_it(monkeypatch):
    from boxpromptiml import devices

    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: True)
    assert devices.resolve_precision(torch.device("cpu"), "auto") == "bf16"
    assert devices.resolve_precision(torch.device("cpu"), "fp32") == "fp32"
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: False)
    assert devices.resolve_precision(torch.device("cpu"), "auto") == "fp32"
    assert devices.resolve_precision(torch.device("cuda"), "auto") == "fp32"
    assert TrainConfig().override(["optim.precision=auto"]).optim.precision == "auto"
