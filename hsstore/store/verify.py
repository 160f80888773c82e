"""``hs verify``: a store's metadata, shapes, offsets, chunk files and (deep) every chunk's checksum."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hsstore.errors import HsError, StoreError
from hsstore.format import storage
from hsstore.format.atomic import read_group_attrs, remove_temp_files
from hsstore.format.chunks import chunk_key, chunk_nbytes, expected_keys, file_crc, list_files
from hsstore.format.layout import KIND_NAMES

from . import attention, shards
from .reader import Store


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def bad(self, where: str, what: str) -> None:
        self.problems.append(f"{where}: {what}")


def _check_files(report: Report, array, array_dir: Path, where: str, keys: list[str],
                 manifest: list[int] | np.ndarray | None, deep: bool, crc_of=None) -> None:
    """Presence and size of each chunk in ``keys``; with ``deep``, each chunk's data against its
    stored CRC-32C and the manifest's (``crc_of(key)`` gives the manifest's value)."""
    files = list_files(array_dir)
    size = chunk_nbytes(array.chunks, array.dtype)
    for key in keys:
        got = files.get(key)
        if got is None:
            report.bad(f"{where} chunk {key}", "missing")
            continue
        if got[0] != size:
            report.bad(f"{where} chunk {key}", f"{got[0]} bytes, expected {size} (truncated or damaged)")
            continue
        if deep:
            data_crc, stored = file_crc(array_dir / key)
            if data_crc != stored:
                report.bad(f"{where} chunk {key}", "checksum mismatch (its bytes changed after writing)")
            elif crc_of is not None and crc_of(key) is not None and int(crc_of(key)) != data_crc:
                report.bad(f"{where} chunk {key}",
                           "not the chunk that was written (its CRC-32C differs from the manifest's)")


def _small(report: Report, node_array, base: Path, rel: str, where: str, manifest: dict | None, deep: bool) -> None:
    keys = expected_keys(node_array.shape, node_array.chunks)
    crcs = None if manifest is None else manifest.get(rel)
    if manifest is not None and (crcs is None or len(crcs) != len(keys)):
        report.bad(f"{where} array {rel}", f"the manifest lists {0 if crcs is None else len(crcs)} chunks, "
                                           f"the array has {len(keys)}")
        crcs = None
    _check_files(report, node_array, base / rel, f"{where} array {rel}", keys, crcs, deep,
                 crc_of=(lambda key: crcs[int(key.split("/")[-1])]) if crcs else None)


def _shapes(report: Report, corpus, where: str) -> None:
    S, T = corpus.n_sentences, corpus.n_tokens
    offsets, ids, kinds = corpus.offsets, corpus.all_token_ids, corpus.all_token_kinds
    if len(offsets) != S + 1 or offsets[0] != 0 or offsets[-1] != T or np.any(np.diff(offsets) <= 0):
        report.bad(f"{where} array offsets", f"not S+1 = {S + 1} increasing offsets from 0 to T = {T}")
    if len(ids) != T or len(kinds) != T:
        report.bad(where, f"token_ids ({len(ids)}) and token_kind ({len(kinds)}) must have T = {T} entries")
    if len(ids) and (ids.min() < 0 or ids.max() >= len(corpus.store.vocab)):
        report.bad(f"{where} array token_ids", "ids outside the vocabulary")
    if not np.isin(kinds, list(KIND_NAMES)).all():
        report.bad(f"{where} array token_kind", "unknown token kinds")
    ends = corpus.small("batch_ends")
    if len(ends) != corpus.attrs.get("n_batches") or not len(ends) or ends[-1] != S or np.any(np.diff(ends) <= 0):
        report.bad(f"{where} array batch_ends", "not increasing batch ends that stop at the last sentence")
    if len(corpus.texts) != S:
        report.bad(f"{where} array text", f"{len(corpus.texts)} texts, expected {S}")
    positions = corpus.source_positions
    if positions is not None and (len(positions) != S or len(np.unique(positions)) != S or
                                  (S and positions.min() < 0)):
        report.bad(f"{where} array source_position", f"not {S} distinct positions of the source's texts")
    hidden = corpus.raw("hidden")
    want = (len(corpus.store.layers), T, corpus.store.hidden_size)
    if tuple(hidden.shape) != want:
        report.bad(f"{where} array hidden", f"shape {tuple(hidden.shape)}, expected {want}")


def _corpus(report: Report, store, name: str, deep: bool) -> None:
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
    for rel in rels:
        try:
            _small(report, corpus.raw(*rel.split("/")), base, rel, where, manifest, deep)
        except (KeyError, ValueError, OSError) as exc:
            report.bad(f"{where} array {rel}", f"unreadable metadata ({type(exc).__name__})")
    n_before = len(report.problems)
    try:
        _shapes(report, corpus, where)
    except HsError as exc:
        if len(report.problems) == n_before:
            report.bad(where, str(exc))
    hidden = corpus.raw("hidden")
    chunk = hidden.chunks[1]
    if corpus.complete:
        cols = math.ceil(hidden.shape[1] / chunk)
    else:
        cols = int(corpus.attrs.get("hidden_chunks", corpus.attrs.get("committed_tokens", 0) // chunk))
        report.notes.append(f"{where}: incomplete ({corpus.committed_sentences}/{corpus.n_sentences} sentences); "
                            f"rerun the `hs dump` command that made it to finish it")
    keys = [f"c/{layer}/{col}/0" for layer in range(hidden.shape[0]) for col in range(cols)]
    crc_of = None
    if store.has_manifest:
        try:
            table = np.asarray(corpus.raw("hidden_crc32c")[:cols])
            _check_files(report, corpus.raw("hidden_crc32c"), base / "hidden_crc32c", f"{where} array hidden_crc32c",
                         expected_keys(table.shape, corpus.raw("hidden_crc32c").chunks), None, deep)

            def crc_of(key):
                _, layer, col, _ = key.split("/")
                return table[int(col), int(layer)]
        except (KeyError, ValueError, OSError) as exc:
            report.bad(f"{where} array hidden_crc32c", f"the manifest is unreadable ({type(exc).__name__})")
    _check_files(report, hidden, base / "hidden", f"{where} array hidden", keys, None, deep, crc_of)
    if attention.has_diagonals(corpus):  # chunked like hidden; each chunk's own CRC-32C, no manifest
        diag = corpus.raw(attention.ARRAY)
        diag_keys = [f"c/{layer}/{col}/0" for layer in range(diag.shape[0]) for col in range(cols)]
        _check_files(report, diag, base / attention.ARRAY, f"{where} array {attention.ARRAY}", diag_keys, None, deep)


def verify(path: Path, corpus: str | None = None, deep: bool = False, repair: bool = False) -> Report:
    """Check a store; ``repair`` removes what killed runs left behind (temporary files)."""
    report = Report()
    path = storage.location(path)
    if not storage.is_remote(path) and (path / shards.SHARDS).is_dir():  # a sharded dump in progress (shards.py)
        report = verify_shards(path, deep)
        if not (path / "zarr.json").exists():
            return report
    store = Store(path)  # unreadable root metadata is an error of its own
    path = store.path  # a Path, or an ObjectPath for a URL
    if not store.is_zarr:
        report.notes.append(f"{path} is an HDF5 export: its hidden datasets carry Fletcher-32 checksums that "
                            f"h5py verifies on read; hs verify checks Zarr stores")
        return report
    temps = storage.find_temp(path)
    if temps and repair:
        remove_temp_files(path)
        report.notes.append(f"removed {len(temps)} temporary files of killed runs")
    elif temps:
        report.bad(str(temps[0].relative_to(path)), f"temporary file of a killed run ({len(temps)} in all); "
                                                    f"`hs verify --repair` removes them")
    if not store.has_manifest:
        report.notes.append(f"{path} is a format {store.attrs.get('format_version')} store (made by an older hs): "
                            f"it has no chunk manifest, so chunks are checked for presence, size and their own "
                            f"checksums only")
    manifest = store.attrs.get("manifest") if store.has_manifest else None
    for part in ("bytes", "offsets"):
        try:
            _small(report, store.raw("vocab", part), path / "vocab", part, "store vocab",
                   {part: manifest[f"vocab/{part}"]} if manifest else None, deep)
        except (KeyError, ValueError, OSError) as exc:
            report.bad(f"store vocab/{part}", f"unreadable ({type(exc).__name__})")
    names = store.all_corpora
    if corpus is not None:
        if corpus not in names:
            raise StoreError(f"store {path} has no corpus {corpus!r} (it has: {', '.join(names) or 'none'})")
        names = [corpus]
    for name in names:
        _corpus(report, store, name, deep)
    return report



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
