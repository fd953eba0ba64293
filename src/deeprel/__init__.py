"""deeprel: joint named-entity recognition and relation extraction (Crone 2020).

    import deeprel
    extractor = deeprel.load("path/to/model")
    result = extractor("John Smith lives in Boston.")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from deeprel.api import Extractor


def load(path: Any, **options: Any) -> Extractor:
    """Load a trained model directory; see :func:`deeprel.api.load` for the options."""
    from deeprel.api import load as load_extractor  # torch is imported only when a model is loaded

    return load_extractor(path, **options)
