"""`bpiml serve`: every API endpoint, bad inputs, the atomic save, and the pieces behind them."""

from __future__ import annotations

import io
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from boxpromptiml.app.annotations import SECONDS_KEY, AnnotationFile, annotation_seconds  # noqa: E402
from boxpromptiml.app.interactive import BoxPrompter, propose_boxes  # noqa: E402
from boxpromptiml.app.server import ServeSettings, create_app, serve  # noqa: E402
from boxpromptiml.data import attach_boxes, load_dataset, read_coco_boxes  # noqa: E402
from boxpromptiml.data.samples import Box  # noqa: E402
from boxpromptiml.data.toy import make_toy_dataset  # noqa: E402


@pytest.fixture
def toy(tmp_path):
    make_toy_dataset(tmp_path / "toy", n_tampered=3, n_authentic=1, size=(96, 128))
    return tmp_path / "toy"


def client_for(toy: Path, boxes: Path | None, **settings) -> TestClient:
    return TestClient(create_app(ServeSettings(dataset=(str(toy),), boxes=str(boxes) if boxes else None,
                                               teacher="grabcut", **settings)), base_url="http://127.0.0.1:8765")


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_listing_info_and_dataset_images(toy, tmp_path):
    client = client_for(toy, tmp_path / "boxes.json")
    info = client.get("/api/info").json()
    assert info["annotate"] and info["images"] == 4 and info["first_to_do"] == "Tp/toy_tp_000.png"
    names = [row["name"] for row in client.get("/api/dataset").json()["images"]]
    assert names[:1] == ["Tp/toy_tp_000.png"] and "Au/toy_au_000.png" in names
    response = client.get("/api/dataset/image", params={"name": names[0]})
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    assert (response.headers["x-image-width"], response.headers["x-image-height"]) == ("128", "96")
    assert Image.open(io.BytesIO(response.content)).size == (128, 96)
    page = client.get("/")
    assert page.status_code == 200 and "annotate-canvas" in page.text
    assert client.get("/static/main.js").status_code == 200


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "Tp/../../../etc/passwd", "Gt/toy_tp_000.png",
                                  "..%2F..%2Fetc%2Fpasswd", ""])
def test_names_outside_the_listing_are_not_served(toy, tmp_path, name):
    client = client_for(toy, tmp_path / "boxes.json")
    for path in ("/api/dataset/image", "/api/annotate", "/api/annotate/proposals"):
        response = client.get(path, params={"name": name})
        assert response.status_code == 404, (path, response.text)
    assert client.post("/api/annotate/save", json={"name": name, "boxes": []}).status_code == 404
    assert client.post("/api/inspect/dataset", params={"name": name}).status_code == 404


def test_a_symlink_escaping_the_dataset_folder_is_refused(toy, tmp_path):
    secret = tmp_path / "outside" / "secret.png"
    secret.parent.mkdir()
    secret.write_bytes(png_bytes(np.zeros((8, 8, 3), np.uint8)))
    os.symlink(secret, toy / "Tp" / "escape.png")
    client = client_for(toy, tmp_path / "boxes.json")
    listed = [row["name"] for row in client.get("/api/dataset").json()["images"] if "secret" in row["name"]]
    assert len(listed) == 1
    for name in (*listed, "Tp/escape.png"):
        assert client.get("/api/dataset/image", params={"name": name}).status_code in (403, 404)
    response = client.get("/api/dataset/image", params={"name": listed[0]})
    assert response.status_code == 403 and "outside the dataset folder" in response.json()["detail"]


