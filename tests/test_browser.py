"""`bpiml serve` in a real headless Chromium (Debian's, driven by Playwright): draw a box with the mouse, see the
teacher's pseudo mask, save, and find the box in the COCO file; open a photo in Inspect and see its heat map.

Set BPIML_SCREENSHOTS=DIR to keep the screenshots of both views (README's pictures come from here).
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="Debian's chromium is not installed (.ci/run installs it)")
pytest.importorskip("playwright")
from playwright.sync_api import expect  # noqa: E402  (polls without eval: the app's CSP allows none)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Playwright's own browser download cannot work here: use Debian's chromium."""
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM), "args": ["--no-sandbox"]}


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Three demo forgeries of real photos (scikit-image's) as a Tp/ + Gt/ dataset."""
    from boxpromptiml.data.images import write_image
    from boxpromptiml.demo.photos import make_demo_images

    root = tmp_path_factory.mktemp("photos")
    for item in make_demo_images(3):
        write_image(root / "Tp" / f"{item.name}.png", item.image)
        write_image(root / "Gt" / f"{item.name}.png", item.mask.astype(np.uint8) * 255)
    return root


def _serve(dataset: Path, boxes: Path, **settings):
    """The app under uvicorn in a thread, on a pre-bound 127.0.0.1 socket; yields its URL, stops it after."""
    import uvicorn

    from boxpromptiml.app.server import ServeSettings, create_app

    app = create_app(ServeSettings(dataset=(str(dataset),), boxes=str(boxes), **settings))
    app.state.bpiml.warm_up()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    instance = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=instance.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not instance.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert instance.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    instance.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def server(photos, tmp_path_factory):
    """The app (default teacher, shipped student) on the demo photos."""
    boxes = tmp_path_factory.mktemp("boxes") / "boxes.json"
    for url in _serve(photos, boxes):
        yield {"url": url, "boxes": boxes, "photos": photos}


@pytest.fixture(scope="module")
def broken_server(tmp_path_factory):
    """Four tampered images, the first and the third unreadable (truncated), GrabCut as the (fast) teacher."""
    from boxpromptiml.data.images import write_image

    root = tmp_path_factory.mktemp("broken")
    rng = np.random.default_rng(0)
    for i in range(4):
        image = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
        mask = np.zeros((120, 160), np.uint8)
        mask[30:80, 40:110] = 255
        write_image(root / "Tp" / f"img{i}.png", image)
        write_image(root / "Gt" / f"img{i}.png", mask)
    for i in (0, 2):
        path = root / "Tp" / f"img{i}.png"
        path.write_bytes(path.read_bytes()[:80])
    boxes = tmp_path_factory.mktemp("broken-boxes") / "boxes.json"
    for url in _serve(root, boxes, teacher="grabcut"):
        yield {"url": url, "boxes": boxes}


def screenshot(page, name: str, tmp_path: Path) -> None:
    folder = Path(os.environ.get("BPIML_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / name), full_page=True)


def drag(page, selector: str, start: tuple[float, float], end: tuple[float, float]) -> None:
    """Press, move and release the mouse between two points given as fractions of the element's box."""
    box = page.locator(selector).bounding_box()
    x0, y0 = box["x"] + start[0] * box["width"], box["y"] + start[1] * box["height"]
    x1, y1 = box["x"] + end[0] * box["width"], box["y"] + end[1] * box["height"]
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x1, y1, steps=8)
    page.mouse.up()


def test_draw_a_box_see_the_pseudo_mask_and_save_it(page, server, tmp_path):
    page.set_viewport_size({"width": 1200, "height": 900})
    page.goto(server["url"] + "/?view=annotate")
    page.wait_for_selector("body[data-ready='1']")
    page.wait_for_selector("#annotate-canvas[data-mask-ready='0']")
    expect(page.locator("#image-name")).to_have_text(re.compile(r"^1 / 3"))
    drag(page, "#annotate-canvas", (0.25, 0.25), (0.6, 0.7))
    page.wait_for_selector("#annotate-canvas[data-mask-ready='1']", timeout=60_000)
    assert "pseudo mask in" in page.text_content("#annotate-status")
    # the mask is drawn: the canvas now differs from the photo alone inside the box
    green = page.evaluate("""() => {
        const c = document.getElementById('annotate-canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i + 1] > d[i] + 60 && d[i + 1] > d[i + 2] + 60) n++;
        return n; }""")
    assert green > 100
    screenshot(page, "app_annotate.png", tmp_path)

    page.keyboard.press("Enter")  # accept and go on
    expect(page.locator("#image-name")).to_have_text(re.compile(r"^2 / 3"))
    coco = json.loads(server["boxes"].read_text())
    (entry,) = coco["images"]
    (annotation,) = coco["annotations"]
    assert entry["file_name"].startswith("Tp/01_") and entry["bpiml_seconds"] > 0
    x, y, w, h = annotation["bbox"]
    width, height = entry["width"], entry["height"]
    assert abs(x - 0.25 * width) < 0.03 * width and abs(y - 0.25 * height) < 0.03 * height
    assert abs(w - 0.35 * width) < 0.03 * width and abs(h - 0.45 * height) < 0.03 * height
    assert "1 / 3 images done" in page.text_content("#stats")

    # keyboard: draw, undo (u), draw again, delete the selected box, go back (p)
    drag(page, "#annotate-canvas", (0.1, 0.1), (0.3, 0.3))
    page.wait_for_selector("#annotate-canvas[data-mask-ready='1']", timeout=60_000)
    assert page.evaluate("annotate.boxes.length") == 1
    page.keyboard.press("u")
    assert page.evaluate("annotate.boxes.length") == 0
    drag(page, "#annotate-canvas", (0.5, 0.5), (0.8, 0.8))
    drag(page, "#annotate-canvas", (0.65, 0.65), (0.55, 0.6))  # move it
    moved = page.evaluate("annotate.boxes[0]")
    assert moved[0] < 0.5 * page.evaluate("annotate.width")
    page.keyboard.press("Delete")
    assert page.evaluate("annotate.boxes.length") == 0
    page.keyboard.press("p")
    expect(page.locator("#image-name")).to_have_text(re.compile(r"^1 / 3"))
    assert page.evaluate("annotate.boxes.length") == 1  # the saved box comes back


def test_inspect_shows_the_heat_map(page, server, tmp_path):
    refused = []  # the page must work under its own content security policy
    page.on("console", lambda message: refused.append(message.text) if "Content Security Policy" in message.text
            else None)
    page.set_viewport_size({"width": 1200, "height": 900})
    page.goto(server["url"] + "/?view=inspect")
    page.wait_for_selector("body[data-ready='1']")
    photo = sorted((server["photos"] / "Tp").iterdir())[0]
    page.set_input_files("#file-input", str(photo))
    page.wait_for_selector("#inspect-canvas[data-rendered='1']", timeout=120_000)
    assert "image score" in page.text_content("#verdict")
    stats = page.evaluate("""() => {
        const c = document.getElementById('inspect-canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let min = 255, max = 0;
        for (let i = 0; i < d.length; i += 4) { min = Math.min(min, d[i]); max = Math.max(max, d[i]); }
        let mapMax = 0; for (const v of inspect.gray) mapMax = Math.max(mapMax, v);
        return {width: c.width, height: c.height, min, max, mapMax}; }""")
    assert stats["width"] > 100 and stats["max"] - stats["min"] > 50 and stats["mapMax"] > 0
    before = page.evaluate("document.getElementById('inspect-canvas').toDataURL()")
    page.select_option("#inspect-mode", "mask")
    page.fill("#threshold", "0.05")
    page.dispatch_event("#threshold", "input")
    assert page.evaluate("document.getElementById('inspect-canvas').toDataURL()") != before
    page.select_option("#inspect-mode", "heat")
    page.dispatch_event("#inspect-mode", "input")
    for link in ("#download-map", "#download-mask", "#download-report"):
        assert "disabled" not in page.get_attribute(link, "class")
    with page.expect_download() as download:
        page.click("#download-report")
    text = Path(download.value.path()).read_text()
    assert photo.name in text and "data:image/jpeg;base64," in text
    assert not refused, refused
    screenshot(page, "app_inspect.png", tmp_path)


def open_annotate(page, url: str, name: str | None = None, position: str | None = None) -> None:
    """Annotate in a 1200 x 900 page; with ``name``, go to that image (shown as ``position``, e.g. "2 / 4")."""
    page.set_viewport_size({"width": 1200, "height": 900})
    page.goto(url + "/?view=annotate")
    page.wait_for_selector("body[data-ready='1']")
    if name is not None:
        page.select_option("#goto", name)
        expect(page.locator("#image-name")).to_have_text(re.compile(f"^{position}"))


def test_unreadable_images_are_named_and_skipped_past(page, broken_server):
    open_annotate(page, broken_server["url"])
    error = page.locator("#annotate-error")
    expect(error).to_be_visible()  # the first image is unreadable: the page says so instead of staying blank
    expect(error).to_contain_text("cannot open Tp/img0.png")
    page.keyboard.press("n")
    expect(page.locator("#image-name")).to_have_text(re.compile(r"^2 / 4"))
    expect(page.locator("#annotate-canvas")).to_be_visible()
    page.keyboard.press("n")
    expect(error).to_contain_text("img2.png")
    page.keyboard.press("n")
    expect(page.locator("#image-name")).to_have_text(re.compile(r"^4 / 4"))
    options = page.locator("#goto option").all_text_contents()
    assert options[0].startswith("⚠") and options[2].startswith("⚠") and options[1].startswith("·"), options
    page.select_option("#goto", "Tp/img1.png")  # the go-to list reaches any image
    expect(page.locator("#image-name")).to_have_text(re.compile(r"^2 / 4"))


def test_quick_enters_do_not_accept_a_tampered_image_without_a_box(page, broken_server):
    open_annotate(page, broken_server["url"], "Tp/img3.png", "4 / 4")
    for _ in range(3):
        page.keyboard.press("Enter")
    expect(page.locator("#annotate-status")).to_contain_text("has no box")
    assert not broken_server["boxes"].exists() or "img3" not in broken_server["boxes"].read_text()
    page.wait_for_timeout(700)
    page.keyboard.press("Enter")  # deliberate: accepted without a box
    expect(page.locator("#annotate-status")).to_contain_text("saved Tp/img3.png: 0 box(es)")
    coco = json.loads(broken_server["boxes"].read_text())
    assert [e["file_name"] for e in coco["images"]] == ["Tp/img3.png"] and coco["annotations"] == []


def test_zoom_mask_toggle_help_and_a_box_inside_a_box(page, broken_server):
    open_annotate(page, broken_server["url"], "Tp/img1.png", "2 / 4")
    canvas = page.locator("#annotate-canvas")
    fitted = canvas.bounding_box()["width"]
    assert fitted > 600  # a 160 px image is shown fitted to the page, not tiny
    drag(page, "#annotate-canvas", (0.2, 0.2), (0.8, 0.8))
    page.wait_for_selector("#annotate-canvas[data-mask-ready='1']", timeout=60_000)
    page.keyboard.down("Alt")
    drag(page, "#annotate-canvas", (0.4, 0.4), (0.6, 0.6))  # inside the first box: a new box, not a move
    page.keyboard.up("Alt")
    assert page.evaluate("annotate.boxes.length") == 2
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -300)
    expect(page.locator("#zoom-value")).not_to_have_text("100%")
    assert canvas.bounding_box()["width"] > fitted * 1.2
    page.keyboard.press("0")
    expect(page.locator("#zoom-value")).to_have_text("100%")
    page.keyboard.press("m")
    assert page.evaluate("document.getElementById('show-mask').checked") is False
    page.keyboard.press("?")
    expect(page.locator("#help")).to_be_visible()
    expect(page.locator("#help")).to_contain_text("Alt + drag")
    page.keyboard.press("Escape")
    expect(page.locator("#help")).to_be_hidden()


def test_train_on_my_boxes_then_inspect_with_the_adapted_model(page, tmp_path_factory):
    """Draw boxes on 3 images, train with a tiny budget from the page, and see Inspect use the adapted model."""
    from boxpromptiml.data.toy import make_toy_dataset

    root = tmp_path_factory.mktemp("adapt")
    make_toy_dataset(root / "toy", n_tampered=3, n_authentic=1, size=(96, 128))
    boxes = root / "boxes.json"
    for url in _serve(root / "toy", boxes, teacher="grabcut", job_epochs=1, job_samples_per_epoch=8):
        open_annotate(page, url)
        for position in ("1 / 4", "2 / 4", "3 / 4"):
            expect(page.locator("#image-name")).to_have_text(re.compile(f"^{position}"))
            if page.evaluate("annotate.row(annotate.name).tampered"):
                drag(page, "#annotate-canvas", (0.2, 0.2), (0.7, 0.7))
                page.wait_for_selector("#annotate-canvas[data-mask-ready='1']", timeout=60_000)
            page.keyboard.press("Enter")
            page.wait_for_timeout(300)
        page.click("#train")
        expect(page.locator("#train-status")).to_have_attribute("data-state", "done", timeout=300_000)
        page.reload()  # the finished job is found again after a reload
        page.wait_for_selector("body[data-ready='1']")
        expect(page.locator("#train-status")).to_contain_text("training done")
        page.select_option("#order", "disagreement")  # where the adapted and the server's model differ most
        expect(page.locator("#annotate-status")).to_contain_text("order: disagreement", timeout=120_000)
        page.click("#tab-inspect")
        expect(page.locator("#model-choice")).to_be_visible()
        adapted = page.locator("#model-pick option").nth(1).get_attribute("value")
        page.select_option("#model-pick", adapted)
        page.select_option("#dataset-pick", "Tp/toy_tp_000.png")
        expect(page.locator("#verdict")).to_have_attribute("data-model", adapted, timeout=120_000)
        page.select_option("#model-pick", "shipped")  # before / after on the same photo
        expect(page.locator("#verdict")).to_have_attribute("data-model", "shipped", timeout=120_000)
