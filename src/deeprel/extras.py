"""The optional extras (``pip install 'deeprel[EXTRA]'``) and one clear error when one is missing.

Kept free of torch and of the optional packages themselves, so that the command line can check an extra
before it imports the module that needs it.
"""

from __future__ import annotations

import importlib

# The modules each extra of pyproject.toml provides (import names, not distribution names).
EXTRAS: dict[str, tuple[str, ...]] = {
    "serve": ("fastapi", "uvicorn"),
    "tune": ("optuna", "sqlalchemy", "tomli_w", "matplotlib"),
    "plots": ("matplotlib",),
    "package": ("build", "setuptools", "tomli_w"),
    "ray": ("ray", "ray.data", "pyarrow"),
}


class MissingExtraError(ImportError):
    """A feature needs an optional extra of deeprel that is not installed."""


def require(extra: str, what: str) -> None:
    """Import the modules of ``extra``; raise :class:`MissingExtraError` naming the first that is missing.

    ``what`` names the feature for the message, e.g. ``"deeprel serve"``.
    """
    for module in EXTRAS[extra]:
        try:
            importlib.import_module(module)
        except ImportError as error:
            installed = error.name != module  # found, but something it imports is missing or broken
            reason = f"{module} cannot be imported: {error}" if installed else f"{module} is not installed"
            raise MissingExtraError(
                f"{what} needs the optional '{extra}' extra ({reason}): pip install 'deeprel[{extra}]'"
            ) from error
