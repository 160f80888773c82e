"""``hs verify``: a store's metadata, shapes, offsets, chunk files and (deep) every chunk's checksum.

Every array the store holds is checked: the vocabulary, the static arrays, and of each corpus its
plan arrays, ``hidden`` with its manifest and the attention diagonals with theirs. ``--repair``
holds the writer's lock, removes the temporary files of killed runs, and marks what it found
damaged for the next `hs dump` to write again (a corpus's watermark moved back before its first
damaged chunk, a damaged statics matrix marked unfinished); it deletes nothing.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hsstore.errors import HsError, StoreError
from hsstore.format import storage
from hsstore.format.atomic import read_group_attrs, remove_temp_files, write_group_attrs
from hsstore.format.chunks import chunk_key, chunk_nbytes, crc32c, expected_keys, file_crc, list_files
from hsstore.format.digests import with_digest
from hsstore.format.layout import KIND_NAMES

from . import attention, b2s, shards, statics, vocabulary
from .reader import Store
from .writer import uncommit


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def bad(self, where: str, what: str) -> None:
        self.problems.append(f"{where}: {what}")


def _padding(array):
    """``valid(key)``: the bytes of chunk ``key`` that hold the array's values when it is the last,
    padded chunk along the chunked axis (None for a full one); hs pads with zeros."""
    axis = 1 if len(array.shape) == 3 else 0
    n, rows = int(array.shape[axis]), int(array.chunks[axis])
    row_bytes = int(np.prod(array.chunks[axis + 1:], dtype=np.int64)) * np.dtype(array.dtype).itemsize
    last = (n - 1) // rows if n else 0

    def valid(key: str) -> int | None:
        col = int(key.split("/")[1 + axis])
        return (n - col * rows) * row_bytes if col == last and n % rows else None
    return valid


def _check_files(report: Report, array, array_dir: Path, where: str, keys: list[str], deep: bool,
                 crc_of=None) -> list[str]:
    """Presence and size of each chunk in ``keys``; with ``deep``, each chunk's data against its
    stored CRC-32C and the manifest's (``crc_of(key)`` gives the manifest's value), and the padding
    of a last chunk (zeros). Returns the keys found damaged."""
    files = list_files(array_dir)
    size = chunk_nbytes(array.chunks, array.dtype)
    valid = _padding(array)
    damaged = []
    for key in keys:
        got, what = files.get(key), None
        if got is None:
            what = "missing"
        elif got[0] != size:
            what = f"{got[0]} bytes, expected {size} (truncated or damaged)"
        elif deep:
            raw = (array_dir / key).read_bytes()
            data_crc, stored = crc32c(np.frombuffer(raw, np.uint8, count=len(raw) - 4)), int.from_bytes(raw[-4:], "little")
            want, end = (crc_of(key) if crc_of is not None else None), valid(key)
            if data_crc != stored:
                what = "checksum mismatch (its bytes changed after writing)"
            elif want is not None and int(want) != data_crc:
                what = "not the chunk that was written (its CRC-32C differs from the manifest's)"
            elif end is not None and raw[end:-4].strip(b"\0"):
                what = "the padding past the array's end is not zeros (its bytes changed after writing)"
        if what:
            report.bad(f"{where} chunk {key}", what)
            damaged.append(key)
    return damaged


def _small(report: Report, node_array, base: Path, rel: str, where: str, manifest: dict | None, deep: bool) -> bool:
    """One array chunked along its first axis, against its manifest entry; True if it is intact."""
    keys = expected_keys(node_array.shape, node_array.chunks)
    crcs = None if manifest is None else manifest.get(rel)
    if manifest is not None and (crcs is None or len(crcs) != len(keys)):
        report.bad(f"{where} array {rel}", f"the manifest lists {0 if crcs is None else len(crcs)} chunks, "
                                           f"the array has {len(keys)}")
        crcs = None
    return not _check_files(report, node_array, base / rel, f"{where} array {rel}", keys, deep,
                            crc_of=(lambda key: crcs[int(key.split("/")[1])]) if crcs else None)


def _shapes(report: Report, corpus, where: str) -> None:
    """What the reader checks on every read (each array's shape and type, the plan against its
    fingerprint), and what only xarray users read (the layer numbers, the sentence lengths)."""
    S, T = corpus.n_sentences, corpus.n_tokens
    arrays = ["text/offsets", "offsets", "token_ids", "token_kind", "batch_ends", "layer", "sentence_length", "hidden",
              "hidden_crc32c"] + [a for a in ("position_ids", attention.ARRAY, attention.MANIFEST) if corpus.has(a)]
    for name in arrays:
        if corpus.has(name.split("/")[0]) and (name != "hidden_crc32c" or corpus.store.has_manifest):
            try:
                corpus.layout(name)
            except HsError as exc:
                report.bad(f"{where} array {name}", str(exc))
    offsets, ids, kinds = corpus.offsets, corpus.all_token_ids, corpus.all_token_kinds  # the fingerprint checked
    if len(ids) and (ids.min() < 0 or ids.max() >= len(corpus.store.vocab)):
        report.bad(f"{where} array token_ids", "ids outside the vocabulary")
    if not np.isin(kinds, list(KIND_NAMES)).all():
        report.bad(f"{where} array token_kind", "unknown token kinds")
    if len(corpus.texts) != S or len(offsets) != S + 1 or offsets[-1] != T:
        report.bad(where, f"{len(corpus.texts)} texts and {len(offsets)} offsets for {S} sentences of {T} tokens")
    if corpus.small("layer").tolist() != corpus.store.layers:
        report.bad(f"{where} array layer", f"not the store's layers {corpus.store.layers}")
    if not np.array_equal(corpus.small("sentence_length"), np.diff(offsets)):
        report.bad(f"{where} array sentence_length", "not the sentences' token counts (np.diff(offsets))")
    positions = corpus.source_positions
    if positions is not None and (len(positions) != S or len(np.unique(positions)) != S or
                                  (S and positions.min() < 0)):
        report.bad(f"{where} array source_position", f"not {S} distinct positions of the source's texts")


def _token_chunked(report: Report, corpus, name: str, cols: int, deep: bool, where: str) -> int | None:
    """``hidden`` or the attention diagonals: the first ``cols`` token chunks of every layer, against
    the array's manifest; returns the first damaged token chunk (None if none)."""
    array, base = corpus.raw(name), corpus.dir
    keys = [f"c/{layer}/{col}/0" for layer in range(array.shape[0]) for col in range(cols)]
    crc_of, first = None, None
    if corpus.store.has_manifest and corpus.has(f"{name}_crc32c"):
        table_array = corpus.raw(f"{name}_crc32c")
        rows = table_array.chunks[0]
        damaged = _check_files(report, table_array, base / f"{name}_crc32c", f"{where} array {name}_crc32c",
                               [chunk_key((b, 0)) for b in range(math.ceil(cols / rows))], deep)
        try:
            table = corpus.manifest_table(name)

            def crc_of(key):
                _, layer, col, _ = key.split("/")
                return table[int(col), int(layer)]
        except HsError as exc:
            if not damaged:
                report.bad(f"{where} array {name}_crc32c", f"the manifest is unreadable ({exc})")
            first = 0  # without its manifest no chunk can be trusted
    elif name != "hidden" and corpus.store.has_manifest:
        report.notes.append(f"{where}: its {name} was stored before hs kept a manifest of it; its chunks are checked "
                            f"against their own checksums only")
    for key in _check_files(report, array, base / name, f"{where} array {name}", keys, deep, crc_of):
        col = int(key.split("/")[2])
        first = col if first is None else min(first, col)
    return first


