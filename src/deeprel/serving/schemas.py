"""The HTTP service's request and response bodies, validated by pydantic and documented in OpenAPI.

The response models mirror ``deeprel.api.Extraction.to_dict()`` field for field.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator


class SentenceOut(BaseModel):
    start_char: int = Field(description="offset of the sentence's first character in the text")
    end_char: int = Field(description="offset just past the sentence's last character")
    tokens: list[str]
    token_offsets: list[tuple[int, int]] = Field(description="[start_char, end_char) of each token in the text")


class EntityOut(BaseModel):
    type: str
    text: str = Field(description="the mention, equal to text[start_char:end_char]")
    start_char: int
    end_char: int
    sentence: int = Field(description="index into sentences")
    token_start: int = Field(description="first token, indexing the sentence's tokens")
    token_end: int = Field(description="one past the last token")
    score: float = Field(description="the tagger's confidence: the smallest CRF marginal of the span's tags")


class RelationOut(BaseModel):
    type: str
    head: int = Field(description="index into entities")
    tail: int = Field(description="index into entities")
    score: float = Field(description="sigmoid score of the relation type for this ordered pair")


class ExtractionOut(BaseModel):
    text: str
    sentences: list[SentenceOut]
    entities: list[EntityOut]
    relations: list[RelationOut]


class ExtractResponse(BaseModel):
    results: list[ExtractionOut] = Field(description="one per text, in the order given")


class ModelInfo(BaseModel):
    name: str
    version: str = Field(description="deeprel version of this service")
    entity_types: list[str]
    relation_types: list[str]
    threshold: float = Field(description="relation threshold used when a request sets none")
    device: str
    meta: dict[str, Any] = Field(description="the model's meta.json: parameter counts, how it was trained")


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
