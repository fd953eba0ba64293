"""The HTTP service (``deeprel serve``): extraction over JSON with batched inference, and the visualiser.

    from deeprel.serving import ServeSettings, create_app
    app = create_app("runs/demo/model", ServeSettings(max_texts=16))   # a FastAPI app
"""

from deeprel.serving.app import create_app
from deeprel.serving.server import serve
from deeprel.serving.settings import ServeSettings

__all__ = ["ServeSettings", "create_app", "serve"]
