"""Writing a store: the exclusive lock, the root metadata, and chunk-aligned, resumable corpus writes.

Crash safety rests on three rules. Hidden states are written in whole chunks, in token order, and a
chunk is written only once it is full (or the corpus ends). Every metadata change is one atomic
rewrite of a group's ``zarr.json`` (``atomic.write_group_attrs``), never a key at a time. The
commit watermark moves only after the chunks it covers and their checksums (``hidden_crc32c``,
the manifest) are on disk, and only to a batch boundary. A resumed dump checks that the committed
chunks are all there, recomputes the batches after the watermark (batches are fixed by the plan),
re-reads (checksum verified) the committed head of the partly covered chunk, and so rewrites every
later chunk with the same bytes an uninterrupted run writes. Chunk files are written by rename, so
a chunk on disk is either old or new, never torn. The lock is an ``flock`` on the store directory
itself: it dies with its process and leaves no file behind. On object storage every rename is one
PUT of the whole object and the lock is an object created by a conditional PUT (storage.py).
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr
from zarr.codecs import Crc32cCodec

from hsstore.errors import EnvError, HsError, StoreError
from hsstore.format import storage
from hsstore.format.atomic import fault_point, read_group_attrs, remove_temp_files, write_group_attrs
from hsstore.format.chunks import (ChunkFiles, Layout, check_present, expected_keys, list_files, read_rows,
                                   small_array_crcs, whole_columns)
from hsstore.format.digests import (WATERMARK, digest_matches, model_differences, plan_fingerprint, store_identity,
                                    with_digest)
from hsstore.format.layout import (ARRAY_DTYPES, DIMENSIONS, DTYPES, FORMAT_NAME, FORMAT_VERSION, MANIFEST_ROWS,
                                   STRING_DIMENSIONS, WRITE_VERSIONS, corpus_chunk_tokens, encode_strings)
from hsstore.version import __version__

from . import attention
from .reader import Store

LEGACY_LOCK = ".hs-write.lock"  # the lock file of format 1 stores; removed when a newer hs writes
SHARD_DIRS = ("shards", ".shards-merged")  # a sharded dump's parts and their remains in a store (shards.py)
# settings that change the stored numbers: a store keeps one value of each
IDENTITY_SETTINGS = ("dtype", "layers", "max_length", "precision")


@dataclass
class CorpusPlan:
    """Everything about a corpus that is fixed before the model runs."""
    name: str
    texts: list[str]            # stored order (sorted by token count)
    offsets: np.ndarray         # int64 (S+1)
    token_ids: np.ndarray       # int32 (T)
    token_kind: np.ndarray      # uint8 (T)
    batch_ends: np.ndarray      # int64: sentence index where each batch ends
    truncated: int
    source: dict
    position_ids: np.ndarray | None = None      # int32 (T): set only where the dump passes its own (templates.py)
    attention_shape: tuple[int, int] | None = None  # (layers, heads) if attention diagonals are stored (attention.py)
    task_lines: list[str] | None = None  # a user's task definition (hsstore/tasks/usertask.py), stored as ``task``
    # int64 (S): each stored sentence's first position in the source's texts (hs embed's original order);
    # not in the fingerprint, so a corpus an older hs began (without it) resumes
    source_position: np.ndarray | None = None

    @property
    def n_sentences(self) -> int:
        return len(self.texts)

    @property
    def n_tokens(self) -> int:
        return int(self.offsets[-1])

    def fingerprint(self, identity: str) -> str:
        return plan_fingerprint(identity, self.texts, self.offsets, self.token_ids, self.token_kind, self.batch_ends,
                                self.position_ids, self.attention_shape, self.task_lines)


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}(~[A-Za-z0-9][A-Za-z0-9._+-]{0,60}){0,2}")


def check_corpus_name(name: str, user: bool = False) -> str:
    """A corpus name is a directory name in the store: letters, digits and ._+- (not first), at most
    100 characters, not a name Zarr or hs use for their own files; ``~`` joins a corpus and its
    template (``stsb~promptbert``, ``stsb~promptbert~empty``, docs/prompts.md), so a name a user
    gives (``user``) may not hold one."""
    if not _NAME.fullmatch(name) or name == "zarr.json" or name.endswith(".partial") or (user and "~" in name):
        shown = repr(name) if len(name) <= 40 else repr(name[:40]) + "..."
        raise HsError(f"corpus name {shown} is not allowed: use up to 100 letters, digits and . _ + - "
                      f"(not first), e.g. --corpus-name my-corpus")
    return name


def check_output_path(path: Path) -> None:
    """Refuse a path that is a file or a non-empty directory that is not an hs store."""
    for parent in [path, *path.parents]:
        if parent.exists():
            if not parent.is_dir():
                where = "is a file" if parent == path else f"lies under {parent}, which is a file"
                raise HsError(f"--out {path} {where}; give a directory for the store (it is created if missing)")
            break
    locks = (LEGACY_LOCK, storage.LOCK_OBJECT, *SHARD_DIRS)
    if path.is_dir() and any(p.name not in locks for p in path.iterdir()) and not (path / "zarr.json").exists():
        raise HsError(f"--out {path} is a non-empty directory that is not an hs store; give a new or empty directory")
    if (path / "zarr.json").exists():
        attrs = read_root_attrs(path)
        if attrs.get("format") != FORMAT_NAME:
            raise HsError(f"--out {path} is a Zarr group but not an hs store; give a new directory")


def read_root_attrs(path: Path) -> dict:
    try:
        return read_group_attrs(path)
    except (OSError, ValueError):
        raise StoreError(f"{path}/zarr.json is unreadable; this is not a usable hs store "
                         f"(run `hs verify {path}`)") from None


def _small_chunk(data: np.ndarray) -> int:
    """Entries per chunk of a 1-D array: all of them, up to 4 MiB."""
    return max(1, min(len(data), (4 << 20) // data.dtype.itemsize))


def _write_small(group, name: str, data: np.ndarray, dims: tuple[str, ...] | None = None) -> list[int]:
    """A 1-D array in chunks of up to 4 MiB, each with a CRC-32C (overwriting a half-written one);
    returns the chunks' CRC-32C for the manifest."""
    chunk = _small_chunk(data)
    # every chunk is written, even one equal to the fill value: a missing chunk file is an error
    group.create_array(name, data=data, chunks=(chunk,), compressors=[Crc32cCodec()], overwrite=True,
                       config={"write_empty_chunks": True}, dimension_names=dims or DIMENSIONS[name])
    return small_array_crcs(data, chunk)


