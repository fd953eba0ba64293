"""Model directories: weights in safetensors, configuration and vocabularies in JSON. No pickle anywhere.

A model directory holds
    config.json        the full training configuration (enough to rebuild the model)
    labels.json        entity types, relation types, BIO tags
    vocab.json         the static-vector words and the character inventory
    model.safetensors  every weight and buffer except the pre-trained encoder's
    encoder/           fine-tuned mode only: the trained encoder, in Hugging Face layout (safetensors)
    meta.json          deeprel version, parameter counts, how it was trained

Wherever a model directory is asked for, the name of an installed model package (``deeprel package``,
:mod:`deeprel.model.packages`) does as well: :func:`model_directory` turns either into the directory.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from deeprel.atomic import staged_directory
from deeprel.config import DEFAULT_ENCODER, Config, ConfigError, parse_config
from deeprel.embeddings.chars import CharVocabulary
from deeprel.embeddings.contextual import (
    ContextualEncoder,
    EncoderError,
    resolve_encoder_path,
)
from deeprel.embeddings.static import StaticEmbedding, WordVocabulary
from deeprel.model.inputs import Featurizer, Labels
from deeprel.model.joint import JointModel, TokenEmbedder
from deeprel.model.packages import installed_model_directory, installed_models, is_package_name

REQUIRED_FILES = ("config.json", "labels.json", "vocab.json", "model.safetensors")
ENCODER_PREFIX = "embedder.contextual.encoder."
FINETUNED_ENCODER_DIR = "encoder"


class ModelLoadError(ValueError):
    """A model directory is missing, incomplete or corrupt; the message names the file."""


@dataclass
class LoadedModel:
    """What a model directory holds: the model, its featurizer, the configuration it was trained with."""

    model: JointModel
    featurizer: Featurizer
    config: Config
    meta: dict[str, Any]


def build_model(
    config: Config,
    labels: Labels,
    chars: CharVocabulary | None,
    static: StaticEmbedding | None,
    encoder_base: Path | None = None,
) -> tuple[JointModel, Featurizer]:
    """The joint model and its featurizer; ``encoder_base`` resolves a relative encoder path."""
    contextual = config.embeddings.contextual
    encoder = (
        ContextualEncoder(contextual, resolve_encoder_path(contextual.encoder, encoder_base))
        if contextual.enabled
        else None
    )
    embedder = TokenEmbedder(
        config.embeddings, config.model.cell, encoder, static, len(chars) if chars is not None else 0
    )
    model = JointModel(config.model, labels, embedder)
    featurizer = Featurizer(labels, static.vocabulary if static is not None else None, chars, config.embeddings.casing)
    return model, featurizer


def static_embedding(config: Config, words: list[str], matrix: np.ndarray) -> StaticEmbedding | None:
    if not config.embeddings.static.enabled:
        return None
    return StaticEmbedding.from_vectors(words, matrix, lowercase=config.embeddings.static.lowercase)


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def save_model(
    model: JointModel, featurizer: Featurizer, config: Config, directory: str | Path, meta: dict[str, Any]
) -> Path:
    """Write a model directory (see the module doc) atomically; ``config`` is the one it was built from."""
    directory = Path(directory)
    with staged_directory(directory) as staging:
        encoder = model.embedder.contextual
        if encoder is not None and encoder.finetuned:
            encoder.encoder.save_pretrained(staging / FINETUNED_ENCODER_DIR, safe_serialization=True)
            encoder.tokenizer.save_pretrained(staging / FINETUNED_ENCODER_DIR)
            config = config.with_overrides({"embeddings.contextual.encoder": FINETUNED_ENCODER_DIR})
        _write_json(staging / "config.json", config.to_dict())
        _write_json(staging / "labels.json", model.labels.to_dict())
        _write_json(
            staging / "vocab.json",
            {
                "words": featurizer.words.to_dict() if featurizer.words is not None else None,
                "static_dim": model.embedder.static.output_size if model.embedder.static is not None else None,
                "chars": featurizer.chars.to_dict() if featurizer.chars is not None else None,
            },
        )
        state = {k: v.contiguous() for k, v in model.state_dict().items() if not k.startswith(ENCODER_PREFIX)}
        save_file(state, str(staging / "model.safetensors"))
        _write_json(staging / "meta.json", meta)
    return directory


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelLoadError(f"{path}: unreadable: {error}") from None


def model_config(directory: Path, raw: Any = None) -> Config:
    """A model directory's ``config.json`` (or ``raw``, read from it already), checked; errors name the file."""
    path = directory / "config.json"
    try:
        return parse_config(read_json(path) if raw is None else raw, source=str(path))
    except ConfigError as error:
        raise ModelLoadError(str(error)) from None


