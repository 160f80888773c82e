"""Chunk files of the store's arrays: which must exist, their sizes, and their CRC-32C.

Zarr returns the fill value for a chunk file that is not there, so a partial copy of a store would
read as zeros. hs knows every chunk a finished array must have (its shape and chunk grid), lists
the files once per array (or per layer of ``hidden``) and refuses a read when one is missing or has
the wrong size. Every array of a store is uncompressed bytes followed by a 4-byte CRC-32C of them,
so a chunk's expected size is fixed and its checksum is the file's last four bytes.
"""
from __future__ import annotations

import itertools
import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import google_crc32c
import numpy as np

from hsstore.errors import StoreError

from . import storage
from .atomic import write_bytes


def crc32c(data: bytes) -> int:
    return int(google_crc32c.value(data))


def grid(shape: tuple[int, ...], chunks: tuple[int, ...]) -> tuple[int, ...]:
    """Chunks along each dimension."""
    return tuple(math.ceil(n / c) for n, c in zip(shape, chunks))


def chunk_nbytes(chunks: tuple[int, ...], dtype) -> int:
    """Bytes of one chunk file: the full chunk (the last one is stored padded) plus the checksum."""
    return int(np.prod(chunks)) * np.dtype(dtype).itemsize + 4


def chunk_key(coords: tuple[int, ...]) -> str:
    """The file of a chunk under its array's directory (Zarr v3 default keys: ``c/i/j``)."""
    return "/".join(["c", *map(str, coords)])


def whole_columns(files: dict, first: int, count: int, n_layers: int, size: int) -> int:
    """How many chunk columns from ``first`` on hold every layer's file at ``size`` bytes (in
    ``files``, a :func:`list_files` listing): a resumed writer keeps those and rewrites from the
    first missing or short one."""
    for i in range(count):
        if any(files.get(chunk_key((layer, first + i, 0)), (None,))[0] != size for layer in range(n_layers)):
            return i
    return count


def list_files(array_dir: Path, under: str = "c") -> dict[str, tuple[int, int]]:
    """``{key: (size, mtime_ns)}`` of the chunk files below ``array_dir/under`` (on object storage:
    one listing, the object's version in place of the time)."""
    if storage.is_remote(array_dir):
        return storage.list_tree(array_dir, under)
    out = {}
    base = array_dir / under
    prefix = under
    stack = [(base, prefix)]
    while stack:
        directory, rel = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise StoreError(f"cannot list {directory} ({exc.strerror}); check the store's permissions") from None
        for entry in entries:
            key = f"{rel}/{entry.name}"
            if entry.is_dir(follow_symlinks=False):
                stack.append((Path(entry.path), key))
            elif not entry.name.endswith(".partial"):
                st = entry.stat()
                out[key] = (st.st_size, st.st_mtime_ns)
    return out


def expected_keys(shape: tuple[int, ...], chunks: tuple[int, ...], first: int | None = None) -> list[str]:
    """Keys of every chunk of an array (``first``: only chunks of that index along axis 0)."""
    ranges = [range(n) for n in grid(shape, chunks)]
    if first is not None:
        ranges[0] = range(first, first + 1)
    return [chunk_key(c) for c in itertools.product(*ranges)]


def check_present(files: dict, keys: list[str], size: int, where: str) -> None:
    """Raise naming the first chunk of ``keys`` that is missing or not ``size`` bytes long."""
    for key in keys:
        got = files.get(key)
        if got is None:
            raise StoreError(f"{where}: chunk {key} is missing (a partial copy?); copy the store again, "
                             f"or run `hs verify` on it for the full list")
        if got[0] != size:
            raise StoreError(f"{where}: chunk {key} has {got[0]} bytes, not {size} (truncated?); copy the store "
                             f"again, or run `hs verify` on it for the full list")


def file_crc(path: Path) -> tuple[int, int]:
    """(CRC-32C computed over the chunk's data, CRC-32C stored in its last four bytes)."""
    raw = path.read_bytes()
    return crc32c(raw[:-4]), int.from_bytes(raw[-4:], "little")


