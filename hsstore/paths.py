"""Where hs finds its task data and keeps its caches."""
from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """The normalised benchmark files: ``$HS_DATA`` or the repository's ``data/``."""
    env = os.environ.get("HS_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "data"


def cache_dir(*parts: str) -> Path:
    """A user cache location (``$HS_CACHE``, else ``$XDG_CACHE_HOME/hs``, else ``~/.cache/hs``)."""
    root = os.environ.get("HS_CACHE")
    if not root:
        root = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "hs")
    path = Path(root, *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