def test_annotate_pseudo_mask_and_atomic_save(toy, tmp_path, monkeypatch):
    boxes_file = tmp_path / "boxes.json"
    client = client_for(toy, boxes_file)
    name = "Tp/toy_tp_001.png"
    entry = client.get("/api/annotate", params={"name": name}).json()
    assert entry == {"name": name, "boxes": [], "accepted": False, "seconds": None, "width": 128, "height": 96,
                     "index": 1, "count": 4}
    response = client.post("/api/annotate/pseudo", json={"name": name, "boxes": [[20, 10, 80, 60]]})
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    mask = np.array(Image.open(io.BytesIO(response.content)))
    assert mask.shape == (96, 128) and mask[10:60, 20:80].max() > 0 and mask[70:, :].max() == 0  # clipped to box
    assert client.post("/api/annotate/pseudo", json={"name": name, "boxes": []}).status_code == 200

    saved = client.post("/api/annotate/save", json={"name": name, "boxes": [[80, 60, 20, 10], [500, 500, 600, 600]],
                                                    "seconds": 6.5}).json()
    assert saved["saved"]["boxes"] == [[20.0, 10.0, 80.0, 60.0]]  # corners ordered, the box off the image dropped
    assert saved["stats"] == {"images": 4, "accepted": 1, "timed": 1, "mean_seconds": 6.5}
    coco = json.loads(boxes_file.read_text())
    assert coco["images"][0][SECONDS_KEY] == 6.5 and coco["annotations"][0]["bbox"] == [20.0, 10.0, 60.0, 50.0]
    # the written file is what bpiml pseudo-label and train read
    dataset = attach_boxes(load_dataset(toy), read_coco_boxes(boxes_file))
    assert [s.boxes for s in dataset if s.boxes] == [(Box(20, 10, 80, 60),)]
    # the file's own timings are what costs annotation (the adaptation curve's app-timed minutes)
    client.post("/api/annotate/save", json={"name": "Tp/toy_tp_002.png", "boxes": [[1, 1, 9, 9]], "seconds": 3.5})
    assert sorted(annotation_seconds(json.loads(boxes_file.read_text()))) == [3.5, 6.5]
    assert annotation_seconds({"images": [{"id": 1}, {SECONDS_KEY: "x"}, {SECONDS_KEY: float("nan")}]}) == []

    # a crash in the middle of a save leaves the previous file whole, and no temporary file behind
    before = boxes_file.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        client.post("/api/annotate/save", json={"name": "Tp/toy_tp_002.png", "boxes": [[1, 1, 30, 30]]})
    monkeypatch.undo()
    assert boxes_file.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_save_rejects_bad_boxes_and_times(toy, tmp_path):
    client = client_for(toy, tmp_path / "boxes.json")
    name = "Tp/toy_tp_000.png"
    assert client.post("/api/annotate/save", json={"name": name, "boxes": [[1, 2, 3]]}).status_code == 422
    bad = client.post("/api/annotate/save", content=b'{"name": "Tp/toy_tp_000.png", "boxes": [[1, 2, NaN, 4]]}',
                      headers={"content-type": "application/json"})
    assert bad.status_code == 422
    assert client.post("/api/annotate/save", json={"name": name, "boxes": [], "seconds": -1}).status_code == 422
    assert not (tmp_path / "boxes.json").exists()


def test_resume_keeps_other_entries_and_opens_the_first_image_without_boxes(toy, tmp_path):
    boxes_file = tmp_path / "boxes.json"
    boxes_file.write_text(json.dumps({
        "info": {"by": "someone"},
        "images": [{"id": 7, "file_name": "Tp/toy_tp_000.png", "width": 128, "height": 96},
                   {"id": 9, "file_name": "elsewhere/other.png", "width": 10, "height": 10}],
        "annotations": [{"id": 3, "image_id": 7, "bbox": [1, 2, 30, 40], "category_id": 1},
                        {"id": 4, "image_id": 9, "bbox": [0, 0, 5, 5], "category_id": 1}],
        "categories": [{"id": 1, "name": "tampered"}]}))
    client = client_for(toy, boxes_file)
    assert client.get("/api/info").json()["first_to_do"] == "Tp/toy_tp_001.png"
    assert client.get("/api/annotate", params={"name": "Tp/toy_tp_000.png"}).json()["boxes"] == [[1, 2, 31, 42]]
    client.post("/api/annotate/save", json={"name": "Tp/toy_tp_001.png", "boxes": [[5, 5, 50, 50]], "seconds": 2})
    coco = json.loads(boxes_file.read_text())
    assert coco["info"] == {"by": "someone"}
    assert {a["id"]: a["image_id"] for a in coco["annotations"]}[4] == 9  # the foreign image's box is kept
    assert [i["file_name"] for i in coco["images"]] == ["Tp/toy_tp_000.png", "elsewhere/other.png",
                                                         "Tp/toy_tp_001.png"]
    # an authentic image accepted with no box counts as done
    client.post("/api/annotate/save", json={"name": "Tp/toy_tp_002.png", "boxes": [], "seconds": 1})
    assert client.get("/api/info").json()["first_to_do"] == "Au/toy_au_000.png"