def model_directory(reference: str | Path) -> Path:
    """The model directory ``reference`` names, checked to hold the required files: the name of an installed
    model package (a package comes first, as in ``spacy.load``), else a path."""
    text = str(reference)
    directory = (installed_model_directory(text) if is_package_name(text) else None) or Path(reference)
    if not directory.is_dir():
        if is_package_name(text):
            installed = ", ".join(sorted(installed_models())) or "none"
            raise ModelLoadError(
                f"{text}: no such model directory, and no installed deeprel model package is named {text!r}"
                f" (installed: {installed})"
            )
        raise ModelLoadError(f"{directory}: no such model directory")
    missing = [name for name in REQUIRED_FILES if not (directory / name).is_file()]
    if missing:
        raise ModelLoadError(f"{directory}: incomplete model directory, missing {', '.join(missing)}")
    return directory


def copy_model_directory(source: str | Path, target: str | Path) -> str | None:
    """Copy a model directory to ``target`` (atomically) so that the copy works on its own: an encoder that
    is a local folder (a fine-tuned model's ``encoder/``, or the folder a frozen model names) goes inside it.
    Returns the encoder package the copy needs installed: the bundled MiniLM's name, or None."""
    source, target = model_directory(source), Path(target)
    if target.resolve() == source.resolve():
        raise ValueError(f"{target}: cannot copy a model directory onto itself")
    raw = read_json(source / "config.json")
    contextual = model_config(source, raw).embeddings.contextual
    with staged_directory(target) as staging:
        for name in (*REQUIRED_FILES, "meta.json"):
            if (source / name).is_file():
                shutil.copy2(source / name, staging / name)
        needs = None
        if contextual.enabled and contextual.encoder == DEFAULT_ENCODER:
            needs = DEFAULT_ENCODER
        elif contextual.enabled:
            try:
                encoder = resolve_encoder_path(contextual.encoder, source)
            except EncoderError as error:
                raise ModelLoadError(f"{source}: {error}") from None
            shutil.copytree(encoder, staging / FINETUNED_ENCODER_DIR)
            if contextual.encoder != FINETUNED_ENCODER_DIR:
                raw["embeddings"]["contextual"]["encoder"] = FINETUNED_ENCODER_DIR
                _write_json(staging / "config.json", raw)
    return needs


def load_model(reference: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild a model from its directory (or an installed model package's, by name). Only JSON and
    safetensors are read: nothing is executed."""
    directory = model_directory(reference)
    config = model_config(directory)
    try:
        labels = Labels.from_dict(read_json(directory / "labels.json"))
        vocab = read_json(directory / "vocab.json")
        words = WordVocabulary.from_dict(vocab["words"]) if vocab["words"] is not None else None
        chars = CharVocabulary.from_dict(vocab["chars"]) if vocab["chars"] is not None else None
    except (KeyError, TypeError, ValueError) as error:
        raise ModelLoadError(f"{directory}: labels.json or vocab.json is malformed: {error}") from None
    try:
        state = load_file(str(directory / "model.safetensors"))
    except (SafetensorError, OSError) as error:
        raise ModelLoadError(f"{directory / 'model.safetensors'}: corrupt weights file: {error}") from None
    try:
        static = StaticEmbedding(words, vocab["static_dim"]) if words is not None else None  # weights come below
        model, featurizer = build_model(config, labels, chars, static, encoder_base=directory)
    except EncoderError as error:
        raise ModelLoadError(f"{directory}: {error}") from None
    expected = {k for k in model.state_dict() if not k.startswith(ENCODER_PREFIX)}
    unknown, absent = sorted(set(state) - expected), sorted(expected - set(state))
    if unknown or absent:
        raise ModelLoadError(
            f"{directory / 'model.safetensors'}: weights do not match config.json"
            f" (missing: {absent[:5]}, unexpected: {unknown[:5]})"
        )
    try:
        model.load_state_dict(state, strict=False)
    except RuntimeError as error:
        raise ModelLoadError(f"{directory / 'model.safetensors'}: weights do not match config.json: {error}") from None
    meta = read_json(directory / "meta.json") if (directory / "meta.json").is_file() else {}
    return LoadedModel(model.to(device).eval(), featurizer, config, meta)
