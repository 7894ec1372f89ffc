"""The web app's resources and how requests share them: what `bpiml serve` was started with, the dataset
and its box file, the models (loaded on first use), the analyses kept for the page, and the one-at-a-time
turn that requests running the model wait for. The routes are in server.py."""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from fastapi import HTTPException, Request
from starlette.concurrency import run_in_threadpool

from ..data.images import fit_within, image_size, probability_to_uint8, read_image
from ..data.readers import load_datasets
from ..data.samples import Dataset, Sample
from ..deployment.provenance import FileFacts
from ..errors import BPIMLError, DataError
from .annotations import AnnotationFile
from .interactive import BoxPrompter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeSettings:
    """What `bpiml serve` was started with."""

    dataset: tuple[str, ...] = ()  # dataset specs (a JSON list or a folder; repeat to combine)
    boxes: str | None = None  # the COCO file the annotation view reads and writes
    model: str | None = None  # student run folder (None: the shipped model)
    teacher: str = "litemedsam"
    checkpoint: str | None = None  # the teacher's weights, for teachers that need a file
    host: str = "127.0.0.1"
    port: int = 8765
    allow_hosts: tuple[str, ...] = ()  # host names besides the local ones and --host that requests may use
    max_upload_mb: float = 50.0
    max_pixels: int = 60_000_000  # larger photos are refused before they are decoded
    preview_side: int = 2048  # what the page is sent: enough to look at, light enough not to freeze it
    work_side: int = 1024  # the teacher works on images shrunk to this longer side
    # Inspect analyses photos over this many pixels on a shrunk copy, so that one request's work is bounded
    # (a 4000 x 3000 phone photo is analysed in full; `bpiml predict` always works at full resolution)
    analysis_pixels: int = 16_000_000
    # "Train on my boxes" writes its jobs here (None: BOXES-training/ beside the box file); see app/jobs.py
    jobs_dir: str | None = None
    # the fine-tuning budget of a job: epochs x samples (at TrainJobSpec.lr, batch-norm statistics frozen); the budget
    # benchmarks.adaptation chose on held-out COVERAGE training photos, about 4 CPU minutes
    job_epochs: int = 6
    job_samples_per_epoch: int = 200
    kept_results: int = 4  # analysed images kept in memory for the page (oldest dropped first)


@dataclass
class Analysis:
    """One analysed image as the page uses it."""

    name: str
    preview: np.ndarray  # RGB uint8, longer side <= preview_side
    probability: np.ndarray  # uint8 0..255 at the image's full size
    score: float
    width: int
    height: int
    analysed_size: tuple[int, int]  # (width, height) the model saw: smaller than the photo past analysis_pixels
    facts: FileFacts | None = None  # the file as received (hash, size, metadata) for the report
    model: str = "shipped"  # which model made the map: "shipped" (the server's) or a training job's name
    created: datetime = field(default_factory=lambda: datetime.now(UTC))


