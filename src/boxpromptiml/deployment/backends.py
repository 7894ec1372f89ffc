"""The backends that can run a student's network, by name (no heavy imports: the CLI lists them in --help).

Measured side by side in docs/results.md (`python -m benchmarks.backends`): speed next to the pixel F1 each gives.
"""

from __future__ import annotations

from ..devices import resolve_device
from ..errors import ConfigError

# name -> what it is; `bpiml predict --backend`, the app and the benchmarks choose from these
BACKENDS = {
    "torch": "PyTorch, float32 (any device)",
    "torch-bf16": "PyTorch under bfloat16 autocast (CPU)",
    "onnxruntime": "ONNX Runtime, float32 (CPU)",
    "openvino": "OpenVINO: bfloat16 on CPUs that compute it natively, else float32 (CPU)",
    "openvino-f32": "OpenVINO, float32 (CPU)",
}
BACKEND_ALIASES = {"onnx": "onnxruntime"}
AUTO = "auto"  # the default: openvino on the CPU when it is installed, else torch


def resolve_backend(backend: str, device: str = "auto") -> str:
    """The backend ``backend`` names (``auto``: openvino for the CPU if installed, else torch)."""
    backend = BACKEND_ALIASES.get(backend, backend)
    if backend == AUTO:
        if resolve_device(device).type != "cpu":
            return "torch"
        try:
            import openvino  # noqa: F401
        except ImportError:
            return "torch"
        return "openvino"
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; known: {AUTO}, {', '.join(BACKENDS)}")
    if not backend.startswith("torch") and resolve_device(device).type != "cpu":
        raise ConfigError(f"backend {backend} runs on the CPU only; use --backend torch for device {device}")
    return backend
