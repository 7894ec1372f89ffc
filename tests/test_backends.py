"""Backends of the predictor: parity with PyTorch, graphs made once and never stale, tiles in batches, folders
predicted with decoding and writing beside the network."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from boxpromptiml.cli import main
from boxpromptiml.deployment.backends import resolve_backend
from boxpromptiml.deployment.graph import (
    CHECKPOINT_METADATA,
    GRAPH_REVISION,
    OPENVINO_NAME,
    REVISION_METADATA,
    checkpoint_sha256,
    onnx_metadata,
    openvino_metadata,
)
from boxpromptiml.deployment.openvino_backend import OpenVinoSession, openvino_core
from boxpromptiml.deployment.predict_files import predict_files
from boxpromptiml.deployment.predictor import load_predictor
from boxpromptiml.deployment.shipped import shipped_model_path
from boxpromptiml.errors import ConfigError
from boxpromptiml.student.inference import predict_native
from boxpromptiml.student.model import StudentConfig, build_student
from boxpromptiml.training.checkpoint import STUDENT_CONFIG, save_checkpoint

pytest.importorskip("openvino")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def native_checkpoint(tmp_path_factory):
    """A small native-resolution student with the JPEG branch (its rounding is the delicate part of a graph)."""
    torch.manual_seed(0)
    model = build_student(StudentConfig(encoder_init="random", input_size=64, resolution="native",
                                        compression_traces=True, max_side=128))
    return save_checkpoint(tmp_path_factory.mktemp("native") / "best", model, {"epoch": 0})


def photo(height: int = 150, width: int = 200) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize("backend, tolerance", [("onnxruntime", 1e-4), ("openvino-f32", 1e-4),
                                                ("torch-bf16", 0.1), ("openvino", 0.1)])
def test_every_backend_gives_the_maps_of_pytorch(native_checkpoint, backend, tolerance):
    image = photo()  # larger than max_side: tiled
    expected = load_predictor(native_checkpoint, "torch").predict(image)
    got = load_predictor(native_checkpoint, backend).predict(image)
    assert got.probability.shape == image.shape[:2] and got.probability.dtype == np.float32
    difference = np.abs(got.probability - expected.probability)
    assert difference.max() < tolerance, (backend, difference.max())
    if tolerance > 1e-3:  # bfloat16: far apart in a few pixels at most, close on average
        assert difference.mean() < 0.02


def test_a_graph_is_made_once_and_never_served_stale(native_checkpoint, tmp_path, graph_cache):
    folder = tmp_path / "model"
    folder.mkdir()
    for name in ("model.safetensors", STUDENT_CONFIG, "state.json"):
        (folder / name).write_bytes((native_checkpoint / name).read_bytes())
    assert main(["export", "--model", str(folder)]) == 0  # student.onnx in the folder, recording its checkpoint
    assert onnx_metadata(folder / "student.onnx")[CHECKPOINT_METADATA] == checkpoint_sha256(folder)
    image = photo(90, 100)
    before = load_predictor(folder, "onnxruntime").predict(image).probability
    made = sorted(graph_cache.rglob("*.onnx"))
    load_predictor(folder, "onnxruntime")
    assert sorted(graph_cache.rglob("*.onnx")) == made  # the folder's own export was used, nothing new made
    # calibration moves the pixel threshold the graph applies: the folder's export is now stale
    config = json.loads((folder / STUDENT_CONFIG).read_text())
    (folder / STUDENT_CONFIG).write_text(json.dumps({**config, "pixel_threshold": 0.2}))
    after = load_predictor(folder, "onnxruntime").predict(image).probability
    expected = load_predictor(folder, "torch").predict(image).probability
    np.testing.assert_allclose(after, expected, atol=1e-4)
    assert not np.allclose(after, before, atol=1e-3)
    assert len(sorted(graph_cache.rglob("*.onnx"))) == len(made) + 1  # made once, into the cache
    ov_map = load_predictor(folder, "openvino-f32").predict(image).probability
    np.testing.assert_allclose(ov_map, expected, atol=1e-4)


def test_a_graph_of_an_older_exporter_is_made_again_once(native_checkpoint, tmp_path, graph_cache):
    import onnx

    folder = tmp_path / "model"
    folder.mkdir()
    for name in ("model.safetensors", STUDENT_CONFIG, "state.json"):
        (folder / name).write_bytes((native_checkpoint / name).read_bytes())
    assert main(["export", "--model", str(folder)]) == 0
    assert onnx_metadata(folder / "student.onnx")[REVISION_METADATA] == GRAPH_REVISION
    made = sorted(graph_cache.rglob("*.onnx"))
    load_predictor(folder, "onnxruntime")
    assert sorted(graph_cache.rglob("*.onnx")) == made  # current: the folder's own export is used
    proto = onnx.load(str(folder / "student.onnx"))  # as an exporter before revisions were recorded wrote it
    kept = [p for p in proto.metadata_props if p.key != REVISION_METADATA]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    onnx.save(proto, str(folder / "student.onnx"))
    cached = graph_cache / "onnx" / f"{checkpoint_sha256(folder)[:32]}-r{GRAPH_REVISION}.onnx"
    cached.unlink(missing_ok=True)  # other tests of these weights may have made it already
    image = photo(90, 100)
    got = load_predictor(folder, "onnxruntime").predict(image).probability
    assert cached.is_file()  # the folder's older graph was passed over and a current one made
    np.testing.assert_allclose(got, load_predictor(folder, "torch").predict(image).probability, atol=1e-4)


def test_the_shipped_openvino_model_is_made_from_the_shipped_checkpoint():
    folder = shipped_model_path()
    if not (folder / "model.safetensors").is_file():
        pytest.skip("no shipped model in this installation")
    assert (folder / OPENVINO_NAME).is_file(), "ship with write_shipped_graph(): the default backend needs it"
    recorded = openvino_metadata(openvino_core().read_model(str(folder / OPENVINO_NAME)))
    assert recorded[CHECKPOINT_METADATA] == checkpoint_sha256(folder), "stale: run write_shipped_graph()"
    assert recorded[REVISION_METADATA] == GRAPH_REVISION, "made by an older exporter: run write_shipped_graph()"


def test_backend_errors_are_clear(native_checkpoint, tmp_path):
    with pytest.raises(ConfigError, match="unknown backend"):
        resolve_backend("tensorrt")
    assert resolve_backend("onnx") == "onnxruntime"
    assert resolve_backend("auto", "cpu") == "openvino"
    with pytest.raises(ConfigError, match="not found"):
        load_predictor(tmp_path / "missing", "openvino")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="not a student checkpoint"):
        load_predictor(tmp_path / "empty", "openvino")
    main(["export", "--model", str(native_checkpoint), "--onnx", str(tmp_path / "m.onnx")])
    with pytest.raises(ConfigError, match="needs a run or checkpoint folder"):
        load_predictor(tmp_path / "m.onnx", "torch")
    assert load_predictor(tmp_path / "m.onnx", "openvino").predict(photo(40, 50)).probability.shape == (40, 50)


def test_tiles_in_batches_give_the_map_of_tiles_one_by_one():
    calls = []

    def runner(images):  # a fake network: a smooth function of the pixels, so blending errors would show
        calls.append(images.shape[0])
        return images.mean(dim=1, keepdim=True), images.amax(dim=(1, 2, 3))

    image = photo(300, 520)
    one, score_one = predict_native(runner, image, max_side=128, batch=1)
    calls_one = len(calls)
    many, score_many = predict_native(runner, image, max_side=128, batch=4)
    np.testing.assert_allclose(many, one, atol=1e-6)
    assert score_many == pytest.approx(score_one)
    assert len(calls) - calls_one < calls_one and max(calls) == 4
    expected = image.mean(axis=2) / 255.0  # blending the tiles of a per-pixel function returns that function
    np.testing.assert_allclose(one, expected, atol=1e-5)


def test_a_folder_is_predicted_with_a_bad_file_skipped(native_checkpoint, tmp_path):
    from boxpromptiml.data.images import write_image

    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(4):
        write_image(folder / f"p{i}.png", photo(60 + i, 70))
    (folder / "p2.png").write_bytes(b"not a png")  # one bad file in the middle of the folder
    predictor = load_predictor(native_checkpoint, "openvino")
    run = predict_files(predictor, [str(folder)], tmp_path / "out", masks=True)
    assert sorted(run.results) == ["p0", "p1", "p3"] and list(run.failures) == ["p2"]
    assert "p2.png" in run.failures["p2"]
    assert sorted(p.stem for p in (tmp_path / "out").glob("*.png")) == ["p0", "p1", "p3"]
    assert sorted(p.stem for p in (tmp_path / "out" / "masks").glob("*.png")) == ["p0", "p1", "p3"]
    scores = json.loads((tmp_path / "out" / "scores.json").read_text())
    assert scores == pytest.approx(run.results)  # written exactly as they were decided on


def test_openvino_compiles_a_shape_met_twice_for_itself_with_the_same_maps(native_checkpoint, monkeypatch):
    import boxpromptiml.deployment.openvino_backend as backend
    from boxpromptiml.deployment.graph import openvino_model
    from boxpromptiml.deployment.openvino_backend import STATIC_AFTER, OpenVinoSession

    monkeypatch.setattr(backend, "STATIC_MIN_PIXELS", 64 * 96)  # the test's inputs are small
    session = OpenVinoSession(openvino_model(native_checkpoint), threads=1, precision="f32")
    images = np.random.default_rng(3).random((2, 3, 64, 96), dtype=np.float32)
    first, _ = session.run(images)  # the graph for any shape
    assert session.static_shapes == 0
    for _ in range(STATIC_AFTER - 1):
        again, _ = session.run(images)
    assert session.static_shapes == 1  # this shape now has a graph of its own ...
    np.testing.assert_allclose(again, first, atol=1e-5)  # ... which computes the same maps
    other, _ = session.run(images[:1])  # another shape, met once: the graph for any shape again
    assert other.shape == (1, 1, 64, 96) and session.static_shapes == 1
    session.run(images[:1])  # met twice: a second one-shape graph, the first one kept beside it
    for _ in range(3):
        session.run(images)
        session.run(images[:1])
    assert session.static_shapes == 2  # two shapes alternating are not compiled again
    for _ in range(3):
        session.run(images[:, :, :32, :64])
    assert session.static_shapes == 2  # an input under STATIC_MIN_PIXELS is never worth a graph of its own


def test_openvino_falls_back_to_the_graph_for_any_shape_when_a_one_shape_graph_fails(native_checkpoint, monkeypatch,
                                                                                    caplog):
    import boxpromptiml.deployment.openvino_backend as backend
    from boxpromptiml.deployment.graph import openvino_model

    monkeypatch.setattr(backend, "STATIC_MIN_PIXELS", 1)
    session = backend.OpenVinoSession(openvino_model(native_checkpoint), threads=1, precision="f32")
    images = np.random.default_rng(4).random((1, 3, 64, 64), dtype=np.float32)
    expected, _ = session.run(images)

    def broken(*_args, **_kwargs):
        raise RuntimeError("no kernel for this shape")

    monkeypatch.setattr(session._core, "compile_model", broken)
    for _ in range(3):  # met again and again: tried once, then the graph for any shape, with a warning
        got, _ = session.run(images)
        np.testing.assert_allclose(got, expected, atol=1e-6)
    assert session.static_shapes == 0
    assert sum("could not compile" in record.getMessage() for record in caplog.records) == 1


def test_openvino_threads_are_not_pinned_so_one_thread_shards_share_the_cores(native_checkpoint):
    # pinned, two shards of one thread each were both put on the first core and ran at half speed
    from boxpromptiml.deployment.graph import openvino_model
    from boxpromptiml.deployment.openvino_backend import OpenVinoSession

    session = OpenVinoSession(openvino_model(native_checkpoint), threads=1, precision="f32")
    assert session.compiled.get_property("ENABLE_CPU_PINNING") is False
    assert session.compiled.get_property("INFERENCE_NUM_THREADS") == 1


# A process with two OpenVINO Cores freed in the order they were made was left on a freed alternate signal stack,
# and the SIGCHLD of a DataLoader worker then killed it (SIGSEGV): the training tests crashed after the teachers'.
ALTERNATE_STACK_PROBE = """
import ctypes, gc, sys
from boxpromptiml.deployment.graph import openvino_model
from boxpromptiml.deployment.openvino_backend import OpenVinoSession

