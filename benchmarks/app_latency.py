"""`bpiml serve` as an annotator and an analyst feel it (docs/results.md).

    python benchmarks/app_latency.py      # on an idle machine; needs Debian's chromium (see .ci/run)

Starts `bpiml serve` (default teacher, shipped student) in its own process on a demo dataset, drives
it with headless Chromium through Playwright, and measures:
- the time from releasing the mouse on a new box to its pseudo mask drawn on the page (median and
  90th percentile over N boxes at random places), on a 512 x 512 photo and on a 4000 x 3000 one
  (which the teacher works on at 1024 px);
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


def make_dataset(root: Path) -> tuple[str, str]:
    """A demo forgery at 512 px and the same photo scaled to 4000 x 3000; returns their names in the listing."""
    item = make_demo_images(1)[0]
    write_image(root / "Tp" / "photo_512.png", item.image)
    big = cv2.resize(item.image, (4000, 3000), interpolation=cv2.INTER_CUBIC)
    cv2.imwrite(str(root / "Tp" / "photo_4000x3000.jpg"), big[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
    return "Tp/photo_512.png", "Tp/photo_4000x3000.jpg"


def box_latencies(page, name: str, count: int, rng: np.random.Generator) -> list[float]:
    """Milliseconds from mouse release to the pseudo mask drawn, for ``count`` new boxes on image ``name``."""
    page.evaluate(f"annotate.open({name!r})")
    page.wait_for_function(f"annotate.name === {name!r}")
    area = page.locator("#annotate-canvas").bounding_box()
    times = []
    for _ in range(count):
        x0, y0 = rng.uniform(0.05, 0.6, 2)
        w, h = rng.uniform(0.1, 0.35, 2)
        page.mouse.move(area["x"] + x0 * area["width"], area["y"] + y0 * area["height"])
        page.mouse.down()
        page.mouse.move(area["x"] + (x0 + w) * area["width"], area["y"] + (y0 + h) * area["height"], steps=4)
        page.mouse.up()
        page.wait_for_selector("#annotate-canvas[data-mask-ready='1']", timeout=120_000)
        times.append(float(page.get_attribute("#annotate-canvas", "data-mask-ms")))
        page.keyboard.press("u")  # back to no box: the next box is a fresh one
        page.wait_for_function("annotate.boxes.length === 0")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--boxes", type=int, default=20, help="boxes per photo (default: %(default)s)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="bpiml-app-bench-"))
    small, big = make_dataset(work / "photos")
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
                "embedding is cached per image, so each box runs the decoder and the GrabCut half of the default "
                "teacher.\n\n" + latency + "\n\n" + mem + "\n")
    print(markdown)
    if not args.no_write:
        update_results_section("app_latency", markdown)


if __name__ == "__main__":
    main()
