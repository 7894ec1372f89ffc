"""An OpenVINO session of a student graph (deployment/graph.py makes it): the fastest CPU backend measured here.

OpenVINO's CPU plugin runs in bfloat16 by itself on CPUs with native bf16 (AVX512-BF16 or AMX) and in float32
elsewhere; ``precision="f32"`` forces float32 everywhere. Inputs of any multiple-of-32 size are accepted. The graph
is compiled for inputs of any shape; an input shape met ``STATIC_AFTER`` times (a folder of one camera's photos,
the tiles of a large photo), of ``STATIC_MIN_PIXELS`` or more, gets a graph compiled for that shape alone, which runs
10-20% faster on this CPU (benchmarks/predict_speed.py) for 0.2-0.4 s of compiling. The last ``STATIC_KEPT`` such
graphs are kept (portrait and landscape photos of one camera alternate without compiling again).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..student.config import StudentConfig
from .graph import cache_dir, onnx_metadata, openvino_metadata, student_config_of

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "f32", "bf16")
STATIC_AFTER = 2  # an input shape met this many times is run by a graph compiled for it alone
STATIC_KEPT = 2  # one-shape graphs kept, the most recently used
# ... and only for inputs of at least this many pixels: a small input gains milliseconds, and the 512 px tiles of a
# photo over 40 MP keep the memory they had (a one-shape graph adds 50-100 MB to the 12000 x 9000 photo's 1.4 GB peak)
STATIC_MIN_PIXELS = 600_000


_core = None
_core_lock = threading.Lock()


def openvino_core():
    """The one OpenVINO ``Core`` of this process, made on first use and never released.

    Every compile goes through it (students, teachers' encoders and decoders). Why one: a Core's first CPU compile
    swaps the calling thread's alternate signal stack for its own and puts the previous one back when the Core is
    freed. Two Cores freed in the order they were made leave the thread on a freed stack, and the next signal
    handled there (a DataLoader worker's SIGCHLD at the end of an epoch) killed the process with SIGSEGV. Tests:
    test_backends.py."""
    global _core
    with _core_lock:
        if _core is None:
            import openvino as ov

            _core = ov.Core()
        return _core


def cpu_properties(threads: int | None, precision: str) -> dict[str, object]:
    """How a network is compiled for the CPU here (students and teachers' encoders alike): one request at a time
    (latency), ``threads`` threads (None: OpenVINO's choice), ``precision`` "auto" (bf16 on CPUs with native bf16,
    float32 elsewhere) or forced."""
    # no pinning: OpenVINO pins its threads to cores counted from the first, so two shards of one thread each ran on
    # one core (each 2.7 s per teacher encoding instead of 1.4 s); unpinned threads are no slower in one process
    properties: dict[str, object] = {"PERFORMANCE_HINT": "LATENCY", "ENABLE_CPU_PINNING": False}
    if threads:
        properties["INFERENCE_NUM_THREADS"] = int(threads)
    if precision != "auto":
        properties["INFERENCE_PRECISION_HINT"] = precision
    return properties


def compile_properties(threads: int | None, precision: str) -> dict[str, object]:
    """``cpu_properties`` plus the on-disk cache of compiled kernels (``$BPIML_CACHE/openvino-kernels``), for every
    network this package compiles: a later start loads them (LiteMedSAM's encoder 0.2 against 0.5 s)."""
    return {**cpu_properties(threads, precision), "CACHE_DIR": str(cache_dir() / "openvino-kernels")}


class OpenVinoSession:
    def __init__(self, path: Path, threads: int | None = None, precision: str = "auto") -> None:
        try:
            import openvino  # noqa: F401 - only to name what is missing
        except ImportError as exc:
            raise ConfigError("the openvino backend needs OpenVINO: pip install openvino") from exc
        if precision not in PRECISIONS:
            raise ConfigError(f"unknown OpenVINO precision {precision!r}; known: {', '.join(PRECISIONS)}")
        core = openvino_core()
        try:
            model = core.read_model(str(path))
        except Exception as exc:  # noqa: BLE001 - any reader failure names the file
            raise ConfigError(f"cannot load OpenVINO model {path}: {exc}") from exc
        # an ONNX file keeps our metadata in its own properties, an OpenVINO model in its runtime info
        metadata = onnx_metadata(path) if Path(path).suffix == ".onnx" else openvino_metadata(model)
        self.student_config: StudentConfig = student_config_of(metadata)
        self.has_score = len(model.outputs) > 1
        properties = compile_properties(threads, precision)
        self._core, self._model, self._properties = core, model, properties
        self.compiled = core.compile_model(model, "CPU", properties)
        self.precision = str(self.compiled.get_property("INFERENCE_PRECISION_HINT"))
        self._lock = threading.Lock()  # one infer request, used by one caller at a time
        self._request = self.compiled.create_infer_request()
        self._shapes_seen: dict[tuple[int, ...], int] = {}
        self._static: OrderedDict[tuple[int, ...], object] = OrderedDict()  # shape -> its infer request, LRU last
        self.static_shapes = 0  # graphs compiled for one shape so far

    def _request_for(self, shape: tuple[int, ...]):
        """The infer request for inputs of ``shape``: the one-shape graph's when the shape is met often enough."""
        if shape in self._static:
            self._static.move_to_end(shape)
            return self._static[shape]
        seen = self._shapes_seen[shape] = self._shapes_seen.get(shape, 0) + 1
        if len(self._shapes_seen) > 64:  # a long folder of mixed sizes: forget the counts, not the graphs
            self._shapes_seen = {shape: seen}
        if seen < STATIC_AFTER or shape[0] * shape[-2] * shape[-1] < STATIC_MIN_PIXELS:
            return self._request
        while len(self._static) >= STATIC_KEPT:  # free the least recently used before compiling the next
            self._static.popitem(last=False)
        try:
            model = self._model.clone()
            model.reshape({0: list(shape)})
            compiled = self._core.compile_model(model, "CPU", self._properties)
        except Exception as exc:  # noqa: BLE001 - a speed-up, never a reason to fail: the graph for any shape runs
            log.warning("OpenVINO could not compile the graph for inputs of shape %s (%s); using the graph for any "
                        "shape", shape, exc)
            self._shapes_seen[shape] = -(1 << 30)  # not tried again
            return self._request
        self._static[shape] = compiled.create_infer_request()
        self.static_shapes += 1
        return self._static[shape]

    def run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities (and scores) for B x 3 x H x W float images in [0, 1]."""
        images = np.ascontiguousarray(images, dtype=np.float32)
        with self._lock:
            request = self._request_for(tuple(images.shape))
            request.infer({0: images})
            outputs = [request.get_output_tensor(i).data.copy() for i in range(len(self.compiled.outputs))]
        return outputs[0], (outputs[1] if self.has_score else None)
