"""Chunk files of the store's arrays: which must exist, their sizes, their CRC-32C, and reading them.

Zarr returns the fill value for a chunk file that is not there, so a partial copy of a store would
read as zeros. hs knows every chunk a finished array must have (its shape and chunk grid), lists
the files once per array (or per layer of ``hidden``) and refuses a read when one is missing or has
the wrong size. Every array of a store is uncompressed bytes followed by a 4-byte CRC-32C of them,
so a chunk's expected size is fixed and its checksum is the file's last four bytes.

hs reads chunk files itself (``read_rows``), not through Zarr: each chunk's CRC-32C is computed as
it is read and compared with the file's own and with the manifest's (the CRC-32C the chunk had when
hs wrote it), so a chunk that is valid but not the one written there is an error too; and it reads
a chunk straight into its place, on a few threads, where Zarr decodes then copies (docs/performance.md).
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

# what a one-line error about a chunk tells the user to do
COPY_AGAIN = "copy the store again, or run `hs verify` on it for the full list"
REPAIR_HINT = ("run `hs verify --deep --repair` on the store, then rerun the `hs dump` command that made it "
               "(it recomputes the damaged chunks)")


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


def whole_columns(array_dir: Path, first: int, count: int, n_layers: int, size: int, table=None) -> int:
    """How many chunk columns from ``first`` on hold every layer's file at ``size`` bytes, each
    carrying the CRC-32C of ``table`` (rows from column ``first``, a column per layer; None: sizes
    only; only local files' are read): a resumed writer keeps those and rewrites from the first
    missing, short or foreign one."""
    files = list_files(array_dir)
    local = not storage.is_remote(array_dir)
    for i in range(count):
        for layer in range(n_layers):
            key = chunk_key((layer, first + i, 0))
            if files.get(key, (None,))[0] != size or (
                    table is not None and local and trailer(array_dir / key) != int(table[i, layer])):
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
            raise StoreError(f"{where}: chunk {key} is missing (a partial copy?); {COPY_AGAIN}")
        if got[0] != size:
            raise StoreError(f"{where}: chunk {key} has {got[0]} bytes, not {size} (truncated?); {COPY_AGAIN}")


def file_crc(path: Path) -> tuple[int, int]:
    """(CRC-32C computed over the chunk's data, CRC-32C stored in its last four bytes)."""
    raw = path.read_bytes()
    return _data_crc(raw), int.from_bytes(raw[-4:], "little")


def _data_crc(raw: bytes) -> int:
    # google_crc32c takes a read-only numpy view of the bytes, not a memoryview slice: no copy
    return crc32c(np.frombuffer(raw, dtype=np.uint8, count=max(0, len(raw) - 4)))


def trailer(path: Path) -> int | None:
    """The CRC-32C a local chunk file carries in its last four bytes (None if unreadable)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(-4, os.SEEK_END)
            return int.from_bytes(fh.read(4), "little")
    except OSError:
        return None


def chunk_intact(path: Path, size: int, want: int | None) -> bool:
    """Whether the chunk file is ``size`` bytes, its data match its CRC-32C, and that is ``want`` (the
    manifest's, if known): the whole file is read."""
    try:
        raw = path.read_bytes()
    except OSError:
        return False
    crc = _data_crc(raw)
    return len(raw) == size and crc == int.from_bytes(raw[-4:], "little") and (want is None or crc == int(want))


def small_array_crcs(data: np.ndarray, chunk: int) -> list[int]:
    """The CRC-32C of each chunk of an array chunked along its first axis only, as Zarr stores it
    (the last chunk padded with zeros)."""
    out = []
    le = np.ascontiguousarray(data, dtype=data.dtype.newbyteorder("<"))
    row = int(np.prod(le.shape[1:], dtype=np.int64)) * le.dtype.itemsize
    for start in range(0, len(le), chunk):
        block = le[start:start + chunk]
        raw = block.tobytes() + bytes((chunk - len(block)) * row)
        out.append(crc32c(raw))
    return out


def check_codecs(array, where) -> None:
    """Refuse an array that is not encoded as the store's arrays are: raw little-endian bytes, then a
    CRC-32C (``bytes``, ``crc32c``), nothing else."""
    from zarr.codecs import BytesCodec, Crc32cCodec  # zarr loads with the first read, not `hs --help`

    codecs = array.metadata.codecs
    endian = getattr(codecs[0], "endian", None) if codecs else None
    little = endian.value == "little" if endian is not None else np.dtype(array.dtype).itemsize == 1  # bytes: no order
    if not (len(codecs) == 2 and isinstance(codecs[0], BytesCodec) and little and isinstance(codecs[1], Crc32cCodec)):
        raise StoreError(f"{where} has codecs {[type(c).__name__ for c in codecs]}, not the store's (bytes, crc32c): "
                         f"its metadata was changed; run `hs verify` on the store")


class Layout:
    """How an array of the store lies in its chunk files: shape, chunk shape and little-endian dtype.
    Every array is chunked along one axis (``axis``): the axes before it in chunks of 1 (a layer of
    ``hidden``), the axes after it whole (the features)."""

    def __init__(self, shape, chunks, dtype, where: str, axis: int = 0):
        self.shape, self.chunks = tuple(map(int, shape)), tuple(map(int, chunks))
        self.dtype, self.axis, self.where = np.dtype(dtype).newbyteorder("<"), axis, where
        if (len(self.chunks) != len(self.shape) or any(c != 1 for c in self.chunks[:axis])
                or self.chunks[axis + 1:] != self.shape[axis + 1:] or min(self.chunks, default=1) < 1):
            raise StoreError(f"{where} has chunks {self.chunks} for shape {self.shape}, not the store's layout: its "
                             f"metadata was changed; run `hs verify` on the store")

    @classmethod
    def of(cls, array, where: str, axis: int = 0) -> "Layout":
        """The layout of a Zarr array of the store, its codecs checked."""
        check_codecs(array, where)
        return cls(array.shape, array.chunks, array.dtype, where, axis)

    @property
    def nbytes(self) -> int:
        return chunk_nbytes(self.chunks, self.dtype)

    @property
    def rows(self) -> int:
        return self.chunks[self.axis]

    @property
    def n_chunks(self) -> int:
        """Chunks along the chunked axis."""
        return math.ceil(self.shape[self.axis] / self.rows) if self.shape[self.axis] else 0

    def key(self, lead: tuple[int, ...], col: int) -> str:
        return chunk_key((*lead, col, *[0] * (len(self.shape) - self.axis - 1)))


def read_rows(directory: Path, layout: Layout, lead: tuple[int, ...], start: int, stop: int,
              crc_of=None) -> np.ndarray:
    """Rows ``[start, stop)`` along the chunked axis of an array (at index ``lead`` of the axes before
    it), read from its chunk files in ``directory``. Each chunk must be there at full size, its data
    must match its own CRC-32C, and that must be ``crc_of(col)`` (the manifest's; None where no
    manifest records it); anything else is a one-line StoreError naming the chunk."""
    rows, tail = layout.rows, layout.shape[layout.axis + 1:]
    out = np.empty((max(0, stop - start), *tail), dtype=layout.dtype.newbyteorder("="))
    if stop <= start:
        return out
    cols = range(start // rows, (stop - 1) // rows + 1)
    if storage.is_remote(directory) or not layout.dtype.isnative:
        keys = [layout.key(lead, col) for col in cols]
        count = rows * int(np.prod(tail, dtype=np.int64))  # the chunk's values, less its trailer
        for col, key, raw in zip(cols, keys, storage.read_many([directory / k for k in keys])):
            block = np.frombuffer(_checked(raw, layout, key, crc_of, col), dtype=layout.dtype, count=count)
            _place(out, block.reshape(rows, *tail), start, stop, col, rows)
        return out

    def one(col: int) -> None:
        # a chunk inside [start, stop) is read straight into its rows of ``out``: no copy but the read
        key = layout.key(lead, col)
        a, b = max(start, col * rows), min(stop, (col + 1) * rows)
        whole = b - a == rows
        block = out[a - start:b - start] if whole else np.empty((rows, *tail), dtype=out.dtype)
        data = block.reshape(-1).view(np.uint8)
        _checked(_read_into(directory / key, data, layout.nbytes), layout, key, crc_of, col, data)
        if not whole:
            _place(out, block, start, stop, col, rows)

    threads = min(len(cols), read_threads())
    if threads <= 1:
        for col in cols:
            one(col)
    else:  # file reads and CRC-32C release the GIL: a layer reads at about the rate of the cores
        for _ in _read_pool(threads).map(one, cols):
            pass
    return out


def _read_into(path: Path, data: np.ndarray, nbytes: int):
    """Read a local chunk file's data into ``data`` (its length: the file's less the trailer); returns
    the 4-byte trailer, None for a missing file, or the file's size (an int) if it is not ``nbytes``."""
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError(f"cannot read {path} ({exc.strerror}); check the store's permissions") from None
    with fh:
        size = os.fstat(fh.fileno()).st_size
        if size != nbytes or size != data.nbytes + 4:
            return size
        if fh.readinto(memoryview(data)) != data.nbytes:
            return os.fstat(fh.fileno()).st_size  # shrank while read
        return fh.read(4)


def _checked(raw, layout: Layout, key: str, crc_of, col: int, data=None):
    """``raw`` (a chunk file's bytes; or, with ``data``, its trailer as ``_read_into`` returns it)
    checked for presence, size, its own CRC-32C and the manifest's; returns the chunk's bytes."""
    if raw is None:
        raise StoreError(f"{layout.where}: chunk {key} is missing (a partial copy?); {COPY_AGAIN}")
    got = raw if isinstance(raw, int) else len(raw) + (0 if data is None else data.nbytes)
    if got != layout.nbytes:
        raise StoreError(f"{layout.where}: chunk {key} has {got} bytes, not {layout.nbytes} (truncated?); "
                         f"{COPY_AGAIN}")
    crc, stored = (_data_crc(raw), raw[-4:]) if data is None else (crc32c(data), raw)
    if crc != int.from_bytes(stored, "little"):
        raise StoreError(f"{layout.where} has a corrupt chunk ({key}: checksum mismatch): its bytes changed "
                         f"after it was written; {REPAIR_HINT}")
    want = crc_of(col) if crc_of is not None else None
    if want is not None and int(want) != crc:
        raise StoreError(f"{layout.where}: chunk {key} is not the chunk hs wrote there (its CRC-32C is not the "
                         f"manifest's: a chunk from elsewhere, or rewritten with a new checksum); {REPAIR_HINT}")
    return raw if data is None else data


def _place(out: np.ndarray, block: np.ndarray, start: int, stop: int, col: int, rows: int) -> None:
    """The rows of chunk ``col`` (``block``, all its rows) that fall in ``[start, stop)``, into ``out``."""
    a, b = max(start, col * rows), min(stop, (col + 1) * rows)
    out[a - start:b - start] = block[a - col * rows:b - col * rows]


def read_threads() -> int:
    """Threads that read one array's chunk files: ``$HS_READ_THREADS``, else the CPUs, at most 8."""
    env = os.environ.get("HS_READ_THREADS")
    return max(1, int(env)) if env and env.isdigit() else max(1, min(8, os.cpu_count() or 1))


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
        check_codecs(array, group_dir / array.basename)
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


_POOLS: dict[tuple[str, int], ThreadPoolExecutor] = {}


def _pool(threads: int, role: str = "writer") -> ThreadPoolExecutor:
    # readers and writers in pools of their own: a read inside a write's task never waits on its own pool
    if (role, threads) not in _POOLS:
        _POOLS[role, threads] = ThreadPoolExecutor(threads, thread_name_prefix=f"hs-chunk-{role}")
    return _POOLS[role, threads]


def _read_pool(threads: int) -> ThreadPoolExecutor:
    return _pool(threads, "reader")
