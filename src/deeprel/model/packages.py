"""Installed model packages: a model directory carried by a pip-installable package, found by its name.

``deeprel package`` builds them. A package ``NAME`` holds the importable package ``NAME`` with the model
directory in ``NAME/model/``, and declares itself in the ``deeprel_models`` entry-point group
(``NAME = "NAME"``). Finding it reads the installed distributions' metadata and locates the package's
folder with :func:`importlib.util.find_spec`, which does not import it: no code of an installed model is
ever executed.
"""

from __future__ import annotations

import importlib.util
import re
from importlib.metadata import entry_points
from pathlib import Path

ENTRY_POINT_GROUP = "deeprel_models"
PACKAGE_MODEL_DIR = "model"  # the model directory inside the package's folder
PACKAGE_META = "deeprel-package.json"  # the package's metadata (labels, scores, ...), beside model/
# A package name is a Python module name in lowercase (as spaCy's pipeline packages, e.g. en_core_web_sm),
# so that the distribution, the import package and the name given to deeprel.load are one string; single
# underscores between letters and digits only, since PEP 503 normalisation would merge "a__b" into "a_b".
PACKAGE_NAME = re.compile(r"[a-z](?:_?[a-z0-9])*")


def is_package_name(reference: str) -> bool:
    return PACKAGE_NAME.fullmatch(reference) is not None


def installed_models() -> dict[str, str]:
    """The names of the installed model packages, each with the module that holds it."""
    return {point.name: point.value for point in entry_points(group=ENTRY_POINT_GROUP)}


def installed_model_directory(name: str) -> Path | None:
    """The model directory of the installed package ``name``, or None when no such package is installed."""
    module = installed_models().get(name)
    if module is None or not is_package_name(module):  # a dotted name would import its parent packages
        return None
    spec = importlib.util.find_spec(module)  # a top-level name: located, not imported
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / PACKAGE_MODEL_DIR