def test_annotation_needs_a_box_file(toy):
    client = client_for(toy, None)
    assert client.get("/api/info").json()["annotate"] is False
    assert client.get("/api/annotate", params={"name": "Tp/toy_tp_000.png"}).status_code == 409
    assert client.post("/api/annotate/pseudo", json={"name": "Tp/toy_tp_000.png", "boxes": []}).status_code == 409


def test_inspect_upload_and_its_downloads(toy, tmp_path):
    client = client_for(toy, None)
    data = (toy / "Tp" / "toy_tp_000.png").read_bytes()
    result = client.post("/api/inspect", files={"file": ("photo.png", data, "image/png")}).json()
    assert (result["width"], result["height"], result["name"]) == (128, 96, "photo.png")
    assert 0 <= result["score"] <= 1 and "threshold" in result["verdict"]
    key = result["id"]
    assert Image.open(io.BytesIO(client.get(f"/api/inspect/{key}/image").content)).size == (128, 96)
    full = client.get(f"/api/inspect/{key}/map.png", params={"full": True})
    assert Image.open(io.BytesIO(full.content)).size == (128, 96) and "photo_map.png" in full.headers[
        "content-disposition"]
    mask = np.array(Image.open(io.BytesIO(client.get(f"/api/inspect/{key}/mask.png",
                                                     params={"threshold": 0.01}).content)))
    assert set(np.unique(mask)) <= {0, 255}
    report = client.get(f"/api/inspect/{key}/report.html").text
    assert "photo.png" in report and "data:image/jpeg;base64," in report and "false alarms" in report
    assert "student.encoder" in report
    from_dataset = client.post("/api/inspect/dataset", params={"name": "Au/toy_au_000.png"}).json()
    assert from_dataset["name"] == "Au/toy_au_000.png"
    assert client.get("/api/inspect/nope/image").status_code == 404
    proposals = client.get("/api/annotate/proposals", params={"name": "Tp/toy_tp_000.png", "threshold": 0.01})
    assert proposals.status_code == 200 and isinstance(proposals.json()["boxes"], list)


def test_bad_uploads_get_clear_errors(toy, tmp_path):
    client = client_for(toy, None, max_upload_mb=0.05, max_pixels=10_000)
    cases = {
        "notes.txt": (b"hello", 415, "not an image file"),
        "fake.png": (b"not an image at all", 415, "fake.png"),
        "cut.png": (png_bytes(np.full((60, 60, 3), 90, np.uint8))[:60], 415, "cut.png"),
        "wide.png": (png_bytes(np.zeros((10, 2000), np.uint8)), 413, "megapixels"),
        "big.png": (os.urandom(80_000), 413, "upload limit"),
    }
    for name, (data, status, words) in cases.items():
        response = client.post("/api/inspect", files={"file": (name, data, "image/png")})
        assert response.status_code == status, (name, response.text)
        assert words in response.json()["detail"], (name, response.json())
        assert "bpiml-serve-" not in response.json()["detail"]  # names the user's file, not our temporary copy


def test_annotation_file_refuses_a_broken_file(toy, tmp_path):
    from boxpromptiml.errors import DataError

    broken = tmp_path / "boxes.json"
    broken.write_text('{"images": [}')
    with pytest.raises(DataError):
        AnnotationFile(broken, load_dataset(toy))
    assert broken.read_text() == '{"images": [}'  # never overwritten


