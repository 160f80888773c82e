"""The on-disk layout shared by the writer, the reader and the HDF5 export (docs/store-format.md)."""
from __future__ import annotations

import math

import numpy as np

FORMAT_NAME = "hs-store"
FORMAT_VERSION = 3
# format 1 (hs before the chunk manifest): read-only, checked by chunk presence and checksums only;
# format 2 (before the metadata digests and the manifests of statics and attention diagonals): read,
# cross-checked and extended; format 3 adds the digests (hsstore/format/digests.py)
READ_VERSIONS = (1, 2, 3)
WRITE_VERSIONS = (2, 3)

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
              "sentence_length": ("sentence",), "batch_ends": ("batch",), "position_ids": ("token",),
              "source_position": ("sentence",),
              "input_embeddings": ("vocab", "feature")}  # statics/: older stores lack these names there
STRING_DIMENSIONS = {"text": ("text_byte", "sentence_edge"), "vocab": ("vocab_byte", "vocab_edge"),
                     "task": ("task_byte", "task_line_edge")}  # a user's task definition, one JSON line a row

# The data type of each array of a corpus: the writer writes these, a reader refuses any other.
ARRAY_DTYPES = {"text/bytes": np.uint8, "text/offsets": np.int64, "task/bytes": np.uint8, "task/offsets": np.int64,
                "offsets": np.int64, "token_ids": np.int32,
                "token_kind": np.uint8, "batch_ends": np.int64, "position_ids": np.int32, "layer": np.int32,
                "sentence_length": np.int32, "source_position": np.int64, "hidden_crc32c": np.uint32,
                "attention_diagonal": np.float16, "attention_diagonal_crc32c": np.uint32}


def corpus_shapes(attrs: dict, layers: list[int], hidden_size: int, chunk: int) -> dict[str, tuple[int, ...]]:
    """The shape every array of a corpus must have, from its attributes, the store's layers and hidden
    size and the corpus's chunk length (``text/bytes``: checked against ``text/offsets`` instead)."""
    S, T, L = int(attrs["n_sentences"]), int(attrs["n_tokens"]), len(layers)
    cols = math.ceil(T / chunk) if chunk else 0
    shapes = {"text/offsets": (S + 1,), "offsets": (S + 1,), "token_ids": (T,), "token_kind": (T,),
              "batch_ends": (int(attrs["n_batches"]),), "position_ids": (T,), "layer": (L,), "sentence_length": (S,),
              "hidden": (L, T, hidden_size), "hidden_crc32c": (cols, L), "source_position": (S,)}
    if "attention_layers" in attrs:
        A = len(attrs["attention_layers"])
        shapes.update({"attention_diagonal": (A, T, int(attrs["attention_heads"])),
                       "attention_diagonal_crc32c": (cols, A)})
    return shapes


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


TEMPLATE_SLOT = "[X]"  # where a prompt template puts the sentence (hsstore/tasks/templates.py)


def empty_label(template_text: str, length: int) -> str:
    """The stored text of a template-only row (corpus ``C~T~empty``) for sentences of ``length`` tokens:
    the template with its slot naming the length, so the row's text (in the corpus's fingerprint)
    vouches for the length its ``source.sentence_lengths`` entry claims."""
    return template_text.replace(TEMPLATE_SLOT, f"<{length} tokens>")


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
