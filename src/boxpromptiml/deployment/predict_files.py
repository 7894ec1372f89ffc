"""`bpiml predict`: probability maps (the format `bpiml evaluate` reads) for files, folders, globs.

Writes ``OUT/<stem>.png`` (8-bit probability), ``OUT/scores.json`` (image-level scores),
``OUT/verdicts.json`` (score, verdict and the threshold it used, when the model has a
calibrated image-level threshold: see `bpiml calibrate`; and whether the map gate damped the map), and
optionally ``OUT/masks/<stem>.png`` (binary at the threshold), ``OUT/overlays/<stem>.jpg``
(the image with the map in red, at most 4096 px on its longer side) and ``OUT/reports/<stem>.html``
(a self-contained one-page report, the same page `bpiml serve` exports). Unreadable images are reported and skipped.
"""

from __future__ import annotations

import glob
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..data.images import (
    BAND_ROWS,
    IMAGE_EXTENSIONS,
    PathLike,
    probability_to_uint8,
    read_image,
    write_image,
    write_probability_map,
)
from ..errors import DataError
from ..evaluation.evaluate import SCORES_FILE
from ..fileio import read_json, write_bytes_atomic, write_json_atomic
from ..runner import SampleRun, run_per_sample
from ..sharding import Shard, exclusive_lock
from .predictor import Prediction, Predictor