def test_box_prompter_encodes_each_image_once(toy):
    """With the SAM teacher, a new box on the same image runs only the decoder; an unchanged box is not redone."""
    from boxpromptiml.data.images import read_image
    from boxpromptiml.teachers import create_teacher

    teacher = create_teacher("litemedsam")
    calls = {"encode": 0}
    encode = teacher.encode

    def counting(canvas):
        calls["encode"] += 1
        return encode(canvas)

    teacher.encode = counting
    prompter = BoxPrompter(teacher, work_side=64)
    image = read_image(toy / "Tp" / "toy_tp_000.png")
    first, scale = prompter.pseudo_mask("a", lambda: image, [Box(10, 10, 60, 50)])
    assert scale == 0.5 and first.shape == (48, 64)
    both, _ = prompter.pseudo_mask("a", lambda: image, [Box(10, 10, 60, 50), Box(70, 40, 120, 90)])
    assert calls["encode"] == 1 and np.all(both >= first)
    prompter.pseudo_mask("b", lambda: image[::-1].copy(), [Box(10, 10, 60, 50)])
    assert calls["encode"] == 2


def test_propose_boxes_finds_regions_largest_first():
    probability = np.zeros((100, 100), np.float32)
    probability[10:20, 10:20] = 0.9
    probability[50:90, 40:80] = 0.8
    probability[0, 99] = 0.99  # a speck
    assert propose_boxes(probability, 0.5) == [Box(40, 50, 80, 90), Box(10, 10, 20, 20)]
    assert propose_boxes(np.zeros((10, 10), np.float32)) == []


def test_serve_warns_when_listening_beyond_this_machine(toy, monkeypatch, caplog, capsys):
    import uvicorn

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, log_level: seen.update(host=host, port=port))
    with caplog.at_level(logging.WARNING):
        serve(ServeSettings(dataset=(str(toy),), host="0.0.0.0", port=9999, teacher="grabcut"))
    assert seen == {"host": "0.0.0.0", "port": 9999}
    assert "no login" in caplog.text and "http://127.0.0.1:9999/" in capsys.readouterr().out
    caplog.clear()
    serve(ServeSettings(dataset=(str(toy),), teacher="grabcut"))
    assert "no login" not in caplog.text


def test_predict_writes_the_same_report(toy, tmp_path):
    from boxpromptiml.cli import main

    out = tmp_path / "out"
    assert main(["predict", str(toy / "Tp" / "toy_tp_000.png"), "-o", str(out), "--report", "--threads", "1"]) == 0
    page = (out / "reports" / "toy_tp_000.html").read_text()
    assert "toy_tp_000.png" in page and "data:image/png;base64," in page and "Image 128 x 96 pixels" in page


def test_two_servers_on_one_box_file_keep_each_others_work(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    make_toy_dataset(tmp_path / "toy", n_tampered=10, n_authentic=2, size=(64, 80))
    boxes = tmp_path / "boxes.json"
    first, second = client_for(tmp_path / "toy", boxes), client_for(tmp_path / "toy", boxes)
    names = [row["name"] for row in first.get("/api/dataset").json()["images"]]
    for name in names[:10]:
        assert first.post("/api/annotate/save", json={"name": name, "boxes": [[1, 1, 30, 30]]}).status_code == 200
    assert second.post("/api/annotate/save", json={"name": names[10], "boxes": []}).status_code == 200
    coco = json.loads(boxes.read_text())
    assert len(coco["images"]) == 11 and len(coco["annotations"]) == 10  # the second server merged, not replaced
    assert second.get("/api/annotate", params={"name": names[0]}).json()["boxes"] == [[1, 1, 30, 30]]
    assert first.get("/api/info").json()["stats"]["accepted"] == 11  # the first sees the second's save
    # both at once, from many threads: every save lands
    jobs = [(client, name) for name in names for client in (first, second)]
    with ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(lambda job: job[0].post("/api/annotate/save", json={
            "name": job[1], "boxes": [[2, 2, 20, 20]]}).status_code, jobs))
    assert set(codes) == {200}
    coco = json.loads(boxes.read_text())
    assert len(coco["images"]) == 12 and len(coco["annotations"]) == 12


