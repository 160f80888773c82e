"""A fitted recipe's folder (``hs fit --out DIR``): versioned, checksummed and self-describing.

::

    DIR/
      hs-encoder.json      what it is: format and version, hs version, the recipe, the model identity, the
                           store and corpora it was fitted on, and the SHA-256 of every other file
      arrays.safetensors   what the recipe learned: reference token counts, static tables, post-processing
      vocab.json           the store's vocabulary (the token of each id)
      tokenizer/           the model's tokenizer, as transformers saves it (encoder/fit.py adds it)
      README.md            how to use it

``hs-encoder.json`` carries a checksum of its own canonical JSON, so an edited or damaged file is
refused like a damaged array. A folder is written under a temporary name and renamed into place:
a killed ``hs fit`` leaves no half-written folder, and an existing folder is never overwritten.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from hsstore.errors import HsError, StoreError
from hsstore.version import __version__

FORMAT = "hs-encoder"
VERSION = 1
META = "hs-encoder.json"
ARRAYS = "arrays.safetensors"
VOCAB = "vocab.json"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _canonical(meta: dict) -> bytes:
    return json.dumps({k: v for k, v in meta.items() if k != "checksum"}, sort_keys=True).encode()


def check_new_folder(out: Path) -> None:
    """Refuse an ``--out`` that holds anything: a folder is written whole, never over another."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise HsError(f"--out {out} already exists; give a new directory (hs never writes over one)")


@contextmanager
def staged(out: Path):
    """A temporary directory beside ``out`` to write a folder in, renamed to ``out`` on success and
    removed on failure."""
    out = Path(out)
    check_new_folder(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if out.exists():
            out.rmdir()  # empty, checked above
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write(out: Path, meta: dict, arrays: dict[str, np.ndarray], vocab: list[str], add_files=None,
          readme: str = "") -> None:
    """Write a fitted folder: ``meta`` (hs-encoder.json, completed here), ``arrays``, ``vocab``;
    ``add_files(tmp_dir)`` writes more files (the tokenizer) before the checksums are taken."""
    from safetensors.numpy import save_file  # safetensors: only when a folder is written

    with staged(out) as tmp:
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp / ARRAYS))
        (tmp / VOCAB).write_text(json.dumps(vocab, ensure_ascii=False))
        if add_files is not None:
            add_files(tmp)
        if readme:
            (tmp / "README.md").write_text(readme)
        files = sorted(p for p in tmp.rglob("*") if p.is_file())
        meta = {"format": FORMAT, "format_version": VERSION, "hs_version": __version__, **meta,
                "files": {str(p.relative_to(tmp)): sha256_file(p) for p in files}}
        meta["checksum"] = hashlib.sha256(_canonical(meta)).hexdigest()
        (tmp / META).write_text(json.dumps(meta, indent=2, sort_keys=True))


def is_folder(path: Path) -> bool:
    """Whether ``path`` looks like a fitted folder (it has hs-encoder.json); read() checks the rest."""
    return (Path(path) / META).is_file()


def read_meta(path: Path) -> dict:
    """``hs-encoder.json`` of a fitted folder, checked: an hs folder, a version this hs reads, its
    own checksum right. A foreign or damaged folder is a one-line error."""
    path = Path(path)
    if not path.is_dir():
        raise HsError(f"{path} is not a directory; give the folder `hs fit --out` wrote")
    if not (path / META).is_file():
        raise HsError(f"{path} is not a fitted recipe (no {META}); make one with `hs fit STORE -r RECIPE --out {path}`")
    try:
        meta = json.loads((path / META).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        raise StoreError(f"{path / META} is unreadable: the folder is damaged; fit the recipe again") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise HsError(f"{path / META} does not describe an hs fitted recipe (format={meta.get('format')!r})"
                      if isinstance(meta, dict) else f"{path / META} is not an hs fitted recipe")
    if int(meta.get("format_version", 0)) > VERSION:
        raise HsError(f"{path} is a fitted recipe of format {meta['format_version']}, newer than this hs reads "
                      f"({VERSION}); upgrade hs")
    if meta.get("checksum") != hashlib.sha256(_canonical(meta)).hexdigest():
        raise StoreError(f"{path / META} does not match its checksum: it was edited or damaged; fit the recipe again")
    return meta


def read(path: Path) -> tuple[dict, dict[str, np.ndarray], list[str]]:
    """(meta, arrays, vocab) of a fitted folder, every file's SHA-256 checked first."""
    from safetensors.numpy import load_file  # safetensors: only when a folder is read

    path = Path(path)
    meta = read_meta(path)
    for rel, digest in meta["files"].items():
        f = path / rel
        if not f.is_file():
            raise StoreError(f"{path} lacks {rel}: the folder is incomplete; copy it again or fit the recipe again")
        if sha256_file(f) != digest:
            raise StoreError(f"{f} does not match its SHA-256 in {META}: the file is damaged; fit the recipe again")
    try:
        arrays = load_file(str(path / ARRAYS))
        vocab = json.loads((path / VOCAB).read_text())
    except (OSError, ValueError) as exc:  # checksums matched, so the writer wrote something unreadable
        raise StoreError(f"{path} cannot be read ({type(exc).__name__}); fit the recipe again") from None
    return meta, arrays, vocab
