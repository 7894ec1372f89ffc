"""Does the tile size change what the student finds in a large photo? (docs/results.md, section ``tiling``)

    python -m benchmarks.tiling                      # CASIA validation split (chooses) and casia1_dev (reports)
    python -m benchmarks.tiling --sides 1024 2048    # the tile sides compared

None of our labelled photos is larger than a tile (CASIA v1 is 384 x 256, COVERAGE about 400 x 500), so the tile
size cannot move their F1. To see what it does on a 12-megapixel photo, the CASIA photos of a split are laid side
by side into mosaics of 10 x 12 photos (3840 x 3072, on the 8-pixel grid, so every photo keeps its own JPEG block
grid; tampered and authentic photos apart, since CASIA saved the two classes with different JPEG tables and a mosaic
of both would be a photo of two compression histories), the mosaic is predicted by the student with each tile side,
and each photo's part of the map is scored
against its own mask, next to the photo predicted on its own. The student alone: the copy-move search and the map
gate act on whole photos and would see one photo made of 120. Pixel F1 at 0.5 (the shipped threshold is inside the
graph), mean over tampered photos; authentic marked = share of authentic photos with any pixel above 0.5;
seconds = median network pass per mosaic, the first one's compiling included (a hint: run
`benchmarks/predict_speed.py` idle for timings).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from boxpromptiml.data.images import read_image, read_mask
from boxpromptiml.data.readers import load_dataset
from boxpromptiml.deployment.predictor import load_predictor
from boxpromptiml.evaluation.metrics import confusion, f1
from boxpromptiml.student.inference import predict_native

from .common import (
    DEFAULT_DATA,
    REPO,
    ResultStore,
    machine_line,
    markdown_table,
    relative_to_repo,
    update_results_section,
)

CELL = (256, 384)  # height, width of a CASIA v1 landscape photo: the photos a mosaic is made of
GRID = (12, 10)  # rows, columns: 3072 x 3840, about a phone's 12 megapixels
RECORD = REPO / "docs" / "tiling_runs.json"
SPLITS = {  # name -> dataset list files (tampered and authentic in one list, or two lists)
    "CASIA validation split (chooses)": [REPO / "runs" / "v2" / "casia1_split" / "val.json"],
    "casia1_dev (reports)": ["casia1_dev/test.json", "casia1_dev/authentic.json"],
}


def photos_of(specs: list, data: Path) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    """(name, RGB photo, mask or None) of every landscape 384 x 256 photo of the lists."""
    out = []
    for spec in specs:
        path = Path(spec) if Path(spec).is_absolute() else data / spec
        for sample in load_dataset(path):
            image = read_image(sample.image)
            if image.shape[:2] != CELL:
                continue
            mask = read_mask(sample.mask, image.shape[:2]) if sample.mask is not None else None
            out.append((sample.name, image, mask))
    return out


def mosaics(photos: list, indices: list[int], grid: tuple[int, int] = GRID):
    """Mosaics of ``grid`` of the photos at ``indices`` each (the last one filled up with the first ones, not scored
    twice): (mosaic, [(index of the photo, top, left)])."""
    per = grid[0] * grid[1]
    for first in range(0, len(indices), per):
        members = indices[first:first + per]
        filler = [indices[i % len(indices)] for i in range(per - len(members))]
        canvas = np.zeros((grid[0] * CELL[0], grid[1] * CELL[1], 3), np.uint8)
        placed = []
        for slot, index in enumerate(members + filler):
            top, left = (slot // grid[1]) * CELL[0], (slot % grid[1]) * CELL[1]
            canvas[top:top + CELL[0], left:left + CELL[1]] = photos[index][1]
            if slot < len(members):
                placed.append((index, top, left))
        yield canvas, placed


def scores(maps: dict[int, np.ndarray], photos: list) -> dict[str, float]:
    """Mean F1 over tampered photos and the share of authentic photos with a marked pixel."""
    tampered = [f1(confusion(maps[i], photos[i][2] > 0)) for i in maps if photos[i][2] is not None]
    authentic = [bool((maps[i] > 0.5).any()) for i in maps if photos[i][2] is None]
    return {"f1": float(np.mean(tampered)), "n_tampered": len(tampered),
            "authentic_marked": float(np.mean(authentic)) if authentic else None, "n_authentic": len(authentic)}


def measure(split: str, specs: list, data: Path, sides: list[int], model: str | None) -> dict:
    predictor = load_predictor(model, copy_move=False, map_gate=False)
    photos = photos_of(specs, data)
    alone = {i: predictor.predict(photo).probability for i, (_, photo, _) in enumerate(photos)}
    row = {"split": split, "photos": len(photos), "model": relative_to_repo(predictor.source),
           "backend": predictor.backend, "alone": scores(alone, photos), "sides": {}}
    for side in sides:
        maps, seconds, differences = {}, [], []
        tampered = [i for i, photo in enumerate(photos) if photo[2] is not None]
        authentic = [i for i, photo in enumerate(photos) if photo[2] is None]
        for canvas, placed in [*mosaics(photos, tampered), *mosaics(photos, authentic)]:
            started = time.perf_counter()
            full, _ = predict_native(predictor.predict_batch, canvas, side)
            seconds.append(time.perf_counter() - started)
            for index, top, left in placed:
                maps[index] = np.clip(full[top:top + CELL[0], left:left + CELL[1]], 0, 1)
                differences.append(float(np.abs(maps[index] - alone[index]).mean()))
        row["sides"][str(side)] = {**scores(maps, photos), "seconds": statistics.median(seconds),
                                   "mean_abs_difference_from_alone": float(np.mean(differences))}
        print(split, side, row["sides"][str(side)], flush=True)
    return row


def render(rows: dict) -> str:
    table = []
    for row in rows.values():
        table.append([row["split"], "each photo alone", row["alone"]["f1"], row["alone"]["authentic_marked"],
                      "", ""])
        for side, values in row["sides"].items():
            table.append([row["split"], f"mosaic, tiles of at most {side} px", values["f1"],
                          values["authentic_marked"], values["mean_abs_difference_from_alone"], values["seconds"]])
    first = next(iter(rows.values()))
    counts = ", ".join(f"{r['split']} {r['photos']}" for r in rows.values())
    return (f"## Tile size on a 12-megapixel photo\n\nMeasured with `python -m benchmarks.tiling` ({machine_line()}). "
            + __doc__.split("\n\n", 2)[2].split("\n\n")[0].replace("\n", " ") + f" Model: `{first['model']}` "
            f"through `{first['backend']}`; "
            f"photos per split: {counts}. Rows in "
            "`docs/tiling_runs.json`.\n\n"
            + markdown_table(["split", "how", "F1", "authentic marked", "mean abs. difference from alone", "seconds"],
                             table))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model", help="run or checkpoint folder (default: the shipped model)")
    parser.add_argument("--sides", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    store = ResultStore(RECORD)
    for split, specs in SPLITS.items():
        store.put(split, measure(split, specs, args.data, args.sides, args.model))
    update_results_section("tiling", render(store.rows))
    print(render(store.rows))


if __name__ == "__main__":
    main()