class Stack(ctypes.Structure):
    _fields_ = [("sp", ctypes.c_void_p), ("flags", ctypes.c_int), ("size", ctypes.c_size_t)]

def alternate_stack():
    stack = Stack()
    assert ctypes.CDLL(None).sigaltstack(None, ctypes.byref(stack)) == 0
    return stack.sp or 0

def mapped(address):
    for line in open("/proc/self/maps"):
        low, high = (int(x, 16) for x in line.split()[0].split("-"))
        if low <= address < high:
            return True
    return False

graph = openvino_model(sys.argv[1])
first = OpenVinoSession(graph, threads=1)
second = OpenVinoSession(graph, threads=1, precision="f32")
held = alternate_stack()
del first
gc.collect()
del second
gc.collect()
now = alternate_stack()
print(hex(held), hex(now), mapped(now))
assert now == held and mapped(now), "the main thread's alternate signal stack moved or was freed"
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_openvino_sessions_share_one_core_and_leave_the_signal_stack_alone(native_checkpoint, graph_cache):
    from boxpromptiml.deployment.graph import openvino_model

    done = subprocess.run([sys.executable, "-X", "faulthandler", "-c", ALTERNATE_STACK_PROBE, str(native_checkpoint)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    session = OpenVinoSession(openvino_model(native_checkpoint), threads=1)
    assert session._core is openvino_core()