def _write_strings(group, strings: list[str]) -> dict[str, list[int]]:
    flat, offsets = encode_strings(strings)
    byte_dim, edge_dim = STRING_DIMENSIONS[group.basename]
    return {"bytes": _write_small(group, "bytes", flat, (byte_dim,)),
            "offsets": _write_small(group, "offsets", offsets, (edge_dim,))}


class StoreWriter:
    """Holds the store's exclusive lock while open; use as a context manager."""

    def __init__(self, path: Path, model: dict, settings: dict, vocab: list[str]):
        self.path = storage.location(path)
        self._lock = None
        check_output_path(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        if not storage.is_remote(self.path) and not os.access(self.path, os.W_OK):
            raise EnvError(f"store {self.path} is read-only for this user; write to another --out")
        self._lock = storage.WriteLock.acquire(self.path)
        try:
            self._open(model, settings, vocab)
        except BaseException:
            self.close()
            raise

    def _open(self, model: dict, settings: dict, vocab: list[str]) -> None:
        self.settings = settings
        self.repaired: list[str] = []  # what the writer found damaged and wrote again (the dump logs it)
        if (self.path / "zarr.json").exists():
            self.attrs = read_root_attrs(self.path)
            version = self.attrs.get("format_version", 0)
            if isinstance(version, int) and version < min(WRITE_VERSIONS):
                raise HsError(f"store {self.path} was made by an older hs (format {version}, no chunk manifest); "
                              f"it stays readable, but new corpora go into a new store: give another --out")
            if version not in WRITE_VERSIONS:
                raise HsError(f"store {self.path} uses store format {version}, newer than this hs writes; upgrade hs")
            if "manifest" in self.attrs:  # a set-up that finished: its metadata must be as hs wrote it
                Store(self.path)
            self._check_compatible(model, settings)
            remove_temp_files_here(self.path)
            (self.path / LEGACY_LOCK).unlink(missing_ok=True)
            self.root = zarr.open_group(storage.zarr_store(self.path, "r+"), mode="r+")
            if "manifest" not in self.attrs:  # a kill during the store's set-up: redo it
                self._write_vocab(vocab)
            else:
                self._check_vocab(vocab)
        else:
            self._create(model, settings, vocab)
        self.identity = self.attrs["identity"]
        self.chunk_tokens = int(self.attrs["settings"]["chunk_tokens"])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _create(self, model: dict, settings: dict, vocab: list[str]) -> None:
        # root metadata first; the vocabulary's manifest, written last, marks the set-up finished
        self.attrs = with_digest({"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "hs_version": __version__,
                                  "model": model, "settings": settings, "identity": store_identity(model, settings)})
        self.root = zarr.open_group(storage.zarr_store(self.path, "a"), mode="a", attributes=self.attrs)
        fault_point("store-created")
        self._write_vocab(vocab)

    def _write_vocab(self, vocab: list[str]) -> None:
        crcs = _write_strings(self.root.require_group("vocab"), vocab)
        self.root.require_group("corpora")
        fault_point("vocab-written")
        attrs = {**self.attrs, "manifest": {f"vocab/{k}": v for k, v in crcs.items()}}
        # a format 2 store being finished keeps its format (and no digest); a new store has one
        self.attrs = with_digest(attrs) if attrs.get("format_version") >= 3 else attrs
        write_group_attrs(self.path, self.attrs, "store-committed")

    def _check_vocab(self, vocab: list[str]) -> None:
        """The stored vocabulary is the tokenizer's; one that is damaged but was the tokenizer's (the
        manifest records the CRC-32C of its chunks) is written again."""
        try:
            stored = Store(self.path).vocab  # every chunk present, verified and compared with the manifest
        except StoreError as exc:
            flat, offsets = encode_strings(vocab)
            mine = {"vocab/bytes": small_array_crcs(flat, _small_chunk(flat)),
                    "vocab/offsets": small_array_crcs(offsets, _small_chunk(offsets))}
            if mine != self.attrs.get("manifest"):
                raise exc from None
            _write_strings(self.root.require_group("vocab"), vocab)
            self.repaired.append(f"the vocabulary ({exc})")
            return
        if stored != vocab:
            raise HsError(f"store {self.path} holds another tokenizer vocabulary than this dump's model; "
                          f"write to another --out")

    def _check_compatible(self, model: dict, settings: dict) -> None:
        stored_model = self.attrs["model"]
        differ = model_differences(stored_model, model)
        if differ:
            why = ""
            if differ == ["config_sha256"]:  # most often an upgraded transformers: its version is in the digest
                why = (" (the digest covers the configuration as transformers reads it, its version included: "
                       "if transformers was upgraded since the store was begun, reinstall that version to extend it)")
            raise HsError(f"store {self.path} holds states of model {stored_model['name']!r}; this dump's model "
                          f"{model['name']!r} differs in {', '.join(differ)}{why}: write to another --out")
        stored = self.attrs["settings"]
        for key in IDENTITY_SETTINGS:
            if stored.get(key) != settings[key]:
                raise HsError(f"store {self.path} was dumped with {key}={stored.get(key)}, this dump asks for "
                              f"{key}={settings[key]}: use the store's setting or write to another --out")

    def _corpus_dir(self, name: str) -> Path:
        return self.path / "corpora" / name

    def corpus_status(self, name: str, fingerprint: str, plan: CorpusPlan | None = None) -> str:
        """'new', 'resume', 'complete' or (given the ``plan``) 'repair' for a complete corpus found
        damaged; raises if the name holds other data."""
        gdir = self._corpus_dir(name)
        if not gdir.exists():
            return "new"
        try:
            attrs = read_group_attrs(gdir)
        except FileNotFoundError:
            attrs = {}
        except (OSError, ValueError):
            raise StoreError(f"{gdir}/zarr.json is unreadable; run `hs verify {self.path}`, or remove {gdir} "
                             f"and rerun to dump the corpus again") from None
        if "fingerprint" not in attrs:  # a kill while the plan itself was being written
            storage.remove_tree(gdir)
            return "new"
        if attrs["fingerprint"] != fingerprint:
            raise HsError(f"corpus {name!r} in {self.path} was dumped from other texts, settings or task definition; "
                          f"pick another name (--corpus-name, --task-name) or another --out")
        if not attrs.get("complete"):
            return "resume"
        damage = self._damage(plan) if plan is not None else None
        if damage:
            self.repaired.append(f"corpus {name!r} ({damage})")
            return "repair"
        return "complete"

    def _damage(self, plan: CorpusPlan) -> str | None:
        """What is damaged in the complete corpus of ``plan``, or None: a quick check (its plan arrays
        read and compared with the plan; its chunk files' presence, sizes and the CRC-32C each carries
        against the manifest, not their data: `hs verify --deep --repair` finds the rest)."""
        corpus = Store(self.path).corpus(plan.name)  # its metadata must be as written: that is not repaired here
        try:
            for name, want in plan_arrays(plan, self.settings["layers"]).items():
                if not np.array_equal(corpus.small(*name.split("/")), want):
                    return f"array {name} is not the one it was dumped with"
            for name in ("hidden", attention.ARRAY):
                if not corpus.has(name):
                    continue
                layout, table = corpus.layout(name), corpus.manifest_table(name)
                good = whole_columns(corpus.dir / name, 0, layout.n_chunks, layout.shape[0], layout.nbytes, table)
                if good < layout.n_chunks:
                    return f"array {name}: a chunk of token chunk {good} is missing, short or not the one written"
        except HsError as exc:
            return str(exc)
        return None

    def open_corpus(self, plan: CorpusPlan, fingerprint: str, status: str, info: dict | None = None) -> "CorpusWriter":
        gdir = self._corpus_dir(plan.name)
        corpora = self.root["corpora"]
        if status == "new":
            g = corpora.create_group(plan.name)
            manifest, extra = self._write_plan(g, plan)
            fault_point("plan-written")
            attrs = {"n_sentences": plan.n_sentences, "n_tokens": plan.n_tokens, "truncated": plan.truncated,
                     "n_batches": len(plan.batch_ends), "source": plan.source, "layers": self.settings["layers"],
                     "manifest": manifest, "fingerprint": fingerprint, "complete": False, "committed_batches": 0,
                     "committed_sentences": 0, "committed_tokens": 0, "hidden_chunks": 0, **extra, **(info or {})}
            write_group_attrs(gdir, with_digest(attrs, WATERMARK), "corpus-created")
        else:
            remove_temp_files(gdir)
            self._repair_plan(corpora[plan.name], plan)
        return CorpusWriter(gdir, corpora[plan.name], plan)

    def _repair_plan(self, g, plan: CorpusPlan) -> None:
        """Rewrite any plan array of a resumed corpus that is missing, damaged or not the plan's."""
        corpus = Store(self.path).corpus(plan.name, allow_incomplete=True)
        for name, want in plan_arrays(plan, self.settings["layers"]).items():
            if name == "source_position" and name not in corpus.attrs.get("manifest", {}):
                continue  # a corpus begun before hs recorded it keeps its arrays as they are
            try:
                same = np.array_equal(corpus.small(*name.split("/")), want)
            except (HsError, KeyError):
                same = False
            if not same:
                _write_array(g, name, want)

    def _write_plan(self, g, plan: CorpusPlan) -> tuple[dict[str, list[int]], dict]:
        """Write the plan's arrays; returns their manifest and attributes the corpus must record."""
        manifest = {name: _write_array(g, name, data) for name, data in plan_arrays(plan, self.settings["layers"]).items()}
        layers = self.settings["layers"]
        hidden = self.attrs["model"]["hidden_size"]
        chunk = corpus_chunk_tokens(self.chunk_tokens, plan.n_tokens)
        g.create_array("hidden", shape=(len(layers), plan.n_tokens, hidden), dtype=DTYPES[self.settings["dtype"]],
                       chunks=(1, chunk, hidden), compressors=[Crc32cCodec()], fill_value=0,
                       dimension_names=DIMENSIONS["hidden"])
        # the manifest of hidden: CRC-32C of chunk (layer l, token chunk i) at row i, column l
        g.create_array("hidden_crc32c", shape=(math.ceil(plan.n_tokens / chunk), len(layers)), dtype=np.uint32,
                       chunks=(MANIFEST_ROWS, len(layers)), compressors=[Crc32cCodec()], fill_value=0,
                       dimension_names=DIMENSIONS["hidden_crc32c"])
        extra = {}
        if plan.attention_shape is not None:
            extra = attention.create_array(g, plan, chunk)
        return manifest, extra


def plan_arrays(plan: CorpusPlan, layers: list[int]) -> dict[str, np.ndarray]:
    """Every array of a corpus that its plan fixes, by name, in the store's data types."""
    flat, text_offsets = encode_strings(plan.texts)
    arrays = {"text/bytes": flat, "text/offsets": text_offsets, "offsets": plan.offsets, "token_ids": plan.token_ids,
              "token_kind": plan.token_kind, "batch_ends": plan.batch_ends}
    if plan.position_ids is not None:
        arrays["position_ids"] = plan.position_ids
    if plan.source_position is not None:  # each stored sentence's place in its source (hs embed's order)
        arrays["source_position"] = plan.source_position
    if plan.task_lines is not None:  # a user's task definition, one JSON line a row
        arrays["task/bytes"], arrays["task/offsets"] = encode_strings(plan.task_lines)
    arrays.update(layer=np.asarray(layers), sentence_length=np.diff(plan.offsets))
    return {name: np.asarray(data, dtype=ARRAY_DTYPES[name]) for name, data in arrays.items()}


def _write_array(g, name: str, data: np.ndarray) -> list[int]:
    """One plan array (``text/...``, ``task/...`` in their groups); returns its manifest entry."""
    group, _, leaf = name.rpartition("/")
    if group:
        dims = STRING_DIMENSIONS[group][0 if leaf == "bytes" else 1]
        return _write_small(g.require_group(group), leaf, data, (dims,))
    return _write_small(g, name, data)


def remove_temp_files_here(directory: Path) -> None:
    """Temporary files a killed writer left directly in ``directory`` (not below it)."""
    if storage.is_remote(directory):
        storage.remove_temp(directory, recursive=False)
        return
    for p in directory.glob("*.partial"):
        p.unlink(missing_ok=True)


def write_chunk_run(w, data: np.ndarray, n: int) -> None:
    """Write tokens ``[w.buf_start, w.buf_start + n)`` (``data``: layers x tokens x hidden, starting at
    ``w.buf_start``) as chunk files, then the manifest rows that cover them; ``w`` is a corpus writer
    (its ``files``, ``crc_files``, ``manifest``, ``chunk``, ``n_layers``). Shared by a plain dump and a shard."""
    first = w.buf_start // w.chunk
    jobs = [(data[layer, offset:offset + w.chunk][None], (layer, first + offset // w.chunk, 0))
            for offset in range(0, n, w.chunk) for layer in range(w.n_layers)]
    for (_, (layer, col, _)), crc in zip(jobs, w.files.write_many(jobs)):
        w.manifest[col, layer] = crc
    fault_point("chunks-written")
    last = (w.buf_start + n - 1) // w.chunk
    for row in range(first // MANIFEST_ROWS, last // MANIFEST_ROWS + 1):
        w.crc_files.write(w.manifest[row * MANIFEST_ROWS:(row + 1) * MANIFEST_ROWS], (row, 0))
    fault_point("manifest-written")


class CorpusWriter:
    """Appends batches of hidden states (in plan order) and moves the commit watermark."""

    def __init__(self, gdir: Path, group, plan: CorpusPlan):
        self.dir, self.plan = gdir, plan
        self.attrs = read_group_attrs(gdir)
        if "digest" in self.attrs and not digest_matches(self.attrs, WATERMARK):
            raise StoreError(f"corpus {plan.name!r} in {gdir.parent.parent}: its attributes do not match their digest "
                             f"(changed after hs wrote them); run `hs verify` on the store")
        self.hidden = group["hidden"]
        self.files = ChunkFiles(self.hidden, gdir)
        self.crc_files = ChunkFiles(group["hidden_crc32c"], gdir)
        self.n_layers = self.hidden.shape[0]
        self.chunk = int(self.hidden.chunks[1])
        self.manifest = np.zeros(group["hidden_crc32c"].shape, dtype=np.uint32)
        self.batch_token_ends = plan.offsets[plan.batch_ends]
        self.side = attention.SideArrays(group, gdir, self.chunk)  # attention diagonals, if stored
        self.next_batch = self._resume_point(group)
        start = int(self.batch_token_ends[self.next_batch - 1]) if self.next_batch else 0
        self.buf_start = start - start % self.chunk
        self.buf = []
        if start > self.buf_start:
            head = self._committed_head(self.buf_start, start)
            side_head = self.side.committed_head(self.buf_start, start) if head is not None else None
            if head is None or side_head is None:  # damaged: start this corpus over rather than build on it
                self.next_batch, self.manifest[:], start, self.buf_start = 0, 0, 0, 0
            else:
                self.buf = [head]
                self.side.start_with(side_head)
        self.buf_end = start
        if self.attrs.get("complete") or self.next_batch < int(self.attrs.get("committed_batches", 0)):
            self._commit(self.next_batch, self.buf_start // self.chunk, False, "uncommitted")  # damage found

    def _resume_point(self, group) -> int:
        """The committed batch count, moved back before any committed chunk that is missing, short or
        not the manifest's (of hidden or an array written beside it)."""
        batches, cols = int(self.attrs["committed_batches"]), int(self.attrs.get("hidden_chunks", 0))
        if not batches:
            return 0
        size = self.chunk * self.hidden.shape[2] * self.hidden.dtype.itemsize + 4
        try:
            table = group["hidden_crc32c"]
            self.manifest[:cols] = read_rows(self.dir / "hidden_crc32c", Layout.of(table, "manifest"), (), 0, cols)
            good = whole_columns(self.dir / "hidden", 0, cols, self.n_layers, size, self.manifest)
            good = self.side.resume_columns(good)
        except (HsError, ValueError, OSError):
            good = 0
        # the last batch whose tokens lie wholly in the good chunks
        return min(batches, int(np.searchsorted(self.batch_token_ends, good * self.chunk, side="right")))

    def _committed_head(self, chunk_start: int, start: int) -> np.ndarray | None:
        """The committed tokens of the chunk that later batches complete, read back and checked against
        their checksums and the manifest (None if that chunk is damaged)."""
        col = chunk_start // self.chunk
        layout = Layout.of(self.hidden, "hidden", axis=1)
        try:
            return np.stack([read_rows(self.dir / "hidden", layout, (layer,), chunk_start, start,
                                       lambda c, layer=layer: self.manifest[c, layer])
                             for layer in range(self.n_layers)]) if col < len(self.manifest) else None
        except (HsError, OSError):
            return None

    @property
    def start_batch(self) -> int:
        return self.next_batch

    def add(self, batch: int, states: np.ndarray, extras: dict | None = None) -> None:
        """``states``: (layers, tokens of the batch, hidden), the batches' tokens in order; ``extras``:
        the batch's other per-token arrays (attention diagonals)."""
        if batch != self.next_batch:
            raise RuntimeError(f"batch {batch} arrived, expected {self.next_batch}")
        expected = int(self.batch_token_ends[batch]) - self.buf_end
        if states.shape[1] != expected:
            raise RuntimeError(f"batch {batch} has {states.shape[1]} tokens, the plan says {expected}")
        self.buf.append(states)
        self.side.add(extras)
        self.buf_end += expected
        self.next_batch += 1
        self._flush(final=False)

    def finish(self) -> None:
        self._flush(final=True)

    def _flush(self, final: bool) -> None:
        pending = self.buf_end - self.buf_start
        n = pending if final else pending - pending % self.chunk
        if n == 0 and not final:
            return
        if n:
            data = np.concatenate(self.buf, axis=1) if len(self.buf) > 1 else self.buf[0]
            self.side.write(self.buf_start // self.chunk, n)  # attention diagonals first: the manifest and watermark cover both
            write_chunk_run(self, data, n)
            self.buf = [data[:, n:]] if n < pending else []
            self.buf_start += n
        committed = int(np.searchsorted(self.batch_token_ends, self.buf_start, side="right"))
        committed = min(committed, self.next_batch)
        complete = final and committed == len(self.plan.batch_ends)
        if complete:
            self._check_all_chunks()
        self._commit(committed, math.ceil(self.buf_start / self.chunk), complete, "complete" if complete else "commit")

    def _commit(self, batches: int, chunks: int, complete: bool, label: str) -> None:
        """Move the watermark to ``batches`` committed batches, ``chunks`` chunk columns on disk, in one write."""
        self.attrs.update(watermark(self.plan.batch_ends, self.plan.offsets, batches, chunks, complete))
        write_group_attrs(self.dir, self.attrs, label)

    def _check_all_chunks(self) -> None:
        files = list_files(self.dir / "hidden")
        size = self.chunk * self.hidden.shape[2] * self.hidden.dtype.itemsize + 4
        check_present(files, expected_keys(self.hidden.shape, self.hidden.chunks), size,
                      f"corpus {self.plan.name!r}, array hidden")


def watermark(batch_ends: np.ndarray, offsets: np.ndarray, batches: int, chunks: int, complete: bool) -> dict:
    """A corpus's commit watermark: ``batches`` batches committed, ``chunks`` token chunks on disk."""
    sentences = int(batch_ends[batches - 1]) if batches else 0
    return {"committed_batches": batches, "committed_sentences": sentences, "committed_tokens": int(offsets[sentences]),
            "hidden_chunks": chunks, "complete": complete}


def uncommit(path: Path, name: str, col: int) -> int:
    """Move corpus ``name``'s watermark back before token chunk ``col`` (found damaged by `hs verify`)
    and mark it incomplete, so that rerunning its `hs dump` recomputes that chunk and the ones after
    it (nothing is deleted); returns the batches still committed. The caller holds the store's lock."""
    corpus = Store(path).corpus(name, allow_incomplete=True)
    attrs = read_group_attrs(corpus.dir)
    try:
        ends, offsets = corpus.small("batch_ends"), corpus.offsets
        batches = int(np.searchsorted(offsets[ends], col * corpus.chunk_tokens, side="right"))
    except HsError:  # its plan is damaged too: the dump starts the corpus over (and rewrites the plan)
        ends, offsets, batches, col = np.zeros(1, np.int64), np.zeros(1, np.int64), 0, 0
    batches = min(batches, int(attrs.get("committed_batches", 0)))
    col = min(col, int(attrs.get("hidden_chunks", col)))
    attrs.update(watermark(ends, offsets, batches, col, False))
    write_group_attrs(corpus.dir, attrs, "uncommitted")
    return batches

