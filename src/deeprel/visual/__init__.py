"""The relation visualiser: a browser view of extractions (``static/``, served by ``deeprel serve``) and
self-contained HTML pages of predictions against gold (``deeprel render``)."""

from __future__ import annotations

from pathlib import Path

from deeprel.visual.render import STATIC, render_html


def static_dir() -> Path:
    """The folder of the view's ``index.html``, ``deeprel-view.js`` and ``deeprel-view.css``, for a web
    service to mount at ``/static``."""
    return STATIC


__all__ = ["render_html", "static_dir"]