def test_the_report_cites_the_file_model_and_software_and_shows_no_server_path(toy, tmp_path):
    import hashlib

    photo = np.asarray(Image.open(toy / "Tp" / "toy_tp_000.png").convert("RGB"))
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0131] = "CameraMaker", "Model 7", "PhotoEditor 2.0"
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, "JPEG", quality=85, exif=exif)
    data = buffer.getvalue()
    client = client_for(toy, None)
    key = client.post("/api/inspect", files={"file": ("фото.jpg", data, "image/jpeg")}).json()["id"]
    report = client.get(f"/api/inspect/{key}/report.html").text
    assert hashlib.sha256(data).hexdigest() in report and f"{len(data):,} bytes" in report
    assert "CameraMaker" in report and "PhotoEditor 2.0" in report and "JPEG tables" in report
    assert "weights SHA-256" in report and "boxpromptiml" in report and "torch" in report
    assert str(tmp_path) not in report and "/site-packages/" not in report
    info = client.get("/api/info").json()
    assert str(tmp_path) not in json.dumps(info)


def test_the_report_bar_follows_the_verdict():
    from boxpromptiml.deployment.report import render_report
    from boxpromptiml.evaluation.calibration import ImageDecision

    decision = ImageDecision(threshold=0.5, target_false_alarm_rate=0.05, false_alarm_rate=0.05, n_authentic=40,
                             detection_rate=0.5, n_tampered=40, calibrated_on="val")
    image, prob = np.zeros((32, 32, 3), np.uint8), np.zeros((32, 32), np.float32)
    common = {"image_name": "x.png", "model": {"model": "/home/someone/models/run"}, "decision": decision}
    assert 'class="verdict clear"' in render_report(image, prob, 0.2, **common)
    flagged = render_report(image, prob, 0.9, **common)
    assert 'class="verdict flagged"' in flagged and "/home/someone" not in flagged
    assert 'class="verdict none"' in render_report(image, prob, 0.9, **{**common, "decision": None})


def test_prefetch_encodes_the_next_images_once_in_the_background(toy, tmp_path):
    client = client_for(toy, tmp_path / "boxes.json")
    state = client.app.state.bpiml
    names = ["Tp/toy_tp_000.png", "Tp/toy_tp_001.png"]
    response = client.post("/api/annotate/prefetch", json={"names": names})
    assert response.status_code == 202 and response.json()["queued"] == names
    assert client.post("/api/annotate/prefetch", json={"names": names}).json()["queued"] == []  # once each
    state.background.submit(lambda: None).result(timeout=60)  # the worker has done the two before it
    assert set(state.prompter._images) == set(names)  # at working size, ready for the first box
    assert client.post("/api/annotate/prefetch", json={"names": ["../etc/passwd"]}).status_code == 404


