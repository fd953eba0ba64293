"""The HTTP service: ``POST /extract``, ``GET /model``, ``GET /health`` and the relation visualiser page.

FastAPI validates requests and documents them in OpenAPI; a middleware caps the request body while it is
read, whatever Content-Length says; a :class:`~deeprel.serving.batching.Batcher` batches concurrent
requests through the one model; with an API key set, another middleware asks every request but
``GET /health`` for it. Run it with :func:`~deeprel.serving.server.serve` (``deeprel serve``), in one
process or several.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the endpoints' annotations at run time,
# and the request model is made inside create_app (its limits are settings).

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

import deeprel
from deeprel.api import Extractor
from deeprel.serving.auth import BearerToken
from deeprel.serving.batching import Batcher, QueueFull
from deeprel.serving.body_limit import RequestBodyLimit
from deeprel.serving.schemas import ExtractResponse, Health, ModelInfo, extract_request_model
from deeprel.serving.settings import ServeSettings
from deeprel.visual import static_dir

logger = logging.getLogger(__name__)


def create_app(
    extractor_or_model_dir: Extractor | str | Path, settings: ServeSettings | None = None, name: str | None = None
) -> FastAPI:
    """The service for a loaded ``Extractor`` or a model directory (loaded here with the settings' device,
    threshold and threads). ``name`` is what ``/model`` reports; by default the model directory's name,
    or its run directory's name for the usual ``RUN/model`` layout."""
    settings = settings or ServeSettings()
    if isinstance(extractor_or_model_dir, Extractor):
        extractor = extractor_or_model_dir
    else:
        extractor = deeprel.load(
            extractor_or_model_dir,
            device=settings.device,
            batch_size=settings.batch_size,
            threshold=settings.threshold,
            num_threads=settings.num_threads,
            precision=settings.precision,
            entity_scores=settings.entity_scores,
        )
        name = name or _model_name(Path(extractor_or_model_dir))
    info = ModelInfo(
        name=name or "deeprel",
        version=deeprel.__version__,
        entity_types=list(extractor.entity_types),
        relation_types=list(extractor.relation_types),
        threshold=extractor.relation_threshold,
        device=extractor.device,
        precision=extractor.precision,
        meta=extractor.meta,
        workers=settings.workers or 1,
    )
    batcher = Batcher(extractor, settings.batch_size, settings.max_wait_ms / 1000, settings.max_queue)
    ExtractRequest = extract_request_model(settings.max_texts, settings.max_text_chars)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with batcher.running():
            yield

    app = FastAPI(
        title="deeprel",
        version=deeprel.__version__,
        description="Joint named-entity recognition and relation extraction (Crone 2020).",
        lifespan=lifespan,
        docs_url=None,  # Swagger UI and ReDoc load their scripts from a CDN; the schema stays at /openapi.json
        redoc_url=None,
    )
    app.add_middleware(RequestBodyLimit, max_bytes=settings.max_body_bytes)
    if settings.api_key is not None:
        app.add_middleware(BearerToken, key=settings.api_key)  # added last, so it runs first

    @app.post(
        "/extract",
        response_model=ExtractResponse,
        responses={413: {"description": "request body too large"}, 503: {"description": "too many requests"}},
    )
    async def extract(body: ExtractRequest) -> ExtractResponse:
        """Entities and relations in one text (``text``) or several (``texts``)."""
        try:
            results = await batcher.submit(body.all_texts(), body.threshold)
        except QueueFull as error:
            raise HTTPException(
                503, detail=f"busy: {error}; retry later", headers={"Retry-After": str(settings.retry_after_seconds)}
            ) from None
        return ExtractResponse(results=results)

    @app.get("/model", response_model=ModelInfo)
    async def model() -> ModelInfo:
        """The loaded model: its types, the default relation threshold, where it runs, its meta.json."""
        return info

    @app.get("/health", response_model=Health)
    async def health() -> Health:
        return Health(status="ok")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(static_dir() / "index.html")

    app.mount("/static", StaticFiles(directory=static_dir()), name="static")

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        # FastAPI's default echoes each bad input back, which may be a megabyte of text.
        errors = [{key: e[key] for key in ("type", "loc", "msg") if key in e} for e in error.errors()]
        return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception) -> JSONResponse:
        logger.error("unexpected error on %s %s", request.method, request.url.path, exc_info=error)
        return JSONResponse({"detail": "internal error"}, status_code=500)

    return app


def _model_name(directory: Path) -> str:
    directory = directory.resolve()
    return directory.parent.name if directory.name == "model" and directory.parent.name else directory.name
