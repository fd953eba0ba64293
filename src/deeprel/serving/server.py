"""Running the service: :func:`serve` (``deeprel serve``) in one process, or in several under uvicorn.

With one worker the app is built here and uvicorn runs it in this process. With several, uvicorn's own
supervisor binds the port once and starts each worker as a process of its own, which builds its own app
(:func:`worker_app`: its own loaded model and batcher) from what this process left in the environment.
Worker processes rather than more torch threads in one process, as ``deeprel extract`` uses them: measured
there, they were faster on free cores and far faster on cores shared with other jobs.
"""

from __future__ import annotations

import copy
import ipaddress
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from deeprel.serving.app import create_app
from deeprel.serving.settings import ServeSettings

if TYPE_CHECKING:
    from fastapi import FastAPI

WORKER_ENVIRONMENT = "DEEPREL_SERVE_WORKER"  # the JSON of a WorkerSpec, for the worker processes
WORKER_HEALTHCHECK_SECONDS = 30  # uvicorn's 5 s: a worker loading its model on busy cores may answer late


class WorkerSpec(BaseModel):
    """What each worker process builds its app from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_dir: Path
    settings: ServeSettings


def serve(model_dir: str | Path, settings: ServeSettings, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve until stopped, in ``settings.workers`` processes (see :func:`resolve_workers`). A bad model
    directory or device fails here, before any port is bound or any worker starts."""
    import uvicorn

    settings = resolve_workers(settings)
    log_config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    log_config["loggers"]["deeprel"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    if settings.workers == 1:
        app = create_app(model_dir, settings)
        _warn_if_open(host, settings)
        uvicorn.run(app, host=host, port=port, log_config=log_config)
        return
    check_model_directory(model_dir)
    _warn_if_open(host, settings)
    spec = WorkerSpec(model_dir=Path(model_dir), settings=settings)
    os.environ[WORKER_ENVIRONMENT] = spec.model_dump_json(context={"reveal_secrets": True})
    try:
        uvicorn.run(
            f"{__name__}:worker_app",
            factory=True,
            host=host,
            port=port,
            workers=settings.workers,
            log_config=log_config,
            timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
        )
    finally:
        del os.environ[WORKER_ENVIRONMENT]


def worker_app() -> FastAPI:
    """The app of one worker process (uvicorn's factory), from the spec :func:`serve` left in the environment."""
    text = os.environ.pop(WORKER_ENVIRONMENT, None)  # read once; nothing this process starts needs the key
    if text is None:
        raise RuntimeError(f"${WORKER_ENVIRONMENT} is not set: worker_app runs in the workers that serve() starts")
    spec = WorkerSpec.model_validate_json(text)
    return create_app(spec.model_dir, spec.settings)


def resolve_workers(settings: ServeSettings) -> ServeSettings:
    """The settings with the worker count decided (unset: one per usable CPU core, 1 on CUDA) and, with
    several workers, each one's torch threads (unset: the usable cores shared out, at least 1 each). One
    worker keeps torch's own thread default."""
    from deeprel.runtime import pick_device, usable_cores

    device = pick_device(settings.device)  # a bad device fails here, in this process
    workers = settings.workers or (1 if device.type == "cuda" else usable_cores())
    threads = settings.num_threads
    if threads is None and workers > 1:
        threads = max(1, usable_cores() // workers)
    return settings.model_copy(update={"workers": workers, "num_threads": threads})


def check_model_directory(model_dir: str | Path) -> None:
    """Load the model once and drop it: a bad directory fails with its name before any worker starts."""
    from deeprel.model.files import load_model

    load_model(model_dir)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (a host name other than localhost counts as not)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _warn_if_open(host: str, settings: ServeSettings) -> None:
    if settings.api_key is None and not is_loopback(host):
        print(
            f"warning: serving on {host} without an API key, anyone who reaches it may use it"
            " (set --api-key-file or $DEEPREL_API_KEY)",
            file=sys.stderr,
        )
