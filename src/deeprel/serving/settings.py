"""What a running service may accept and how it batches: one frozen, validated value."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, SerializationInfo, field_serializer

from deeprel.runtime import DEFAULT_PRECISION, Precision


class ServeSettings(BaseModel):
    """Limits, batching, access and (when the service loads the model itself) how to load it and in how many
    worker processes. The limits and the queue hold for each worker process on its own."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_body_bytes: int = Field(1_000_000, ge=1, description="largest request body accepted; larger ones get 413")
    max_text_chars: int = Field(20_000, ge=1, description="most characters in one text")
    max_texts: int = Field(64, ge=1, description="most texts in one request")
    max_queue: int = Field(
        256,
        ge=1,
        description="most requests waiting for or in inference at once, per worker; more get 503 and Retry-After",
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
    num_threads: int | None = Field(
        None,
        ge=1,
        description="torch CPU threads of each worker (model directory only; unset: torch's default with one"
        " worker, the usable cores shared out among several)",
    )
    precision: Precision = Field(
        DEFAULT_PRECISION, description="the encoder's: fp32, bf16, int8 (CPU) or auto (model directory only)"
    )
    entity_scores: bool = Field(True, description="score each entity by its CRF marginal (model directory only)")
    workers: int | None = Field(
        None,
        ge=1,
        description="worker processes, each with its own model and queue (unset: one per usable CPU core, 1 on CUDA)",
    )
    api_key: SecretStr | None = Field(
        None,
        min_length=1,
        description="when set, every request but GET /health needs the header Authorization: Bearer <key>",
    )

    @field_serializer("api_key", when_used="json")
    def _api_key_masked_unless_asked(self, key: SecretStr | None, info: SerializationInfo) -> str | None:
        """Masked, as pydantic writes a secret, unless the context asks for it (to hand it to the workers)."""
        if key is None:
            return None
        return key.get_secret_value() if (info.context or {}).get("reveal_secrets") else str(key)
