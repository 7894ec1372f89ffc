"""The web app's JSON API and page: FastAPI over the library's own functions.

Images are named by the client only through the dataset's own listing (never a path it made up), and
a listed file whose real location lies outside the dataset folder (a symlink pointing elsewhere) is
refused. Uploads are capped in bytes and pixels before decoding. Nothing is unpickled.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile as StarletteUploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from ..data.images import encode_png, fit_within, image_size
from ..data.samples import Box
from ..deployment.provenance import file_facts
from ..errors import BPIMLError, DataError
from .annotations import AnnotationFile, ImageAnnotation
from .interactive import propose_boxes
from .jobs import TrainJobSpec, cancel_job, job_status, jobs_of, running_job, start_job
from .ordering import ORDERS, ranked
from .safety import (
    LOCAL_NAMES,
    MULTIPART_SLACK,
    REPORT_POLICY,
    allowed_host_names,
    content_disposition,
    local_only,
    read_capped,
    replay,
)
from .state import AppState, ServeSettings, run_in_turn

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
UPLOAD_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp", ".gif")


class BoxesIn(BaseModel):
    name: str
    boxes: list[list[float]] = Field(default_factory=list, max_length=200)  # [x1, y1, x2, y2] in image pixels


class SaveIn(BoxesIn):
    seconds: float = 0.0


class TrainIn(BaseModel):
    epochs: int | None = Field(None, ge=1, le=50)
    samples_per_epoch: int | None = Field(None, ge=8, le=20_000)


class PrefetchIn(BaseModel):
    names: list[str] = Field(default_factory=list, max_length=4)


def _boxes(rows: list[list[float]]) -> list[Box]:
    boxes = []
    for row in rows:
        if len(row) != 4 or not all(np.isfinite(row)):
            raise HTTPException(422, f"a box is four finite numbers [x1, y1, x2, y2], got {row}")
        x1, y1, x2, y2 = row
        boxes.append(Box(min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)))
    return boxes


def _jpeg(rgb: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 90])
    return data.tobytes()


def _annotation_json(annotation: ImageAnnotation) -> dict[str, Any]:
    return {"name": annotation.name, "boxes": [b.to_xyxy() for b in annotation.boxes],
            "accepted": annotation.accepted, "seconds": annotation.seconds}


def create_app(settings: ServeSettings) -> FastAPI:
    """The app for ``settings`` (the dataset and box file are read now; the models on first use)."""
    state = AppState(settings)
    app = FastAPI(title="BoxPromptIML", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.bpiml = state
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.middleware("http")(local_only(allowed_host_names(settings.host, settings.allow_hosts)))
    max_bytes = int(settings.max_upload_mb * 1024 * 1024)
    model_turn = asyncio.Lock()  # requests that run the student wait here, in arrival order

    @app.exception_handler(BPIMLError)
    def _library_error(request: Request, exc: BPIMLError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    def annotations() -> AnnotationFile:
        if state.annotations is None:
            raise HTTPException(409, "annotation needs bpiml serve --dataset D --boxes OUT.json")
        return state.annotations

    @app.get("/", response_class=HTMLResponse)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/api/info")
    def info() -> dict[str, Any]:
        notes = state.annotations
        # names, not the server's paths: the page may be seen by people who should not learn the file system
        return {"dataset": ", ".join(Path(part).name for part in state.dataset.source.split(" + "))
                if state.dataset else None,
                "images": len(state.dataset) if state.dataset else 0,
                "annotate": notes is not None, "boxes_file": Path(settings.boxes).name if settings.boxes else None,
                "model": Path(settings.model).name if settings.model else "the shipped model",
                "teacher": settings.teacher,
                "stats": notes.stats() if notes else None, "first_to_do": notes.first_to_do() if notes else None,
                "max_upload_mb": settings.max_upload_mb, "max_pixels": settings.max_pixels}

    @app.get("/api/dataset")
    def dataset() -> dict[str, Any]:
        if state.dataset is None:
            return {"images": [], "first_to_do": None}
        notes = state.annotations
        rows = []
        for name, sample in state._by_name.items():
            entry = notes.get(name) if notes else None
            rows.append({"name": name, "tampered": sample.is_tampered,
                         "accepted": bool(entry and entry.accepted), "boxes": len(entry.boxes) if entry else 0})
        return {"images": rows, "first_to_do": notes.first_to_do() if notes else None}

    @app.get("/api/dataset/image")
    def dataset_image(name: str = Query(...)) -> Response:
        image = state.read_sample(name)
        preview, _ = fit_within(image, settings.preview_side)
        return Response(_jpeg(preview), media_type="image/jpeg",
                        headers={"X-Image-Width": str(image.shape[1]), "X-Image-Height": str(image.shape[0])})

    @app.get("/api/annotate")
    def annotation(name: str = Query(...)) -> dict[str, Any]:
        notes = annotations()
        sample = state.sample(name)
        try:
            height, width = image_size(sample.image, decode_fallback=False)
        except DataError as exc:
            raise HTTPException(415, f"{name}: not an image this app can read ({exc})") from exc
        return {**_annotation_json(notes.get(name)), "width": width, "height": height,
                "index": notes.position(name), "count": len(notes.names)}

    @app.post("/api/annotate/pseudo")
    def pseudo_mask(body: BoxesIn) -> Response:
        annotations()
        state.sample(body.name)
        start = time.perf_counter()
        mask, scale = state.prompter.pseudo_mask(body.name, lambda: state.read_sample(body.name), _boxes(body.boxes))
        gray = np.clip(mask * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Response(encode_png(gray), media_type="image/png",
                        headers={"X-Elapsed-Ms": f"{(time.perf_counter() - start) * 1000:.0f}"})

    @app.post("/api/annotate/prefetch", status_code=202)
    def prefetch(body: PrefetchIn) -> dict[str, Any]:
        """Encode these images in the background (the one just opened, then the next), one at a time."""
        annotations()
        queued = []
        for name in body.names:
            state.sample(name)
            if name not in state.prefetched:
                state.prefetched.add(name)
                state.background.submit(state.prefetch, name)
                queued.append(name)
        return {"queued": queued}

    # -- "Train on my boxes" (app/jobs.py): one job at a time, its state on disk --------------------------------
    def jobs_dir() -> Path:
        annotations()
        return state.jobs_dir

    @app.post("/api/train", status_code=202)
    def train_start(body: TrainIn) -> dict[str, Any]:
        notes = annotations()
        if not any(notes.get(name).boxes for name in notes.names):
            raise HTTPException(409, "no saved box yet: draw boxes on a few tampered images and accept them first")
        spec = TrainJobSpec(dataset=settings.dataset, boxes=str(settings.boxes), teacher=settings.teacher,
                            checkpoint=settings.checkpoint, init=settings.model or "shipped",
                            epochs=body.epochs or settings.job_epochs,
                            samples_per_epoch=body.samples_per_epoch or settings.job_samples_per_epoch)
        try:
            job = start_job(jobs_dir(), spec)
        except BPIMLError as exc:
            raise HTTPException(409, str(exc)) from exc
        return job_status(job)

    @app.get("/api/train")
    def train_status() -> dict[str, Any]:
        jobs = jobs_of(jobs_dir())
        return {"job": job_status(jobs[-1]) if jobs else None}

    @app.post("/api/train/cancel")
    def train_cancel() -> dict[str, Any]:
        busy = running_job(jobs_dir())
        if busy is None:
            raise HTTPException(409, "no training job is running")
        return cancel_job(busy)

    @app.get("/api/models")
    def models() -> dict[str, Any]:
        """The models Inspect can use: the server's, and each finished job's adapted model."""
        rows = [{"id": "shipped", "label": f"{Path(settings.model).name if settings.model else 'shipped model'}"}]
        for status in state.adapted_jobs():
            rows.append({"id": status["name"], "label": f"adapted ({status['name']}, {status['spec']['epochs']} x "
                                                        f"{status['spec']['samples_per_epoch']} samples)"})
        return {"models": rows}

    @app.get("/api/annotate/order")
    def annotation_order(by: str = Query("dataset")) -> dict[str, Any]:
        """The dataset's images in the order ``by`` (dataset | uncertainty | disagreement); scoring starts in the
        background on the first call and the answer says how far it got (the page asks again)."""
        notes = annotations()
        if by not in ORDERS:
            raise HTTPException(422, f"unknown order {by!r}; known: {', '.join(ORDERS)}")
        if by == "dataset":
            return {"by": by, "names": notes.names, "scored": len(notes.names), "total": len(notes.names),
                    "ready": True}
        model = state.latest_adapted()
        if by == "disagreement" and model is None:
            raise HTTPException(409, "disagreement needs an adapted model: use 'Train on my boxes' first")
        key = (by, model or "shipped")
        if key not in state.order_scores:
            state.order_scores[key] = {}
            state.background.submit(state.score_order, by, model)
        scores = dict(state.order_scores[key])
        return {"by": by, "model": model or "shipped", "names": ranked(notes.names, scores), "scored": len(scores),
                "total": len(notes.names), "ready": len(scores) == len(notes.names)}

    @app.post("/api/annotate/save")
    def save(body: SaveIn) -> dict[str, Any]:
        notes = annotations()
        state.sample(body.name)
        try:
            saved = notes.save(body.name, _boxes(body.boxes), body.seconds)
        except DataError as exc:
            raise HTTPException(422, str(exc)) from exc
        stats = notes.stats()
        log.info("saved %s: %d box(es), %.1f s; %d of %d images done, mean %s s per image", body.name,
                 len(saved.boxes), saved.seconds or 0.0, stats["accepted"], stats["images"], stats["mean_seconds"])
        return {"saved": _annotation_json(saved), "stats": stats, "first_to_do": notes.first_to_do()}

    async def in_turn(request: Request, work: Callable[[], Any]) -> Any:
        return await run_in_turn(model_turn, request, work)

    @app.get("/api/annotate/proposals")
    async def proposals(request: Request, name: str = Query(...),
                        threshold: float = Query(0.5, gt=0, lt=1)) -> dict[str, Any]:
        def propose() -> dict[str, Any]:  # from the adapted model once there is one: it has seen these boxes
            model = state.latest_adapted()
            _, analysis = state.analyse(state.read_sample(name), name, model=model)
            boxes = propose_boxes(analysis.probability.astype(np.float32) / 255.0, threshold)
            return {"boxes": [b.to_xyxy() for b in boxes], "score": round(analysis.score, 4),
                    "model": model or "shipped"}

        return await in_turn(request, propose)

    @app.post("/api/inspect")
    async def inspect_upload(request: Request, model: str | None = Query(None)) -> dict[str, Any]:
        # read from the socket up to the cap, then parse: an UploadFile parameter would have the whole body
        # spooled to disk before this code runs, whatever its size
        body = await read_capped(request, max_bytes)
        try:
            form = await MultiPartParser(request.headers, replay(body), max_files=1, max_fields=4,
                                         max_part_size=MULTIPART_SLACK).parse()
        except (MultiPartException, KeyError) as exc:
            raise HTTPException(400, f"expected a multipart form with one file field 'file' ({exc})") from exc
        del body
        file = form.get("file")
        if not isinstance(file, StarletteUploadFile):
            raise HTTPException(400, "expected a multipart form with one file field 'file'")
        shown = Path(file.filename or "upload").name
        suffix = Path(shown).suffix.lower()
        if suffix not in UPLOAD_SUFFIXES:
            raise HTTPException(415, f"{shown}: not an image file (accepted: {', '.join(UPLOAD_SUFFIXES)})")
        if (file.size or 0) > max_bytes:
            raise HTTPException(413, f"{shown} is {file.size / 1e6:.1f} MB, over this server's upload limit of "
                                     f"{settings.max_upload_mb:g} MB (--max-upload-mb)")
        path = Path(state.uploads.name) / f"{uuid.uuid4().hex}{suffix}"
        path.write_bytes(await file.read())
        await form.close()

        def analyse_upload() -> dict[str, Any]:  # decoding and the model run off the event loop
            try:
                image = state.read(path, shown)
                facts = file_facts(path.read_bytes(), shown)
            finally:
                path.unlink(missing_ok=True)
            key, analysis = state.analyse(image, shown, facts, model)
            return state.describe_analysis(key, analysis)

        try:
            return await in_turn(request, analyse_upload)
        finally:
            path.unlink(missing_ok=True)  # also when the request was dropped before its turn

    @app.post("/api/inspect/dataset")
    async def inspect_dataset(request: Request, name: str = Query(...), model: str | None = Query(None)
                              ) -> dict[str, Any]:
        def analyse_sample() -> dict[str, Any]:
            image = state.read_sample(name)
            key, analysis = state.analyse(image, name, file_facts(state.sample(name).image.read_bytes(), name),
                                          model)
            return state.describe_analysis(key, analysis)

        return await in_turn(request, analyse_sample)

    @app.get("/api/inspect/{key}/image")
    def analysis_image(key: str) -> Response:
        return Response(_jpeg(state.analysis(key).preview), media_type="image/jpeg")

    @app.get("/api/inspect/{key}/map.png")
    def analysis_map(key: str, full: bool = False) -> Response:
        analysis = state.analysis(key)
        prob = analysis.probability
        if not full:
            height, width = analysis.preview.shape[:2]
            prob = cv2.resize(prob, (width, height), interpolation=cv2.INTER_AREA)
        stem = Path(analysis.name).stem
        headers = {"Content-Disposition": content_disposition(f"{stem}_map.png")} if full else {}
        return Response(encode_png(prob), media_type="image/png", headers=headers)

    @app.get("/api/inspect/{key}/mask.png")
    def analysis_mask(key: str, threshold: float = Query(0.5, gt=0, lt=1)) -> Response:
        analysis = state.analysis(key)
        mask = ((analysis.probability > threshold * 255.0) * 255).astype(np.uint8)
        stem = Path(analysis.name).stem
        return Response(encode_png(mask), media_type="image/png",
                        headers={"Content-Disposition": content_disposition(f"{stem}_mask.png")})

    @app.get("/api/inspect/{key}/report.html")
    def analysis_report(key: str, threshold: float = Query(0.5, gt=0, lt=1)) -> Response:
        from ..deployment.report import render_report

        analysis = state.analysis(key)
        predictor = state.predictor_for(analysis.model)
        probability = analysis.probability.astype(np.float32) / 255.0
        page = render_report(analysis.preview, probability, analysis.score, image_name=analysis.name,
                             model=predictor.describe(), decision=predictor.decision,
                             gate=predictor.map_gate, threshold=threshold, created=analysis.created,
                             facts=analysis.facts, identity=predictor.identity())
        stem = Path(analysis.name).stem
        return Response(page, media_type="text/html",
                        headers={"Content-Disposition": content_disposition(f"{stem}_report.html"),
                                 "Content-Security-Policy": REPORT_POLICY})

    return app


def serve(settings: ServeSettings) -> None:
    """Run the app with uvicorn until interrupted."""
    import uvicorn

    app = create_app(settings)
    threading.Thread(target=app.state.bpiml.warm_up, daemon=True).start()
    if settings.host not in LOCAL_NAMES:
        log.warning("listening on %s: anyone who can reach this machine can read the dataset's images and write "
                    "the box file; there is no login. Requests must address it as one of: %s (--allow-host adds "
                    "names)", settings.host, ", ".join(sorted(allowed_host_names(settings.host, settings.allow_hosts))))
    print(f"bpiml serve: open http://{'127.0.0.1' if settings.host == '0.0.0.0' else settings.host}:"
          f"{settings.port}/ (Ctrl-C stops)", flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")