class AppState:
    """The server's resources: the dataset and its box file, the models (loaded on first use), analyses."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.dataset: Dataset | None = load_datasets(list(settings.dataset)) if settings.dataset else None
        if self.dataset is not None and any(Path(self.dataset.relative_name(s)).is_absolute() for s in self.dataset):
            # images are never named by absolute server path: a list elsewhere (split/val.json pointing at
            # ../data/Tp/) names them relative to their common folder instead; a dataset folder keeps its own
            # root, so its box file names images as every other command does (Tp/x.jpg)
            common = Path(os.path.commonpath([str(s.image.resolve().parent) for s in self.dataset]))
            self.dataset = Dataset(self.dataset.samples, common, self.dataset.source)
        self.annotations: AnnotationFile | None = None
        if self.dataset is not None and settings.boxes:
            self.annotations = AnnotationFile(Path(settings.boxes), self.dataset)
        self._by_name: dict[str, Sample] = {}
        self.folder: Path | None = None
        if self.dataset is not None:
            self._by_name = self.dataset.by_relative_name()
            listed = [str(s.image.absolute().parent) for s in self.dataset]
            self.folder = Path(os.path.commonpath(listed)).resolve()
        self._predictor = None
        self._adapted: dict[str, Any] = {}  # training job name -> its predictor (loaded on first use)
        self._prompter: BoxPrompter | None = None
        self._load_lock = threading.Lock()
        self._predict_lock = threading.Lock()
        self.analyses: OrderedDict[str, Analysis] = OrderedDict()
        # images encoded ahead of the annotator, by one background worker (the teacher runs one job at a time)
        self.background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bpiml-prefetch")
        self.prefetched: set[str] = set()
        # annotation orders (app/ordering.py): (order, model) -> {image name: score}, filled in the background
        self.order_scores: dict[tuple[str, str], dict[str, float]] = {}
        self.uploads = tempfile.TemporaryDirectory(prefix="bpiml-serve-")

    # -- models, loaded on first use so that the page opens at once --------------------------------
    @property
    def predictor(self):
        with self._load_lock:
            if self._predictor is None:
                from ..deployment.predictor import load_predictor

                self._predictor = load_predictor(self.settings.model)
            return self._predictor

    @property
    def jobs_dir(self) -> Path | None:
        if self.settings.jobs_dir:
            return Path(self.settings.jobs_dir)
        if self.settings.boxes:
            boxes = Path(self.settings.boxes)
            return boxes.with_name(f"{boxes.stem}-training")
        return None

    def predictor_for(self, model: str | None) -> Any:
        """The server's model ("shipped" or None), or the adapted model of a finished training job."""
        if model in (None, "", "shipped"):
            return self.predictor
        from .jobs import job_status

        job_dir = self.jobs_dir / model if self.jobs_dir is not None else None
        if job_dir is None or "/" in model or not (job_dir / "job.json").is_file() \
                or not job_status(job_dir)["model_ready"]:
            raise HTTPException(404, f"no adapted model {model!r} (train one with 'Train on my boxes')")
        with self._load_lock:
            if model not in self._adapted:
                from ..deployment.predictor import load_predictor

                self._adapted = {model: load_predictor(job_dir / "run")}  # one adapted model in memory
            return self._adapted[model]

    @property
    def prompter(self) -> BoxPrompter:
        with self._load_lock:
            if self._prompter is None:
                from ..teachers.zoo import create_teacher

                self._prompter = BoxPrompter(create_teacher(self.settings.teacher, self.settings.checkpoint),
                                             self.settings.work_side)
            return self._prompter

    def warm_up(self) -> None:
        """Load the models now (called in a background thread at start), so the first request is not slow."""
        try:
            loaded = [self.predictor]
            if self.annotations is not None:
                loaded.append(self.prompter)
        except BPIMLError as exc:  # the request that needs the model reports it
            log.warning("could not load a model: %s", exc)

    def prefetch(self, name: str) -> None:
        """Background: the teacher's embedding of a dataset image (errors are the open request's to report)."""
        try:
            self.prompter.prefetch(name, lambda: self.read_sample(name))
        except Exception as exc:  # noqa: BLE001 - an unreadable image is reported when it is opened
            self.prefetched.discard(name)
            log.debug("prefetch of %s failed: %s", name, exc)

    def adapted_jobs(self) -> list[dict[str, Any]]:
        """The status of each training job whose adapted model is ready, oldest first."""
        from .jobs import job_status, jobs_of

        folder = self.jobs_dir
        statuses = [job_status(j) for j in jobs_of(folder)] if folder and folder.is_dir() else []
        return [status for status in statuses if status["model_ready"]]

    def latest_adapted(self) -> str | None:
        """The newest training job whose adapted model is ready (proposals and orders use it), or None."""
        ready = self.adapted_jobs()
        return ready[-1]["name"] if ready else None

    def score_order(self, order: str, model: str | None) -> None:
        """Background: score every dataset image for ``order`` (see app/ordering.py), filling ``order_scores``."""
        from .ordering import score_image

        scores = self.order_scores.setdefault((order, model or "shipped"), {})
        server = self.predictor
        adapted = self.predictor_for(model) if model else None
        main = adapted if order == "uncertainty" and adapted is not None else server
        for name in self._by_name:
            if name in scores:
                continue
            try:
                image = self.read_sample(name)
                with self._predict_lock:
                    scores[name] = score_image(image, order, lambda x: main.predict(x).probability,
                                               (lambda x: adapted.predict(x).probability) if adapted else None)
            except Exception as exc:  # noqa: BLE001 - an unreadable image stays at the end of the order
                log.debug("order %s: %s skipped: %s", order, name, exc)
                scores[name] = float("-inf")

    # -- files --------------------------------------------------------------------------------------
    def sample(self, name: str) -> Sample:
        """The dataset image listed under ``name``; 404 for anything else, 403 for a file outside the folder."""
        sample = self._by_name.get(name)
        if sample is None or self.folder is None:
            raise HTTPException(404, f"{name!r} is not an image of the dataset")
        if not sample.image.resolve().is_relative_to(self.folder):
            raise HTTPException(403, f"{name!r} resolves outside the dataset folder; not served")
        return sample

    def read(self, path: Path, shown_name: str) -> np.ndarray:
        """An image checked against the pixel cap from its header before it is decoded."""
        try:
            height, width = image_size(path, decode_fallback=False)
        except DataError as exc:
            why = str(exc).replace(str(path), shown_name)
            raise HTTPException(415, f"{shown_name}: not an image this app can read ({why})") from exc
        if height * width > self.settings.max_pixels:
            raise HTTPException(413, f"{shown_name} is {width} x {height} = {width * height / 1e6:.0f} megapixels, "
                                     f"over this server's limit of {self.settings.max_pixels / 1e6:.0f} "
                                     "(start bpiml serve with a larger --max-pixels)")
        try:
            return read_image(path)
        except DataError as exc:
            why = str(exc).replace(str(path), shown_name)  # uploads: name the user's file, not our temporary copy
            raise HTTPException(415, f"{shown_name}: cannot read it as an image ({why})") from exc

    def read_sample(self, name: str) -> np.ndarray:
        return self.read(self.sample(name).image, name)

    # -- analyses -----------------------------------------------------------------------------------
    def analyse(self, image: np.ndarray, name: str, facts: FileFacts | None = None,
                model: str | None = None) -> tuple[str, Analysis]:
        """The model's map of ``image``; photos over ``analysis_pixels`` go through a shrunk copy and the map is
        scaled back, so that no request holds the model for long."""
        height, width = image.shape[:2]
        work = image
        if height * width > self.settings.analysis_pixels:
            work, _ = fit_within(image, int(max(height, width) * (self.settings.analysis_pixels / (height * width))
                                             ** 0.5))
        predictor = self.predictor_for(model)
        with self._predict_lock:
            prediction = predictor.predict(work)
        probability = probability_to_uint8(prediction.probability)
        if work is not image:
            probability = cv2.resize(probability, (width, height), interpolation=cv2.INTER_LINEAR)
        preview, _ = fit_within(image, self.settings.preview_side)
        analysis = Analysis(name, preview, probability, float(prediction.score), width, height,
                            (work.shape[1], work.shape[0]), facts, model or "shipped")
        key = uuid.uuid4().hex
        with self._load_lock:
            self.analyses[key] = analysis
            while len(self.analyses) > self.settings.kept_results:
                self.analyses.popitem(last=False)
        return key, analysis

    def analysis(self, key: str) -> Analysis:
        if key not in self.analyses:
            raise HTTPException(404, f"no analysis {key!r} (the server keeps the last {self.settings.kept_results})")
        return self.analyses[key]

    def describe_analysis(self, key: str, analysis: Analysis) -> dict[str, Any]:
        from ..deployment.report import verdict_text

        predictor = self.predictor_for(analysis.model)
        decision = predictor.decision
        return {"id": key, "name": analysis.name, "width": analysis.width, "height": analysis.height,
                "analysed_width": analysis.analysed_size[0], "analysed_height": analysis.analysed_size[1],
                "score": round(analysis.score, 4),
                "verdict": verdict_text(analysis.score, decision, predictor.map_gate),
                "tampered": None if decision is None else analysis.score > decision.threshold,
                "decision": None if decision is None else decision.to_dict(), "model": analysis.model}


async def run_in_turn(turn: asyncio.Lock, request: Request, work: Callable[[], Any]) -> Any:
    """Run ``work`` (it uses the model) in a worker thread, one request at a time in arrival order (asyncio's
    lock is fair, so no request starves); a request whose client left while it waited is dropped, not run."""
    async with turn:
        if await request.is_disconnected():
            raise HTTPException(499, "the client left before its turn came; nothing was analysed")
        return await run_in_threadpool(work)
