"""The search space: the three BiRNN depths plus other configuration keys, with defaults in code.

A space file (TOML or JSON) changes the defaults::

    exclude = ["model.threshold"]          # default parameters not to search (the base config's value stays)

    [depths]                               # inclusive [low, high] per stack
    shared = [0, 2]
    ner = [0, 3]
    re = [1, 3]

    [params."model.hidden_size"]           # replaces the default entry of that key
    type = "categorical"
    choices = [128, 256]

    [params."model.cell"]                  # adds a key: any configuration key can be searched
    type = "categorical"
    choices = ["gru", "lstm"]

Parameters are Optuna distributions named by their dotted configuration key, so a trial's params are
directly the overrides of the configuration it trains.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import optuna
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from deeprel.config import Config, ConfigError, read_tree

DEPTH_KEYS = ("model.shared_depth", "model.ner_depth", "model.re_depth")


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class IntParam(_Strict):
    type: Literal["int"]
    low: int
    high: int
    step: int = Field(1, ge=1)
    log: bool = False

    @model_validator(mode="after")
    def _valid_range(self) -> IntParam:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) is above high ({self.high})")
        if self.log and (self.low < 1 or self.step != 1):
            raise ValueError("a log scale needs low >= 1 and step = 1")
        return self

    def suggest(self, trial: optuna.Trial, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, step=self.step, log=self.log)

    def extremes(self) -> list[Any]:
        return [self.low, self.high]


class FloatParam(_Strict):
    type: Literal["float"]
    low: float
    high: float
    step: float | None = Field(None, gt=0)
    log: bool = False

    @model_validator(mode="after")
    def _valid_range(self) -> FloatParam:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) is above high ({self.high})")
        if self.log and (self.low <= 0 or self.step is not None):
            raise ValueError("a log scale needs low > 0 and no step")
        return self

    def suggest(self, trial: optuna.Trial, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, step=self.step, log=self.log)

    def extremes(self) -> list[Any]:
        return [self.low, self.high]


class CategoricalParam(_Strict):
    type: Literal["categorical"]
    choices: list[StrictBool | StrictInt | StrictFloat | StrictStr] = Field(min_length=1)

    def suggest(self, trial: optuna.Trial, name: str) -> Any:
        return trial.suggest_categorical(name, self.choices)

    def extremes(self) -> list[Any]:
        return list(self.choices)


Param = Annotated[IntParam | FloatParam | CategoricalParam, Field(discriminator="type")]

DEFAULT_PARAMS: dict[str, IntParam | FloatParam | CategoricalParam] = {
    "model.hidden_size": CategoricalParam(type="categorical", choices=[64, 128, 256]),
    "model.rnn_dropout": FloatParam(type="float", low=0.1, high=0.5),
    "model.re_dropout": FloatParam(type="float", low=0.1, high=0.6),
    "training.learning_rate": FloatParam(type="float", low=3e-4, high=3e-3, log=True),
    "training.lambda_re": FloatParam(type="float", low=1.0, high=20.0, log=True),
    "model.threshold": FloatParam(type="float", low=0.5, high=0.95),
}


class DepthRanges(_Strict):
    """Inclusive [low, high] depth ranges for the shared, NER-specific and RE-specific stacks."""

    shared: tuple[int, int] = (0, 3)
    ner: tuple[int, int] = (0, 3)
    re: tuple[int, int] = (0, 3)

    @model_validator(mode="after")
    def _valid_ranges(self) -> DepthRanges:
        for name, (low, high) in (("shared", self.shared), ("ner", self.ner), ("re", self.re)):
            if not 0 <= low <= high:
                raise ValueError(f"{name}: need 0 <= low <= high, got [{low}, {high}]")
        if self.shared[1] == 0 and (self.ner[1] == 0 or self.re[1] == 0):
            raise ValueError("no feasible depths: with no shared layer each task needs a layer of its own")
        return self

    def suggest(self, trial: optuna.Trial) -> dict[str, int]:
        """Depths with s + t_e >= 1 and s + t_r >= 1 by construction, so no trial is wasted on an infeasible
        model: s = 0 is offered only when both tasks can have a layer, and then their ranges start at 1."""
        shared_low = self.shared[0] if self.ner[1] >= 1 and self.re[1] >= 1 else max(self.shared[0], 1)
        shared = trial.suggest_int(DEPTH_KEYS[0], shared_low, self.shared[1])
        task_low = 0 if shared >= 1 else 1
        ner = trial.suggest_int(DEPTH_KEYS[1], max(self.ner[0], task_low), self.ner[1])
        re_ = trial.suggest_int(DEPTH_KEYS[2], max(self.re[0], task_low), self.re[1])
        return dict(zip(DEPTH_KEYS, (shared, ner, re_)))


class SearchSpace(_Strict):
    depths: DepthRanges = DepthRanges()
    params: dict[str, Param] = Field(default_factory=lambda: dict(DEFAULT_PARAMS))

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """Sample one trial's configuration overrides (dotted keys)."""
        values: dict[str, Any] = self.depths.suggest(trial)
        for name, param in self.params.items():
            values[name] = param.suggest(trial, name)
        return values

    def check(self, config: Config, source: str) -> None:
        """Every key must be a configuration key, and every bound or choice a valid value for it."""
        for name, param in self.params.items():
            if name in DEPTH_KEYS:
                raise ConfigError(f"{source}: params.{name}: the depths are searched through [depths], not params")
            for value in param.extremes():
                try:
                    config.with_overrides({name: value})
                except ConfigError as error:
                    raise ConfigError(f"{source}: params.{name}: value {value!r} is not usable: {error}") from None


class SpaceFile(_Strict):
    """What a space file may say: it changes the default space rather than restating it."""

    exclude: list[str] = []
    depths: DepthRanges | None = None
    params: dict[str, Param] = {}

    def to_space(self) -> SearchSpace:
        unknown = [name for name in self.exclude if name not in DEFAULT_PARAMS]
        if unknown:
            raise ValueError(
                f"exclude: {', '.join(unknown)} not among the default parameters ({', '.join(DEFAULT_PARAMS)})"
            )
        params = {k: v for k, v in DEFAULT_PARAMS.items() if k not in self.exclude} | self.params
        return SearchSpace(depths=self.depths or DepthRanges(), params=params)


def load_space(path: str | Path) -> SearchSpace:
    """Read a TOML or JSON space file (see the module docstring); errors name the file and the key."""
    tree = read_tree(path, "the search space")
    try:
        return SpaceFile.model_validate(tree).to_space()
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in error.errors()
        )
        raise ConfigError(f"{path}: invalid search space: {problems}") from None
    except ValueError as error:
        raise ConfigError(f"{path}: invalid search space: {error}") from None