def _corpus(report: Report, store, name: str, deep: bool, repair: bool) -> None:
    where = f"corpus {name}"
    try:
        corpus = store.corpus(name, allow_incomplete=True)
    except HsError as exc:
        report.bad(where, str(exc))
        return
    base = corpus.dir
    manifest = corpus.attrs.get("manifest") if store.has_manifest else None
    rels = ("text/bytes", "text/offsets", "offsets", "token_ids", "token_kind", "batch_ends")
    rels += tuple(k for k in (manifest or {}) if k not in rels)  # layer, sentence_length, position_ids, source_position
    plan_ok = True
    for rel in rels:
        try:
            plan_ok &= _small(report, corpus.raw(*rel.split("/")), base, rel, where, manifest, deep)
        except (KeyError, ValueError, OSError) as exc:
            report.bad(f"{where} array {rel}", f"unreadable metadata ({type(exc).__name__})")
            plan_ok = False
    n_before = len(report.problems)
    try:
        _shapes(report, corpus, where)
    except HsError as exc:
        if len(report.problems) == n_before:
            report.bad(where, str(exc))
        plan_ok = False
    hidden = corpus.raw("hidden")
    chunk = hidden.chunks[1]
    if corpus.complete:
        cols = math.ceil(hidden.shape[1] / chunk)
    else:
        cols = int(corpus.attrs.get("hidden_chunks", corpus.attrs.get("committed_tokens", 0) // chunk))
        report.notes.append(f"{where}: incomplete ({corpus.committed_sentences}/{corpus.n_sentences} sentences); "
                            f"rerun the `hs dump` command that made it to finish it")
    firsts = [_token_chunked(report, corpus, "hidden", cols, deep, where)]
    if attention.has_diagonals(corpus):
        firsts.append(_token_chunked(report, corpus, attention.ARRAY, cols, deep, where))
    firsts = [f for f in firsts if f is not None]
    if repair and firsts:
        kept = uncommit(store.path, name, min(firsts))
        report.notes.append(f"{where}: marked incomplete from token chunk {min(firsts)} on ({kept} batches kept); "
                            f"rerun the `hs dump` command that made it to recompute the rest")
    elif repair and not plan_ok:
        report.notes.append(f"{where}: rerun the `hs dump` command that made it: it rewrites the damaged arrays of "
                            f"its plan")


def _statics(report: Report, store, deep: bool, repair: bool) -> None:
    """The input-embedding matrix: its group's attributes and every chunk, against its manifest."""
    attrs = store.statics_attrs
    if not attrs.get(statics.COMPLETE):
        if (store.path / statics.GROUP / "zarr.json").exists():
            report.notes.append("store statics: the input-embedding matrix is unfinished; rerun an `hs dump` "
                                "command of the store to write it")
        return
    where = f"store {statics.GROUP}"
    try:
        array = store.raw(statics.GROUP, statics.INPUT)
        crcs = attrs.get(statics.MANIFEST)
        if crcs is None:
            report.notes.append(f"{where}: stored before hs kept a manifest of it; its chunks are checked against "
                                f"their own checksums only")
        ok = _small(report, array, store.path / statics.GROUP, statics.INPUT, where,
                    {statics.INPUT: crcs} if crcs is not None else None, deep)
        if ok:
            store.input_embeddings()  # the group's digest, identity, shape and type (and the data once more)
    except HsError as exc:
        report.bad(f"{where} array {statics.INPUT}", str(exc))
        ok = False
    except (KeyError, ValueError, OSError) as exc:
        report.bad(f"{where} array {statics.INPUT}", f"unreadable metadata ({type(exc).__name__})")
        ok = False
    if repair and not ok:
        group = store.path / statics.GROUP
        write_group_attrs(group, with_digest({**read_group_attrs(group), statics.COMPLETE: False}), "statics-uncommitted")
        report.notes.append(f"{where}: marked unfinished; rerun an `hs dump` command of the store to write it again")


def verify(path: Path, corpus: str | None = None, deep: bool = False, repair: bool = False) -> Report:
    """Check a store; ``repair`` (holding the writer's lock) removes what killed runs left behind
    (temporary files) and marks damaged data for the next dump to write again."""
    report = Report()
    path = storage.location(path)
    if not storage.is_remote(path) and (path / shards.SHARDS).is_dir():  # a sharded dump in progress (shards.py)
        report = verify_shards(path, deep)
        if not (path / "zarr.json").exists():
            return report
    store = Store(path)  # unreadable or changed root metadata is an error of its own
    path = store.path  # a Path, or an ObjectPath for a URL
    if not store.is_zarr:
        report.notes.append(f"{path} is an HDF5 export: its hidden datasets carry Fletcher-32 checksums that "
                            f"h5py verifies on read; hs verify checks Zarr stores")
        return report
    lock, writing = None, False
    if repair:
        try:
            lock = storage.WriteLock.acquire(path)
        except HsError:
            raise HsError(f"store {path} is being written by an hs dump; run hs verify --repair once it has "
                          f"finished (or been stopped)") from None
    else:
        writing = storage.is_being_written(path)
    try:
        _check_store(report, store, corpus, deep, repair, writing)
    finally:
        if lock is not None:
            lock.release()
    return report


def _check_store(report: Report, store: Store, corpus: str | None, deep: bool, repair: bool, writing: bool) -> None:
    path = store.path
    temps = storage.find_temp(path)
    if writing:
        report.notes.append(f"{path} is being written by an hs dump now: its temporary files and incomplete corpora "
                            f"are that dump's work in progress")
    elif temps and repair:
        remove_temp_files(path)
        report.notes.append(f"removed {len(temps)} temporary files of killed runs")
    elif temps:
        report.bad(str(temps[0].relative_to(path)), f"temporary file of a killed run ({len(temps)} in all); "
                                                    f"`hs verify --repair` removes them")
    if not store.has_manifest:
        report.notes.append(f"{path} is a format {store.attrs.get('format_version')} store (made by an older hs): "
                            f"it has no chunk manifest, so chunks are checked for presence, size and their own "
                            f"checksums only")
    elif store.format_version < 3:
        report.notes.append(f"{path} is a format {store.format_version} store (made by an older hs): its metadata "
                            f"carries no digests, so it is cross-checked (identity, shapes, fingerprints) instead")
    manifest = store.attrs.get("manifest") if store.has_manifest else None
    vocab_ok = True
    for part in ("bytes", "offsets"):
        try:
            vocab_ok &= _small(report, store.raw("vocab", part), path / "vocab", part, "store vocab",
                               {part: manifest[f"vocab/{part}"]} if manifest else None, deep)
        except (KeyError, ValueError, OSError) as exc:
            report.bad(f"store vocab/{part}", f"unreadable ({type(exc).__name__})")
            vocab_ok = False
    if vocab_ok:
        try:
            store.vocab  # noqa: B018 - its offsets against its bytes, its size against the model's
        except HsError as exc:
            report.bad("store vocab", str(exc))
            vocab_ok = False
    if repair and not vocab_ok:
        report.notes.append("store vocab: rerun an `hs dump` command of the store: it writes a damaged vocabulary "
                            "again (if it was this tokenizer's)")
    _statics(report, store, deep, repair and not writing)
    for where, array, array_dir, keys, crc_of in (*vocabulary.verify_targets(store), *b2s.verify_targets(store)):
        try:
            _check_files(report, array, array_dir, where, keys, deep, crc_of)
        except (KeyError, ValueError, OSError) as exc:
            report.bad(where, f"unreadable ({type(exc).__name__})")
    if vocabulary.incomplete_note(store):
        report.notes.append(vocabulary.incomplete_note(store))
    names = store.all_corpora
    if corpus is not None:
        if corpus not in names:
            raise StoreError(f"store {path} has no corpus {corpus!r} (it has: {', '.join(names) or 'none'})")
        names = [corpus]
    for name in names:
        _corpus(report, store, name, deep, repair)


def verify_shards(out: Path, deep: bool):
    """``hs verify`` of the shards under ``out/shards``: each shard store as a store, and of each corpus
    the chunk files its watermark covers (in the shard, or in ``out`` once a merge moved them)."""
    report = Report()
    try:
        found = shards.found_shards(out)
    except HsError as exc:
        report.bad(f"{out}/{shards.SHARDS}", str(exc))
        return report
    for (k, n), sdir in found.items():
        where = f"shard {k}/{n}"
        try:
            sub = verify(sdir, deep=deep)
            store = Store(sdir)
        except HsError as exc:
            report.bad(where, str(exc))
            continue
        report.problems += [f"{where} {p}" for p in sub.problems]
        report.notes += [f"{where}: {m}" for m in sub.notes if "incomplete (" not in m]
        for name in store.all_corpora:
            try:
                attrs = read_group_attrs(sdir / "corpora" / name)
                sh = attrs["shard"]
                hidden = store.corpus(name, allow_incomplete=True).raw("hidden")
                c0, c1 = sh["chunks"]
                done = int(sh["done_chunks"])
                table = shards.manifest_rows(sdir / "corpora" / name, store.corpus(name, allow_incomplete=True)
                                             .raw("hidden_crc32c"), c0, c0 + done)
            except (HsError, KeyError, ValueError, OSError) as exc:
                report.bad(f"{where} corpus {name}", f"unreadable shard metadata or manifest ({exc})")
                continue
            size = int(np.prod(hidden.chunks)) * hidden.dtype.itemsize + 4
            for i in range(done):
                for layer in range(hidden.shape[0]):
                    key = chunk_key((layer, c0 + i, 0))
                    path = sdir / "corpora" / name / "hidden" / key
                    if not path.exists():  # moved into the store by a merge
                        path = Path(out) / "corpora" / name / "hidden" / key
                    if not path.exists() or path.stat().st_size != size:
                        report.bad(f"{where} corpus {name} array hidden chunk {key}",
                                   "missing" if not path.exists() else "wrong size (truncated or damaged)")
                    elif deep and not file_crc(path)[0] == file_crc(path)[1] == int(table[i, layer]):
                        report.bad(f"{where} corpus {name} array hidden chunk {key}",
                                   "checksum mismatch with the chunk or the shard's manifest")
            report.notes.append(f"{where} corpus {name}: {done}/{c1 - c0} of its chunks done"
                                + ("" if sh.get("done") else f"; rerun its hs dump --shard {k}/{n} to finish"))
    if found:
        report.notes.append(f"{out} holds a sharded dump in progress; `hs merge {out}` joins it once every "
                            f"shard is done")
    return report
