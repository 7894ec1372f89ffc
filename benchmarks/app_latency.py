"""`bpiml serve` as an annotator and an analyst feel it (docs/results.md).

    python benchmarks/app_latency.py      # on an idle machine; needs Debian's chromium (see .ci/run)

Starts `bpiml serve` (default teacher, shipped student) in its own process on a demo dataset, drives
it with headless Chromium through Playwright, and measures:
- the time from releasing the mouse on a new box to its pseudo mask drawn on the page (median and
  90th percentile over N boxes at random places), on a 512 x 512 photo and on a 4000 x 3000 one
  (which the teacher works on at 1024 px);
- the first box on an image: drawn 2 s after the image opened, in the dataset's order (the annotator
  looks before drawing; the app encodes the opened image and the next one in the background), and
  drawn at once on an image reached by jumping (the encoder's full wait);
- the server's memory: resident after start (models loaded), with the 4000 x 3000 photo open in
  Inspect (heat map shown), and its peak.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, markdown_table, update_results_section  # noqa: E402

from boxpromptiml.data.images import write_image  # noqa: E402
from boxpromptiml.demo.photos import make_demo_images  # noqa: E402

CHROMIUM = "/usr/bin/chromium"


def memory_mb(pid: int) -> dict[str, float]:
    """Resident (VmRSS) and peak resident (VmHWM) memory of a process, in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


FRESH = 7  # photos for the first-box measurements (each opened once)


