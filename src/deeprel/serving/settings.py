"""What a running service may accept and how it batches: one frozen, validated value."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ServeSettings(BaseModel):
    """Limits, batching and (when the service loads the model itself) how to load it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_body_bytes: int = Field(1_000_000, ge=1, description="largest request body accepted; larger ones get 413")
    max_text_chars: int = Field(20_000, ge=1, description="most characters in one text")
    max_texts: int = Field(64, ge=1, description="most texts in one request")
    max_queue: int = Field(
        256, ge=1, description="most requests waiting for or in inference at once; more get 503 and Retry-After"
    )
    retry_after_seconds: int = Field(1, ge=1, description="the Retry-After sent with a 503")
    batch_size: int = Field(32, ge=1, description="sentences per model batch, and per round of the inference worker")
    max_wait_ms: float = Field(
        5.0, ge=0, description="how long the worker waits for more requests to fill a batch once one has arrived"
    )
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N (used only when given a model directory)")
    threshold: float | None = Field(
        None, gt=0, lt=1, description="default relation threshold (model's own when unset; model directory only)"
    )
    num_threads: int | None = Field(None, ge=1, description="torch CPU threads (model directory only)")