def _wait_for_job(client, states=("done", "failed", "cancelled"), timeout=600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get("/api/train").json()["job"]
        if job["state"] in states:
            return job
        time.sleep(0.5)
    raise AssertionError(f"the job did not finish: {job}")


def test_train_on_my_boxes_adapts_a_model_that_inspect_can_use(toy, tmp_path):
    client = client_for(toy, tmp_path / "boxes.json")
    assert client.get("/api/train").json()["job"] is None
    refused = client.post("/api/train", json={"epochs": 1, "samples_per_epoch": 8})
    assert refused.status_code == 409 and "no saved box" in refused.json()["detail"]  # nothing annotated yet
    assert client.get("/api/train").json()["job"] is None
    for name in ("Tp/toy_tp_000.png", "Tp/toy_tp_001.png", "Tp/toy_tp_002.png"):
        client.post("/api/annotate/save", json={"name": name, "boxes": [[20, 15, 90, 70]], "seconds": 5})
    started = client.post("/api/train", json={"epochs": 1, "samples_per_epoch": 8})
    assert started.status_code == 202, started.text
    again = client.post("/api/train", json={"epochs": 1, "samples_per_epoch": 8})
    assert again.status_code == 409 and "already running" in again.json()["detail"]  # one job at a time
    job = _wait_for_job(client)
    assert job["state"] == "done", job
    assert job["progress"]["pseudo_masks"] == 3 and job["progress"]["epochs_done"] == 1
    assert "no image threshold" in job["message"]  # toy boxes, no masks to validate on: said plainly
    optim = json.loads((tmp_path / "boxes-training" / job["name"] / "run" / "config.json").read_text())["optim"]
    assert optim["init"] == "shipped" and optim["lr"] == 3e-4 and optim["freeze_batchnorm"]  # the chosen budget
    models = client.get("/api/models").json()["models"]
    assert [m["id"] for m in models] == ["shipped", job["name"]]
    data = (toy / "Tp" / "toy_tp_000.png").read_bytes()
    adapted = client.post("/api/inspect", params={"model": job["name"]},
                          files={"file": ("photo.png", data, "image/png")}).json()
    shipped = client.post("/api/inspect", files={"file": ("photo.png", data, "image/png")}).json()
    assert adapted["model"] == job["name"] and shipped["model"] == "shipped"
    assert client.post("/api/inspect", params={"model": "job-nope"},
                       files={"file": ("photo.png", data, "image/png")}).status_code == 404
    report = client.get(f"/api/inspect/{adapted['id']}/report.html").text
    assert "run" in report and "weights SHA-256" in report
    proposals = client.get("/api/annotate/proposals", params={"name": "Tp/toy_tp_000.png", "threshold": 0.01})
    assert proposals.json()["model"] == job["name"]  # proposals come from the adapted model now
    deadline = time.monotonic() + 120
    while not (order := client.get("/api/annotate/order", params={"by": "disagreement"}).json())["ready"]:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert order["model"] == job["name"] and len(order["names"]) == 4


def test_a_training_job_can_be_cancelled_and_survives_a_new_server(toy, tmp_path):
    client = client_for(toy, tmp_path / "boxes.json")
    client.post("/api/annotate/save", json={"name": "Tp/toy_tp_000.png", "boxes": [[20, 15, 90, 70]]})
    assert client.post("/api/train", json={"epochs": 50, "samples_per_epoch": 20_000}).status_code == 202
    job = client.post("/api/train/cancel").json()
    assert job["state"] == "cancelled"
    assert client.post("/api/train/cancel").status_code == 409
    again = client_for(toy, tmp_path / "boxes.json")  # a reload, or a restarted server, finds the job on disk
    assert again.get("/api/train").json()["job"]["state"] == "cancelled"


def test_annotation_orders_put_what_teaches_most_first(toy, tmp_path):
    from boxpromptiml.app.ordering import disagreement, ranked, uncertainty

    sure, coin = np.zeros((50, 50), np.float32), np.full((50, 50), 0.5, np.float32)
    assert uncertainty(sure) == 0 and uncertainty(coin) == pytest.approx(1.0)
    spot = sure.copy()
    spot[:5, :5] = 0.5  # one doubtful region in a clean map still counts
    assert uncertainty(spot) > 0.9 and disagreement(sure, spot) == pytest.approx(0.5)
    assert ranked(["a", "b", "c"], {"b": 0.9, "a": 0.1}) == ["b", "a", "c"]
    client = client_for(toy, tmp_path / "boxes.json")
    assert client.get("/api/annotate/order", params={"by": "dataset"}).json()["ready"]
    assert client.get("/api/annotate/order", params={"by": "disagreement"}).status_code == 409  # no adapted model
    assert client.get("/api/annotate/order", params={"by": "nonsense"}).status_code == 422
    deadline = time.monotonic() + 120
    while not (order := client.get("/api/annotate/order", params={"by": "uncertainty"}).json())["ready"]:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert sorted(order["names"]) == sorted(client.get("/api/dataset").json()["images"][i]["name"] for i in range(4))
    scores = client.app.state.bpiml.order_scores[("uncertainty", "shipped")]
    assert [scores[n] for n in order["names"]] == sorted(scores.values(), reverse=True)
