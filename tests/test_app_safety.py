"""The web app stays local and bounded (issue 24 items 1-3, 6): host names, cross-site writes, security headers,
upload and pixel caps enforced before the work, downloads of files with any name."""

import asyncio
import io
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi import HTTPException  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from starlette.requests import Request  # noqa: E402

from boxpromptiml.app.safety import (  # noqa: E402
    APP_POLICY,
    REPORT_POLICY,
    allowed_host_names,
    content_disposition,
    host_name,
    read_capped,
    refusal,
)
from boxpromptiml.app.server import ServeSettings, create_app  # noqa: E402
from boxpromptiml.data.toy import make_toy_dataset  # noqa: E402


@pytest.fixture
def toy(tmp_path):
    make_toy_dataset(tmp_path / "toy", n_tampered=2, n_authentic=1, size=(96, 128))
    return tmp_path / "toy"


def _client(toy: Path, base_url: str = "http://127.0.0.1:8765", **settings) -> TestClient:
    return TestClient(create_app(ServeSettings(dataset=(str(toy),), teacher="grabcut", **settings)), base_url=base_url)


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_host_names_are_parsed_with_ports_and_brackets():
    assert host_name("LocalHost:8765") == "localhost" and host_name("[::1]:8765") == "::1"
    assert host_name("127.0.0.1") == "127.0.0.1" and host_name("::1") == "::1"
    assert allowed_host_names("0.0.0.0") == {"localhost", "127.0.0.1", "::1"}
    assert "box.lan" in allowed_host_names("box.lan") and "me.example" in allowed_host_names("::", ("Me.Example",))


def test_refusal_rules():
    local = allowed_host_names("127.0.0.1")
    assert refusal("evil.example.com:8765", None, None, "GET", local) is not None  # DNS rebinding
    assert refusal("127.0.0.1:8765", None, None, "GET", local) is None
    assert refusal("127.0.0.1:8765", "http://evil.example.com", None, "GET", local) is None  # reads: the Host rule
    assert refusal("127.0.0.1:8765", "http://evil.example.com", None, "POST", local) is not None
    assert refusal("127.0.0.1:8765", "http://127.0.0.1:9999", None, "POST", local) is not None  # another local app
    assert refusal("127.0.0.1:8765", "null", None, "POST", local) is not None  # sandboxed frames, file: pages
    assert refusal("127.0.0.1:8765", None, "cross-site", "POST", local) is not None
    assert refusal("127.0.0.1:8765", "http://127.0.0.1:8765", "same-origin", "POST", local) is None
    assert refusal("127.0.0.1:8765", None, None, "POST", local) is None  # curl and scripts send no Origin


def test_a_foreign_host_name_is_refused_and_local_ones_answer(toy):
    for base in ("http://127.0.0.1:8765", "http://localhost:8765", "http://[::1]:8765"):
        assert _client(toy, base).get("/api/info").status_code == 200, base
    response = _client(toy, "http://evil.example.com:8765").get("/api/info")
    assert response.status_code == 403 and "--allow-host" in response.json()["detail"]
    assert _client(toy, "http://evil.example.com:8765").get("/api/dataset/image",
                                                              params={"name": "Tp/toy_tp_000.png"}).status_code == 403
    allowed = _client(toy, "http://box.lan:8765", host="0.0.0.0", allow_hosts=("box.lan",))
    assert allowed.get("/api/info").status_code == 200


def test_cross_site_writes_are_refused(toy, tmp_path):
    boxes = tmp_path / "boxes.json"
    client = TestClient(create_app(ServeSettings(dataset=(str(toy),), boxes=str(boxes), teacher="grabcut")),
                        base_url="http://127.0.0.1:8765")
    body = {"name": "Tp/toy_tp_000.png", "boxes": [[1, 1, 20, 20]], "seconds": 3}
    foreign = client.post("/api/annotate/save", json=body, headers={"Origin": "http://evil.example.com"})
    assert foreign.status_code == 403 and not boxes.exists()
    no_cors = client.post("/api/inspect", files={"file": ("a.png", _png(np.zeros((8, 8, 3), np.uint8)), "image/png")},
                          headers={"Sec-Fetch-Site": "cross-site"})
    assert no_cors.status_code == 403
    own = client.post("/api/annotate/save", json=body, headers={"Origin": "http://127.0.0.1:8765"})
    assert own.status_code == 200 and boxes.exists()


def test_every_answer_carries_the_security_headers(toy):
    client = _client(toy)
    for path in ("/", "/api/info", "/static/main.js"):
        headers = client.get(path).headers
        assert headers["content-security-policy"] == APP_POLICY and "frame-ancestors 'none'" in APP_POLICY
        assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
    html = client.get("/").text
    assert "<script>" not in html and " style=" not in html and "onclick" not in html  # the policy allows no inline


def test_files_with_non_latin_names_download(toy):
    client = _client(toy)
    data = (toy / "Tp" / "toy_tp_000.png").read_bytes()
    for name in ("фото.png", "写真.png", 'quote".png'):
        key = client.post("/api/inspect", files={"file": (name, data, "image/png")}).json()["id"]
        for path, params in (("map.png", {"full": True}), ("mask.png", {}), ("report.html", {})):
            response = client.get(f"/api/inspect/{key}/{path}", params=params)
            assert response.status_code == 200, (name, path, response.text)
            assert response.headers["content-disposition"].startswith("attachment; filename=")
        assert response.headers["content-security-policy"] == REPORT_POLICY
    assert content_disposition("фото_map.png") == (
        "attachment; filename=\"_____map.png\"; filename*=UTF-8''%D1%84%D0%BE%D1%82%D0%BE_map.png")
    assert content_disposition("photo_map.png") == 'attachment; filename="photo_map.png"'


