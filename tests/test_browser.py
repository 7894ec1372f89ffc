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


@pytest.fixture(scope="module")
def server(photos, tmp_path_factory):
    """The app (default teacher, shipped student) under uvicorn in a thread, on a pre-bound 127.0.0.1 socket."""
    import uvicorn

    from boxpromptiml.app.server import ServeSettings, create_app

    boxes = tmp_path_factory.mktemp("boxes") / "boxes.json"
    app = create_app(ServeSettings(dataset=(str(photos),), boxes=str(boxes)))
    app.state.bpiml.warm_up()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not instance.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert instance.started, "uvicorn did not start"
    yield {"url": f"http://127.0.0.1:{sock.getsockname()[1]}", "boxes": boxes, "photos": photos}
    instance.should_exit = True
    thread.join(timeout=10)


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