VERDICTS_FILE = "verdicts.json"


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files, folders (their images, sorted) and glob patterns -> image paths with unique stems."""
    paths: list[Path] = []
    missing = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            paths += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        elif path.is_file():
            paths.append(path)
        elif any(ch in item for ch in "*?["):
            matches = sorted(Path(p) for p in glob.glob(item, recursive=True))
            paths += [p for p in matches if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
            if not matches:
                missing.append(item)
        else:
            missing.append(item)
    if missing:
        raise DataError(f"not found: {', '.join(missing)}")
    if not paths:
        raise DataError(f"no images in {', '.join(inputs)}")
    by_stem: dict[str, Path] = {}
    seen: set[Path] = set()
    for path in paths:
        real = path.resolve()
        if real in seen:  # the same file reached twice (e.g. through a symlink loop under **): once is enough
            continue
        seen.add(real)
        if path.stem in by_stem and by_stem[path.stem] != path:
            raise DataError(f"two inputs share the name {path.stem!r} ({by_stem[path.stem]}, {path}); outputs are "
                            "named by file stem")
        by_stem[path.stem] = path
    return list(by_stem.values())


# What a second process saves on a photo grows far slower than the photo's cost (two processes of one thread against
# one of two, docs/results.md): 0.07-0.18 s on one of 1024 x 768, 0.14-0.88 s on one of 4000 x 3000, while starting
# the second process costs ~5 s. So for --processes auto a photo weighs 1 + this much per megapixel over 1024 x 768:
# one of 4000 x 3000 about 2.5 (20 of them measured a tie to a win, 0.28 against 0.28 and 0.23 against 0.21
# photos/s with start-up; 6 of them, ~15, stay in one process).
WEIGHT_PER_EXTRA_MEGAPIXEL = 0.13
COMMON_PHOTO_PIXELS = 1024 * 768


def photo_work(paths: list[Path], enough: float = float("inf")) -> float:
    """The size of predicting ``paths`` for ``--processes auto``, in photos of 1024 x 768: larger photos weigh more
    (one of 4000 x 3000 about 2.5), read from the files' headers. Stops once ``enough`` is reached, so a large
    folder is not read through; a file whose header cannot be read counts as one photo (predicting it reports
    the problem)."""
    from PIL import Image

    total = 0.0
    for path in paths:
        try:
            with Image.open(path) as image:
                pixels = float(image.size[0] * image.size[1])
        except Exception:  # noqa: BLE001 - any unreadable header: predict_files names the file later
            pixels = COMMON_PHOTO_PIXELS
        total += 1.0 + WEIGHT_PER_EXTRA_MEGAPIXEL * max(0.0, pixels - COMMON_PHOTO_PIXELS) / 1e6
        if total >= enough:
            break
    return total


def overlay(image: np.ndarray, prob: np.ndarray) -> np.ndarray:
    """The image with tampering probability shown in red (a band of rows at a time: large photos need no
    full-size float copies)."""
    out = np.empty_like(image)
    for row in range(0, max(1, image.shape[0]), BAND_ROWS):
        alpha = (0.6 * prob[row:row + BAND_ROWS, :, None]).astype(np.float32)
        band = image[row:row + BAND_ROWS] * (1 - alpha)
        band[..., 0] += 255 * alpha[..., 0]
        out[row:row + BAND_ROWS] = band
    return out


OVERLAY_SIDE = 4096  # overlays are pictures for people: larger photos get overlays of this longer side


def viewing_size(height: int, width: int, side: int = OVERLAY_SIDE) -> tuple[int, int] | None:
    """(width, height) of a picture for people of at most ``side`` px on the longer side; None when the photo is
    no larger."""
    if max(height, width) <= side:
        return None
    scale = side / max(height, width)
    return max(1, round(width * scale)), max(1, round(height * scale))


def shrunk_photo(image: np.ndarray, side: int = OVERLAY_SIDE) -> np.ndarray:
    """The photo area-averaged to at most ``side`` px on the longer side (itself when no larger)."""
    import cv2

    size = viewing_size(*image.shape[:2], side)
    return image if size is None else cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def shrunk_map(prob: np.ndarray, side: int = OVERLAY_SIDE) -> np.ndarray:
    """The map area-averaged to at most ``side`` px on the longer side, float32 in [0, 1] (itself when no larger)."""
    import cv2

    height, width = prob.shape[:2]
    size = viewing_size(height, width, side)
    if size is None:
        return prob
    small = cv2.resize(_columns_shrunk(prob, size[0]), size, interpolation=cv2.INTER_AREA)
    return small.astype(np.float32) / 255.0


def shrunk_for_viewing(image: np.ndarray, prob: np.ndarray, side: int = OVERLAY_SIDE) -> tuple[np.ndarray, np.ndarray]:
    """The photo and its map shrunk (area-averaged) to at most ``side`` px on the longer side, for overlays."""
    return shrunk_photo(image, side), shrunk_map(prob, side)


def _columns_shrunk(prob: np.ndarray, width: int) -> np.ndarray:
    """The map as 8-bit, area-averaged along each row to ``width`` columns a band of rows at a time, so that a
    huge map is never quantised at full size (at 12000 x 9000 that copy alone is 108 MB). Area averaging is
    separable: shrinking the rows of this result next gives the one 2-D area resize, up to rounding."""
    import cv2

    out = np.empty((prob.shape[0], width), np.uint8)
    for row in range(0, prob.shape[0], BAND_ROWS):
        band = probability_to_uint8(prob[row:row + BAND_ROWS])
        out[row:row + band.shape[0]] = cv2.resize(band, (width, band.shape[0]), interpolation=cv2.INTER_AREA)
    return out


def write_outputs(out: Path, path: Path, photo: list[np.ndarray], prediction: Prediction, predictor: Predictor,
                  masks: bool, overlays: bool, reports: bool, threshold: float) -> None:
    """Everything `bpiml predict` writes for one image: its map, and the mask, overlay and report if asked.
    ``photo`` holds the photo's ``shrunk_photo`` (empty when neither overlay nor report is asked) and is handed
    over: the outputs that draw on it are made first and it is then emptied, before the full-size map and mask
    are encoded."""
    if overlays:
        import cv2

        picture = overlay(photo[0], shrunk_map(prediction.probability))
        if not reports:
            photo.clear()
        ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(picture, cv2.COLOR_RGB2BGR, dst=picture),
                               [cv2.IMWRITE_JPEG_QUALITY, 90])
        del picture
        write_bytes_atomic(out / "overlays" / f"{path.stem}.jpg", jpg.tobytes())
        del jpg
    if reports:
        from .provenance import file_facts
        from .report import render_report

        page = render_report(photo[0], prediction.probability, prediction_score(prediction), image_name=path.name,
                             model=predictor.describe(), decision=predictor.decision, gate=predictor.map_gate,
                             threshold=threshold,
                             facts=file_facts(path.read_bytes(), path.name), identity=predictor.identity())
        write_bytes_atomic(out / "reports" / f"{path.stem}.html", page.encode("utf-8"))
        del page
    photo.clear()
    write_probability_map(out / f"{path.stem}.png", prediction.probability)
    if masks:
        mask = np.greater(prediction.probability, threshold).view(np.uint8)  # 0 / 1 without a copy
        write_image(out / "masks" / f"{path.stem}.png", np.multiply(mask, 255, out=mask))  # 0 / 255 in place


def prediction_score(prediction: Prediction) -> float:
    return prediction.score if prediction.score is not None else float(prediction.probability.max())


def predict_files(predictor: Predictor, inputs: list[str], out_dir: PathLike, masks: bool = False,
                  overlays: bool = False, threshold: float = 0.5, shard: Shard | None = None,
                  reports: bool = False) -> SampleRun[float]:
    """Predict every input (this shard's share of them, if given) and return the image scores; the shared
    score files are updated under a lock, so shards may run at once on one output folder.

    Decoding the next image and writing the previous one's outputs run in a thread beside the network (the
    decoders, the PNG encoder and the backends release the GIL), at most one of each in flight, so memory stays
    that of about two images."""
    out = Path(out_dir)
    paths = expand_inputs(inputs)
    if shard is not None:
        paths = shard.select(paths)
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="bpiml-io") as pool:
        reads: dict[int, Future] = {}
        writing: list[Future] = []

        def read_ahead(index: int) -> None:
            if index < len(paths) and index not in reads:
                reads[index] = pool.submit(read_image, paths[index])

        def step(index: int) -> float:
            read_ahead(index)
            read_ahead(index + 1)  # the next photo decodes while this one is predicted
            photo = [reads.pop(index).result()]  # a DataError of the reader names the file; the run goes on
            # the outputs that draw on the photo get its viewing-size copy (the photo itself up to 4096 px), so the
            # predictor frees a huge photo as soon as the network has seen it: not held while its map is finished
            handed = [shrunk_photo(photo[0])] if overlays or reports else []
            prediction = predictor.predict_handed(photo)
            if writing:
                writing.pop().result()  # the previous image's outputs are written (or their error raised)
            writing.append(pool.submit(write_outputs, out, paths[index], handed, prediction, predictor, masks,
                                       overlays, reports, threshold))
            del handed
            return prediction_score(prediction)

        run = run_per_sample(range(len(paths)), step, desc="predict", total=len(paths),
                             name_of=lambda index: paths[index].stem)
        for future in writing:
            future.result()
    with exclusive_lock(out / ".scores.lock"):
        _update_score_files(out, predictor, run)
    return run


SCORE_FILE_HINT = "move it aside, or predict into a new --out"


def _update_score_files(out: Path, predictor: Predictor, run: SampleRun[float]) -> None:
    scores_path = out / SCORES_FILE
    scores = read_json(scores_path, DataError, SCORE_FILE_HINT) if scores_path.is_file() else {}
    # scores are written as computed: a verdict must be reproducible from the number the file shows (rounded, a
    # score tied with the threshold, as bf16 maps often are, would read as above it while called not tampered)
    scores.update({name: float(score) for name, score in run.results.items()})
    write_json_atomic(scores_path, scores)
    if predictor.decision is not None:
        verdicts_path = out / VERDICTS_FILE
        verdicts = read_json(verdicts_path, DataError, SCORE_FILE_HINT) if verdicts_path.is_file() else {"images": {}}
        threshold = predictor.decision.threshold
        verdicts["decision"] = predictor.decision.to_dict()
        gate = predictor.map_gate
        verdicts["map_gate"] = None if gate is None else gate.to_dict()
        verdicts["images"].update({name: {"score": float(score), "tampered": score > threshold,
                                          "map_damped": gate is not None and score < gate.threshold}
                                   for name, score in run.results.items()})
        write_json_atomic(verdicts_path, verdicts)
