"""The on-disk cache of computed matrices: keyed by the code that computes them, checked on load.

An entry's directory names the code version (a digest of the source of every module under the
packages that compute cached data, CODE_PACKAGES: any change there starts a fresh cache), the store's identity and the corpus's
fingerprint; its file name adds what the caller keys it by, including the corpus's file signature
(``Corpus.signature``: any rewrite of the files it was computed from misses the cache). Each file
is an ``.npy`` followed by the CRC-32C of its bytes, verified on load: a damaged entry is
recomputed, never used. A cache directory that cannot be written turns the disk cache off with one
warning (results are then cached in memory only).
"""
from __future__ import annotations

import io
import os
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np

from hsstore.format.atomic import write_bytes
from hsstore.format.chunks import crc32c
from hsstore.paths import cache_dir

from .. import sourcehash

# the code that computes what the cache holds: reading the store (all of hsstore but the dump), the
# recipe language and the embedding steps, every module of each at any depth (sourcehash.py)
CODE_PACKAGES = ("hsstore", "analysis.recipes", "analysis.embedding", "analysis.vectors", "analysis.sourcehash")
NOT_CACHED = ("hsstore.dump",)  # writes stores; what it wrote is keyed by the store's identity and signatures
MAGIC = b"HSCRC32C"
_warned: set[str] = set()


def warn(message: str) -> None:
    """One line on stderr, once per process."""
    if message not in _warned:
        _warned.add(message)
        print(f"hs: warning: {message}", file=sys.stderr)


@lru_cache(maxsize=1)
def code_version() -> str:
    """The digest of CODE_PACKAGES' source: the cache's top directory."""
    return sourcehash.digest(CODE_PACKAGES, NOT_CACHED)


def encode(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    raw = buf.getvalue()
    return raw + MAGIC + crc32c(raw).to_bytes(4, "little")


def decode(blob: bytes) -> np.ndarray | None:
    """The array, or None if the bytes are not exactly what ``encode`` wrote."""
    n = len(MAGIC) + 4
    if len(blob) < n or blob[-n:-4] != MAGIC or crc32c(blob[:-n]) != int.from_bytes(blob[-4:], "little"):
        return None
    try:
        return np.load(io.BytesIO(blob[:-n]), allow_pickle=False)
    except ValueError:
        return None


class DiskCache:
    """Files under ``$HS_CACHE/<kind>/<code version>/...``; disabled (with a warning) if unwritable."""

    def __init__(self, kind: str):
        self.kind = kind
        try:
            self.root = cache_dir(kind, code_version())
            self.enabled = os.access(self.root, os.W_OK)
        except OSError:
            self.enabled = False
        if not self.enabled:
            warn(f"the cache directory ({os.environ.get('HS_CACHE') or '~/.cache/hs'}) cannot be written; "
                 f"results are cached in memory only (set HS_CACHE to a writable directory, or pass --no-cache)")

    def path(self, *parts: str) -> Path | None:
        return self.root.joinpath(*parts) if self.enabled else None

    def load(self, path: Path | None) -> np.ndarray | None:
        if path is None or not path.exists():
            return None
        try:
            array = decode(path.read_bytes())
        except OSError:
            array = None
        if array is None:
            warn(f"cached file {path} is damaged; recomputing it")
        return array

    def save(self, path: Path | None, array: np.ndarray) -> None:
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_bytes(path, encode(array))
        except OSError as exc:  # a full disk: the result stands, only the cache misses it
            warn(f"cannot write the cache ({exc.strerror}: {path.parent}); continuing without it")
