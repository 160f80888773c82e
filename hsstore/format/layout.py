"""The on-disk layout shared by the writer, the reader and the HDF5 export (docs/store-format.md)."""
from __future__ import annotations

import numpy as np

FORMAT_NAME = "hs-store"
FORMAT_VERSION = 2
# format 1 (hs before the chunk manifest): read-only, checked by chunk presence and checksums only
READ_VERSIONS = (1, 2)

# per-token kinds
KIND_TEXT, KIND_SPECIAL, KIND_TEMPLATE, KIND_MASK = 0, 1, 2, 3
KIND_NAMES = {KIND_TEXT: "text", KIND_SPECIAL: "special", KIND_TEMPLATE: "template", KIND_MASK: "mask"}

# aim for chunks of about this many bytes per layer (see docs/store-format.md for the measurements)
CHUNK_BYTES = 8 << 20

DTYPES = {"float16": np.float16, "float32": np.float32}
MANIFEST_ROWS = 256  # hidden_crc32c rows per chunk file: a commit rewrites at most one or two small files

# Each array's dimension names (zarr v3 ``dimension_names``), so xarray opens a corpus group with
# named dimensions; ``layer`` is also a 1-D array of the stored layer numbers (xarray's coordinate).
# An offsets array has one entry more than its items, so its dimension is the items' edges.
DIMENSIONS = {"hidden": ("layer", "token", "feature"), "hidden_crc32c": ("hidden_chunk", "layer"),
              "layer": ("layer",), "token_ids": ("token",), "token_kind": ("token",), "offsets": ("sentence_edge",),
              "sentence_length": ("sentence",), "batch_ends": ("batch",), "source_position": ("sentence",),
              "input_embeddings": ("vocab", "feature")}  # statics/: older stores lack these names there
STRING_DIMENSIONS = {"text": ("text_byte", "sentence_edge"), "vocab": ("vocab_byte", "vocab_edge"),
                     "task": ("task_byte", "task_line_edge")}  # a user's task definition, one JSON line a row


def stored_order(lengths: np.ndarray) -> np.ndarray:
    """The order sentences are stored in: by token count, ties in source order (a stable sort)."""
    return np.argsort(np.asarray(lengths), kind="stable")


def default_chunk_tokens(hidden_size: int, dtype: str) -> int:
    """Tokens per chunk: a power of two near CHUNK_BYTES for one layer."""
    per_token = hidden_size * np.dtype(DTYPES[dtype]).itemsize
    n = 1 << max(10, int(np.log2(max(1, CHUNK_BYTES // per_token))))
    return n


def corpus_chunk_tokens(store_chunk: int, n_tokens: int) -> int:
    """The store's chunk length, shrunk for a small corpus so its one chunk is not mostly padding."""
    return int(min(store_chunk, max(256, 1 << int(np.ceil(np.log2(max(1, n_tokens)))))))


def encode_strings(strings: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Ragged UTF-8: one flat uint8 array plus int64 offsets (len + 1)."""
    encoded = [s.encode("utf-8") for s in strings]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    flat = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    return flat, offsets


def decode_strings(flat: np.ndarray, offsets: np.ndarray) -> list[str]:
    raw = flat.tobytes()
    return [raw[a:b].decode("utf-8") for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]