def _run(coroutine):
    """Run a coroutine on its own loop in another thread (a browser test may leave this thread's loop running)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _streaming_request(chunks: list[bytes], consumed: list[int], headers: list[tuple[bytes, bytes]] = ()) -> Request:
    async def receive():
        if consumed[0] < len(chunks):
            consumed[0] += 1
            return {"type": "http.request", "body": chunks[consumed[0] - 1], "more_body": consumed[0] < len(chunks)}
        return {"type": "http.disconnect"}

    return Request({"type": "http", "method": "POST", "headers": list(headers)}, receive)


def test_a_chunked_upload_is_read_only_up_to_the_cap():
    chunks, consumed = [b"x" * 65536] * 1000, [0]  # 64 MB announced by no Content-Length
    with pytest.raises(HTTPException) as refused:
        _run(read_capped(_streaming_request(chunks, consumed), max_bytes=256 * 1024))
    assert refused.value.status_code == 413 and "upload limit" in refused.value.detail
    assert consumed[0] <= 6  # 256 KB + the form's slack, not 64 MB
    declared, none_read = [0], [b"x"]
    with pytest.raises(HTTPException):
        _run(read_capped(_streaming_request(none_read, declared, [(b"content-length", b"999999999")]), 1024))
    assert declared[0] == 0  # refused on the declared length, before reading anything
    small = [0]
    assert _run(read_capped(_streaming_request([b"ab", b"cd"], small), 1024)) == b"abcd"


def test_an_image_whose_size_the_header_does_not_give_is_refused_undecoded(toy, tmp_path, monkeypatch):
    hdr = tmp_path / "x.hdr"
    assert cv2.imwrite(str(hdr), np.ones((40, 40, 3), np.float32))  # Radiance HDR: OpenCV reads it, Pillow cannot
    import boxpromptiml.app.state as state

    def no_decoding(*args, **kwargs):
        raise AssertionError("the upload was decoded before its size was known")

    monkeypatch.setattr(state, "read_image", no_decoding)
    response = _client(toy).post("/api/inspect", files={"file": ("renamed.png", hdr.read_bytes(), "image/png")})
    assert response.status_code == 415 and "header" in response.json()["detail"], response.text
    assert "renamed.png" in response.json()["detail"]


def test_a_declared_oversized_upload_is_refused_before_parsing(toy):
    client = _client(toy, max_upload_mb=0.05)
    response = client.post("/api/inspect", files={"file": ("big.png", os.urandom(200_000), "image/png")})
    assert response.status_code == 413 and "upload limit" in response.json()["detail"]


def test_a_photo_over_the_analysis_size_is_analysed_shrunk_and_mapped_at_full_size(toy):
    client = _client(toy, analysis_pixels=3_000)
    data = (toy / "Tp" / "toy_tp_000.png").read_bytes()  # 128 x 96
    result = client.post("/api/inspect", files={"file": ("photo.png", data, "image/png")}).json()
    assert (result["width"], result["height"]) == (128, 96)
    assert result["analysed_width"] * result["analysed_height"] <= 3_000 and result["analysed_width"] < 128
    full = client.get(f"/api/inspect/{result['id']}/map.png", params={"full": True})
    assert Image.open(io.BytesIO(full.content)).size == (128, 96)


def test_requests_take_turns_in_order_and_a_gone_client_is_not_analysed():
    from boxpromptiml.app.state import run_in_turn

    class Client:
        def __init__(self, gone: bool) -> None:
            self.gone = gone

        async def is_disconnected(self) -> bool:
            return self.gone

    ran = []

    async def scenario():
        turn = asyncio.Lock()
        jobs = [run_in_turn(turn, Client(gone=i == 1), lambda i=i: ran.append(i) or i) for i in range(4)]
        return await asyncio.gather(*jobs, return_exceptions=True)

    results = _run(scenario())
    assert ran == [0, 2, 3]  # in arrival order, the gone client skipped
    assert isinstance(results[1], HTTPException) and results[1].status_code == 499


def test_images_listed_from_another_folder_are_named_without_server_paths(toy, tmp_path):
    lists = tmp_path / "lists" / "deep"
    lists.mkdir(parents=True)
    up = Path("..") / ".." / "toy"  # the list two folders away from its images, as split/val.json is
    listing = [[str(up / "Tp" / p.name), str(up / "Gt" / p.name)] for p in sorted((toy / "Tp").iterdir())]
    (lists / "val.json").write_text(json.dumps(listing))
    client = TestClient(create_app(ServeSettings(dataset=(str(lists / "val.json"),), teacher="grabcut")),
                        base_url="http://127.0.0.1:8765")
    names = [row["name"] for row in client.get("/api/dataset").json()["images"]]
    assert names and all(not n.startswith("/") and str(tmp_path) not in n for n in names), names
    assert client.get("/api/dataset/image", params={"name": names[0]}).status_code == 200
