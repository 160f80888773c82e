"""A user's own corpus: one text per line, or a CSV/TSV/JSONL file with a named column."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from hsstore.errors import HsError

from .wikitext import sentences


def decode_file(path: Path, encoding: str) -> str:
    """The file's text; bytes that are not valid ``encoding`` are a one-line error naming the line."""
    raw = path.read_bytes()
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise HsError(f"{path} line {line} is not valid {encoding} (byte 0x{raw[exc.start]:02x}); convert the "
                      f"file (e.g. iconv -f latin1 -t utf-8) or pass --encoding") from None
    except LookupError:
        raise HsError(f"unknown --encoding {encoding!r}") from None


def read_corpus_file(path: str | Path, column: str | None = None, encoding: str = "utf-8",
                     skip_empty: bool = False, fmt: str = "auto") -> list[str]:
    """Texts of ``path`` in file order. Empty texts are an error unless ``skip_empty``.

    ``fmt``: ``auto`` (by extension: .csv, .tsv, .jsonl, else one text a line), ``lines``, or
    ``wikitext`` (a WikiText raw file, split into sentences as ``data/wikitext2`` is).
    """
    path = Path(path)
    if not path.exists():
        raise HsError(f"corpus file {path} does not exist")
    if path.is_dir():
        raise HsError(f"corpus file {path} is a directory; give a text, CSV, TSV or JSONL file")
    text = decode_file(path, encoding)
    if "\x00" in text:
        line = text[:text.index("\x00")].count("\n") + 1
        raise HsError(f"{path} line {line} holds a NUL byte (a binary file, or UTF-16 read as {encoding}?); "
                      f"remove it or pass the right --encoding")
    if fmt == "wikitext":
        texts = sentences(text)
        if not texts:
            raise HsError(f"{path} holds no WikiText paragraph")
        return texts
    suffix = path.suffix.lower() if fmt == "auto" else ""
    if suffix in (".csv", ".tsv"):
        rows = csv.DictReader(io.StringIO(text), delimiter="\t" if suffix == ".tsv" else ",")
        col = column or "text"
        if rows.fieldnames is None or col not in rows.fieldnames:
            raise HsError(f"{path} has no column {col!r} (columns: {rows.fieldnames}); pass --column NAME")
        items = [(i + 2, row[col] or "") for i, row in enumerate(rows)]
    elif suffix == ".jsonl":
        col, items = column or "text", []
        for i, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)[col]
            except (ValueError, KeyError, TypeError):
                raise HsError(f"{path} line {i} is not a JSON object with a {col!r} field; pass --column NAME") from None
            if not isinstance(value, str):
                raise HsError(f"{path} line {i}: field {col!r} is {json.dumps(value)[:20]}, not a string; "
                              f"fix or remove that line")
            items.append((i, value))
    else:
        if column:
            raise HsError(f"--column applies to .csv, .tsv and .jsonl files, not {path.name}")
        items = list(enumerate(text.splitlines(), 1))
    texts = []
    for line_no, value in items:
        value = value.strip()
        if not value:
            if skip_empty:
                continue
            raise HsError(f"{path} line {line_no} is empty; remove empty lines or pass --skip-empty")
        texts.append(value)
    if not texts:
        raise HsError(f"{path} holds no text")
    return texts
