"""Files of sentence vectors (``hs embed``, ``hs encode``), in the format the extension names:

- ``.npy``: the float32 matrix; beside it ``<name>.json`` with each row's id and text and what made them;
- ``.parquet``: one row per text, columns ``id`` (int64), ``text`` and ``vector`` (fixed-size list of
  float32), what made them in the schema's metadata under ``hs`` (needs pyarrow);
- ``.safetensors``: tensors ``vectors`` (float32) and ``ids`` (int64); metadata ``hs`` (what made
  them, JSON) and ``texts`` (a JSON list).

Each file is written under a temporary name and renamed into place, so a failed write leaves an
existing file as it was.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from hsstore.errors import HsError

FORMATS = (".npy", ".parquet", ".safetensors")


def check_out(path: Path) -> Path:
    """Refuse an output the formats cannot be: stdout, an unknown extension, a directory."""
    path = Path(path)
    if str(path) == "-":
        raise HsError("--out - is not possible: the vectors are binary; give a file name ending in "
                      + ", ".join(FORMATS))
    if path.suffix.lower() not in FORMATS:
        raise HsError(f"--out {path}: the extension names the format, one of {', '.join(FORMATS)}")
    if path.is_dir():
        raise HsError(f"--out {path} is a directory; give a file name ending in {path.suffix}")
    return path


def sidecar(path: Path) -> Path:
    """The JSON beside a ``.npy`` file."""
    return Path(path).with_suffix(".json")


def _temp(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.partial")


def write_vectors(path: Path, matrix: np.ndarray, ids: np.ndarray, texts: list[str], info: dict) -> list[Path]:
    """Write the vectors (row i: ``ids[i]``, ``texts[i]``) and ``info`` to ``path``; returns the files written."""
    path = check_out(path)
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    ids = np.asarray(ids, dtype=np.int64)
    if not len(matrix) == len(ids) == len(texts):
        raise ValueError("one id and one text per row")
    info = {"format": "hs-vectors", "rows": int(matrix.shape[0]), "dim": int(matrix.shape[1]), **info}
    suffix = path.suffix.lower()
    staged: list[tuple[Path, Path]] = [(_temp(path), path)]
    try:
        if suffix == ".npy":
            with open(staged[0][0], "wb") as fh:
                np.save(fh, matrix)
            side = sidecar(path)
            staged.append((_temp(side), side))
            staged[1][0].write_text(json.dumps({**info, "ids": ids.tolist(), "texts": texts}, ensure_ascii=False))
        elif suffix == ".parquet":
            _write_parquet(staged[0][0], matrix, ids, texts, info)
        else:
            from safetensors.numpy import save_file  # safetensors: only for this format

            save_file({"vectors": matrix, "ids": ids}, str(staged[0][0]),
                      metadata={"hs": json.dumps(info), "texts": json.dumps(texts, ensure_ascii=False)})
        for tmp, final in staged:
            os.replace(tmp, final)
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
    return [final for _, final in staged]


def _write_parquet(path: Path, matrix: np.ndarray, ids: np.ndarray, texts: list[str], info: dict) -> None:
    try:
        import pyarrow as pa  # pyarrow: only for this format (an optional extra)
        import pyarrow.parquet as pq
    except ImportError:
        raise HsError("writing .parquet needs pyarrow: pip install pyarrow (or write .npy or .safetensors)") from None
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1), type=pa.float32()), matrix.shape[1])
    table = pa.table({"id": pa.array(ids, type=pa.int64()), "text": pa.array(texts, type=pa.string()),
                      "vector": vectors})
    pq.write_table(table.replace_schema_metadata({"hs": json.dumps(info)}), path)