def small_array_crcs(data: np.ndarray, chunk: int) -> list[int]:
    """The CRC-32C of each chunk of a 1-D array as Zarr stores it (last chunk padded with zeros)."""
    out = []
    le = np.ascontiguousarray(data, dtype=data.dtype.newbyteorder("<"))
    for start in range(0, len(le), chunk):
        block = le[start:start + chunk]
        raw = block.tobytes() + bytes((chunk - len(block)) * le.dtype.itemsize)
        out.append(crc32c(raw))
    return out


def write_chunk(path: Path, raw) -> int:
    """One chunk file (data, any bytes-like object, then its little-endian CRC-32C), written by rename,
    exactly what Zarr's codecs (bytes, crc32c) write; returns the CRC-32C."""
    crc = crc32c(raw)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(path, raw, crc.to_bytes(4, "little"))
    return crc


class ChunkFiles:
    """Writes whole chunks of a 2-D or 3-D array of the store's layout (bytes, little-endian, crc32c).

    hs encodes each chunk itself and writes the file by rename, exactly as zarr's codec pipeline
    would (the tests compare the files byte for byte), 4.5 times as fast as ``array[...] = x`` here
    (docs/performance.md), and it gets each chunk's CRC-32C for the manifest on the way.
    """

    def __init__(self, array, group_dir: Path):
        from zarr.codecs import BytesCodec, Crc32cCodec  # zarr loads only for writes and reads, not `hs --help`

        codecs = array.metadata.codecs
        if not (len(codecs) == 2 and isinstance(codecs[0], BytesCodec) and codecs[0].endian is not None
                and codecs[0].endian.value == "little" and isinstance(codecs[1], Crc32cCodec)):
            raise StoreError(f"{group_dir / array.basename} has codecs {codecs}, not the store's (bytes, crc32c)")
        self.array = array
        self.dir = group_dir / array.basename
        self.dtype = np.dtype(array.dtype).newbyteorder("<")

    def write(self, block: np.ndarray, coords: tuple[int, ...]) -> int:
        """One chunk (padded to full size with zeros); returns its CRC-32C."""
        shape = self.array.chunks
        if block.shape != shape:
            full = np.zeros(shape, dtype=block.dtype)
            full[tuple(slice(0, n) for n in block.shape)] = block
            block = full
        # the array's own buffer, not a copy: the CRC and the file write read it without the GIL
        return write_chunk(self.dir / chunk_key(coords), np.ascontiguousarray(block, dtype=self.dtype).view(np.uint8))

    def write_many(self, jobs: list[tuple[np.ndarray, tuple[int, ...]]], threads: int | None = None) -> list[int]:
        """Several chunks ``(block, coords)``, on ``threads`` threads (default ``write_threads()``); their
        CRC-32C in the order given. Each file is written by rename as in ``write``, so the bytes on disk
        do not depend on the order the threads finish in."""
        threads = write_threads() if threads is None else threads
        if threads <= 1 or len(jobs) <= 1:
            return [self.write(block, coords) for block, coords in jobs]
        return list(_pool(threads).map(lambda job: self.write(*job), jobs))


def write_threads() -> int:
    """Threads that write chunk files: ``$HS_WRITE_THREADS``, else half the CPUs, at most 4 (CRC-32C
    and file writes release the GIL, but on two cores the model and the writer already share them:
    benchmarks/writer.py, docs/performance.md)."""
    env = os.environ.get("HS_WRITE_THREADS")
    return max(1, int(env)) if env and env.isdigit() else max(1, min(4, (os.cpu_count() or 1) // 2))


_POOLS: dict[int, ThreadPoolExecutor] = {}


def _pool(threads: int) -> ThreadPoolExecutor:
    if threads not in _POOLS:
        _POOLS[threads] = ThreadPoolExecutor(threads, thread_name_prefix="hs-chunk-writer")
    return _POOLS[threads]