def make_dataset(root: Path) -> tuple[str, str, list[str]]:
    """A demo forgery at 512 px, the same photo scaled to 4000 x 3000, and ``FRESH`` other photos at 1024 x 768
    for first boxes; returns their names in the listing (the fresh ones sort after the first two)."""
    items = make_demo_images(1 + FRESH)
    write_image(root / "Tp" / "photo_512.png", items[0].image)
    big = cv2.resize(items[0].image, (4000, 3000), interpolation=cv2.INTER_CUBIC)
    cv2.imwrite(str(root / "Tp" / "photo_4000x3000.jpg"), big[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
    fresh = []
    for i, item in enumerate(items[1:]):
        write_image(root / "Tp" / f"zfresh_{i}.png", cv2.resize(item.image, (1024, 768), interpolation=cv2.INTER_CUBIC))
        fresh.append(f"Tp/zfresh_{i}.png")
    return "Tp/photo_512.png", "Tp/photo_4000x3000.jpg", fresh


def wait_until(page, expression: str, timeout: float = 120.0) -> None:
    """Poll a page expression (the app's CSP forbids the eval that Playwright's wait_for_function uses)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise TimeoutError(expression)
        time.sleep(0.02)


def draw_box(page, rng: np.random.Generator) -> float:
    """Draw one box at a random place; milliseconds from mouse release to its pseudo mask drawn."""
    area = page.locator("#annotate-canvas").bounding_box()
    x0, y0 = rng.uniform(0.05, 0.6, 2)
    w, h = rng.uniform(0.1, 0.35, 2)
    page.mouse.move(area["x"] + x0 * area["width"], area["y"] + y0 * area["height"])
    page.mouse.down()
    page.mouse.move(area["x"] + (x0 + w) * area["width"], area["y"] + (y0 + h) * area["height"], steps=4)
    page.mouse.up()
    page.wait_for_selector("#annotate-canvas[data-mask-ready='1']", timeout=120_000)
    return float(page.get_attribute("#annotate-canvas", "data-mask-ms"))


def open_image(page, name: str) -> None:
    page.evaluate(f"annotate.open({name!r})")
    wait_until(page, f"annotate.name === {name!r} && annotate.image !== null && !annotate.busy")


def first_box_latencies(page, names: list[str], think_seconds: float, rng: np.random.Generator) -> list[float]:
    """The first box on each of ``names``, drawn ``think_seconds`` after the image opened."""
    times = []
    for name in names:
        open_image(page, name)
        time.sleep(think_seconds)
        times.append(draw_box(page, rng))
    return times


def box_latencies(page, name: str, count: int, rng: np.random.Generator) -> list[float]:
    """Milliseconds from mouse release to the pseudo mask drawn, for ``count`` new boxes on image ``name``."""
    open_image(page, name)
    times = []
    for _ in range(count):
        times.append(draw_box(page, rng))
        page.keyboard.press("u")  # back to no box: the next box is a fresh one
        wait_until(page, "annotate.boxes.length === 0")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--boxes", type=int, default=20, help="boxes per photo (default: %(default)s)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="bpiml-app-bench-"))
    small, big, fresh = make_dataset(work / "photos")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "boxpromptiml", "serve", "--dataset", str(work / "photos"),
                               "--boxes", str(work / "boxes.json"), "--port", str(port)], cwd=REPO)
    rows, memory = [], {}
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                urllib.request.urlopen(url + "/api/info", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url + "/?view=annotate")
            page.wait_for_selector("body[data-ready='1']")
            time.sleep(20)  # let the background warm-up load both models
            memory["after start (models loaded)"] = memory_mb(server.pid)
            rng = np.random.default_rng(0)
            for name, label in ((small, "512 x 512"), (big, "4000 x 3000 (teacher at 1024 px)")):
                box_latencies(page, name, 2, rng)  # warm-up: reading the image, the embedding
                times = box_latencies(page, name, args.boxes, rng)
                rows.append([label, len(times), statistics.median(times), float(np.percentile(times, 90)),
                             max(times)])
                print(rows[-1], flush=True)
            # first boxes: in order with a glance first (the next image was encoded meanwhile), then by jumping
            # backwards to images not opened yet, drawn at once (their embedding is not there)
            # (fresh[3] is encoded ahead when fresh[2] opens, so the jumps go to fresh[6], [5], [4]: none encoded yet)
            for label, names, think in (("first box, 2 s after opening, in order (1024 x 768)", fresh[:3], 2.0),
                                        ("first box at once, after a jump (1024 x 768)", fresh[4:][::-1], 0.0)):
                times = first_box_latencies(page, names, think, rng)
                rows.append([label, len(times), statistics.median(times), float(np.percentile(times, 90)),
                             max(times)])
                print(rows[-1], flush=True)
            memory["after annotating both photos"] = memory_mb(server.pid)
            page.goto(url + "/?view=inspect")
            page.wait_for_selector("body[data-ready='1']")
            page.set_input_files("#file-input", str(work / "photos" / big))
            page.wait_for_selector("#inspect-canvas[data-rendered='1']", timeout=600_000)
            memory["4000 x 3000 photo open in Inspect"] = memory_mb(server.pid)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    latency = markdown_table(["photo", "boxes", "median ms", "90th pct ms", "max ms"],
                             [[r[0], r[1], f"{r[2]:.0f}", f"{r[3]:.0f}", f"{r[4]:.0f}"] for r in rows])
    mem = markdown_table(["moment", "resident MB", "peak so far MB"],
                         [[k, f"{v['VmRSS']:.0f}", f"{v['VmHWM']:.0f}"] for k, v in memory.items()])
    markdown = ("## Web app: box to pseudo mask, server memory\n\n"
                f"Measured with `python benchmarks/app_latency.py` (idle machine, {os.cpu_count()} cores; "
                "`bpiml serve` with the default teacher and the shipped student in its own process, driven by "
                "headless Chromium). "
                "Latency is from releasing the mouse on a new box to its pseudo mask drawn on the page; the image "
                "embedding is cached per image, so each later box runs the decoder and the GrabCut half of the "
                "default teacher. First boxes: the page asks the server to encode the opened image and the next one "
                "in the background as soon as an image opens; drawn after a 2 s glance, in order, the first box "
                "finds its embedding ready; drawn at once on an image reached by jumping, it waits for the encoder."
                "\n\n" + latency + "\n\n" + mem + "\n")
    print(markdown)
    if not args.no_write:
        update_results_section("app_latency", markdown)


if __name__ == "__main__":
    main()
