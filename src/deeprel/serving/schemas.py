"""The HTTP service's request and response bodies, validated by pydantic and documented in OpenAPI.

Each result is the library's one extraction schema, :class:`deeprel.data.extraction.Extraction`, as
``Extraction.to_dict()`` writes it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from deeprel.data.extraction import Extraction


class ExtractResponse(BaseModel):
    results: list[Extraction] = Field(description="one per text, in the order given")


class ModelInfo(BaseModel):
    name: str
    version: str = Field(description="deeprel version of this service")
    entity_types: list[str]
    relation_types: list[str]
    threshold: float = Field(description="relation threshold used when a request sets none")
    device: str
    precision: str = Field("fp32", description="the encoder's precision: fp32, bf16 or int8")
    meta: dict[str, Any] = Field(description="the model's meta.json: parameter counts, how it was trained")
    workers: int = Field(1, ge=1, description="worker processes serving, each with its own copy of the model")


class Health(BaseModel):
    status: Literal["ok"]


class ExtractRequest(BaseModel):
    """A ``POST /extract`` body; :func:`extract_request_model` makes one with the service's limits."""

    model_config = ConfigDict(extra="forbid")

    text: str | None = None
    texts: list[str] | None = None
    threshold: float | None = None

    @model_validator(mode="after")
    def _one_of_text_or_texts(self) -> ExtractRequest:
        if (self.text is None) == (self.texts is None):
            raise ValueError("give exactly one of 'text' (a string) or 'texts' (a list of strings)")
        return self

    def all_texts(self) -> list[str]:
        return [self.text] if self.text is not None else list(self.texts or [])


def extract_request_model(max_texts: int, max_text_chars: int) -> type[ExtractRequest]:
    """``ExtractRequest`` with this service's limits built in, so that OpenAPI documents them too."""
    bounded_text = Annotated[str, Field(max_length=max_text_chars)]
    return create_model(
        "ExtractRequest",
        __base__=ExtractRequest,
        text=(bounded_text | None, Field(None, description=f"one document (at most {max_text_chars} characters)")),
        texts=(
            Annotated[list[bounded_text], Field(min_length=1, max_length=max_texts)] | None,
            Field(None, description=f"several documents (1 to {max_texts}), extracted together"),
        ),
        threshold=(
            Annotated[float, Field(gt=0, lt=1)] | None,
            Field(None, description="relation threshold for this request (the service's default when unset)"),
        ),
    )
