"""Sharded dumps: N processes dump disjoint chunk ranges of the same corpora, ``hs merge`` joins them.

``hs dump --shard K/N --out STORE`` writes a store of its own at ``STORE/shards/K-of-N`` (the same
root, vocabulary, statics and plan arrays a plain dump writes) and, of each corpus's ``hidden``
array, only the token chunks assigned to shard K: the chunks of all corpora, in command-line
order, cut into N contiguous runs of (nearly) equal count. A shard computes every batch that
overlaps its chunks (a batch that straddles two shards' boundary is computed by both, and each keeps
its own tokens), so its chunk files hold the bytes a single-process dump writes there. No two
processes ever write one file; each shard holds its own lock, commits chunk by chunk (the corpus
attribute ``shard``) and resumes like a plain dump.

``hs merge STORE`` checks that all N shards are there, finished, and made by the same model,
settings, corpora and plan, then builds each corpus in STORE as a dump does: plan arrays, then
the shards' chunk files moved in by rename, the manifest ``hidden_crc32c`` assembled from the
shards', and last the commit that marks the corpus complete. A killed merge is rerun; it moves
what is left and ends with the same files. Finally ``shards/`` is renamed to ``.shards-merged``
and removed.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
from pathlib import Path
from typing import Callable

import numpy as np

from hsstore.errors import HsError, StoreError
from hsstore.format.atomic import (fault_delay, fault_point, read_group_attrs, remove_temp_files, write_bytes,
                                   write_group_attrs)
from hsstore.format.chunks import (ChunkFiles, check_present, chunk_intact, chunk_key, expected_keys, list_files,
                                   whole_columns)
from hsstore.format.digests import model_differences
from hsstore.format.layout import MANIFEST_ROWS, corpus_chunk_tokens
from hsstore.format.storage import is_remote, location

from . import statics, vocabulary
from .reader import Store
from .writer import SHARD_DIRS, CorpusPlan, StoreWriter, read_root_attrs, write_chunk_run

SHARDS, RETIRED = SHARD_DIRS  # STORE/shards/K-of-N: one store per shard; shards/ renamed after a merge
_SHARD_NAME = re.compile(r"([1-9][0-9]*)-of-([1-9][0-9]*)")


def parse_shard(spec: str) -> tuple[int, int]:
    """``K/N`` with 1 <= K <= N."""
    m = re.fullmatch(r"\s*([0-9]+)\s*/\s*([0-9]+)\s*", spec or "")
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise HsError(f"--shard {spec!r} is not K/N with 1 <= K <= N: e.g. --shard 1/4 ... --shard 4/4, "
                      f"one per GPU or machine")
    return int(m.group(1)), int(m.group(2))


def shard_dir(out: Path, k: int, n: int) -> Path:
    return Path(out) / SHARDS / f"{k}-of-{n}"


def found_shards(out: Path) -> dict[tuple[int, int], Path]:
    """``{(k, n): directory}`` of the shard stores under ``out/shards``."""
    root = Path(out) / SHARDS
    found = {}
    for p in sorted(root.iterdir()) if root.is_dir() else []:
        m = _SHARD_NAME.fullmatch(p.name)
        if not m or not p.is_dir():
            raise HsError(f"{p} is not a shard of hs dump --shard (K-of-N); move it out of {root}")
        found[int(m.group(1)), int(m.group(2))] = p
    return found


def check_shard_count(out: Path, n: int) -> None:
    """Refuse a shard of N where shards of another count are being dumped."""
    other = sorted({m for _, m in found_shards(out)} - {n})
    if other:
        raise HsError(f"{out}/{SHARDS} holds shards of a {other[0]}-way dump; use --shard K/{other[0]}, or finish "
                      f"those (hs merge {out}) or remove {out}/{SHARDS} first")


def assign(chunks_per_corpus: list[tuple[str, int]], k: int, n: int) -> dict[str, tuple[int, int]]:
    """Shard k's chunk range ``[c0, c1)`` of each corpus: all corpora's chunks, in order, cut into n
    contiguous runs."""
    total = sum(c for _, c in chunks_per_corpus)
    lo, hi = total * (k - 1) // n, total * k // n
    out, start = {}, 0
    for name, count in chunks_per_corpus:
        a, b = min(max(lo - start, 0), count), min(max(hi - start, 0), count)
        out[name] = (a, b)
        start += count
    return out


def corpus_chunks(plan, store_chunk: int) -> int:
    return math.ceil(plan.n_tokens / corpus_chunk_tokens(store_chunk, plan.n_tokens))


def set_digest(entries: list[tuple[str, str]], n: int) -> str:
    """What every shard of one sharded dump shares: the corpora in order with their fingerprints, and N."""
    return hashlib.sha256(json.dumps([n, entries]).encode()).hexdigest()[:32]


def merged_fingerprint(out: Path, name: str) -> str | None:
    """The fingerprint of corpus ``name`` if ``out`` already holds it complete."""
    try:
        attrs = read_group_attrs(Path(out) / "corpora" / name)
    except (OSError, ValueError):
        return None
    return attrs.get("fingerprint") if attrs.get("complete") else None


def shard_settings(out: Path, settings: dict) -> dict:
    """The dump's settings, with the batch and chunk settings of the store merged into, if it exists
    (as a plain dump keeps them), so the shards plan what the store will hold."""
    if not (Path(out) / "zarr.json").exists():
        return settings
    stored = read_root_attrs(Path(out)).get("settings", {})
    return {**settings, **{k: stored[k] for k in ("batch_tokens", "max_batch", "chunk_tokens") if k in stored}}


def assign_parts(out: Path, store: StoreWriter, plans: list[CorpusPlan], k: int, n: int) -> dict[str, dict | None]:
    """Shard k's part of each corpus (None for a corpus ``out`` already holds complete): its chunk
    range, and what all shards of this dump share."""
    todo = [(p, p.fingerprint(store.identity), merged_fingerprint(out, p.name)) for p in plans]
    # a corpus this shard already holds a part of stays in the plan even once a merge has finished it
    # (a merge stopped by a damaged chunk of a later corpus, say), so the rerun plans what it planned
    mine = {p.name for p in (store.path / "corpora").iterdir() if "shard" in _attrs(p)} \
        if (store.path / "corpora").is_dir() else set()
    todo = [(p, fp, merged) for p, fp, merged in todo if merged != fp or p.name in mine]
    digest = set_digest([(p.name, fp) for p, fp, _ in todo], n)
    ranges = assign([(p.name, corpus_chunks(p, store.chunk_tokens)) for p, _, _ in todo], k, n)
    parts: dict[str, dict | None] = {p.name: None for p in plans}
    for position, (p, fp, merged) in enumerate(todo):
        if merged != fp:
            parts[p.name] = {"index": k, "count": n, "chunks": list(ranges[p.name]), "set": digest,
                             "position": position}
    return parts


def _attrs(group: Path) -> dict:
    try:
        return read_group_attrs(group)
    except (OSError, ValueError):
        return {}


def open_part(store: StoreWriter, plan: CorpusPlan, fingerprint: str, shard: dict | None,
              info: dict) -> "ShardWriter | None":
    """The writer of this shard's part of a corpus in the shard store ``store`` (None: already merged)."""
    if shard is None:
        return None
    status = store.corpus_status(plan.name, fingerprint)  # never 'complete': a shard's corpus is a part
    if status != "new":
        got = read_group_attrs(store.path / "corpora" / plan.name).get("shard", {})
        if {k: got.get(k) for k in shard} != shard:
            raise HsError(f"corpus {plan.name!r} in {store.path} belongs to another sharded dump (other corpora, "
                          f"settings or shard count); remove {store.path} and rerun")
    writer = store.open_corpus(plan, fingerprint, status, info={**info, "shard": {**shard, "done_chunks": 0,
                                                                                       "done": False}})
    return ShardWriter(writer.dir, store.root["corpora"][plan.name], plan)


class ShardWriter:
    """Writes chunks ``[c0, c1)`` of a corpus's ``hidden`` (the batches that overlap them, in plan
    order) and commits after each chunk: ``shard.done_chunks`` counts the chunks from ``c0`` that are
    on disk with their rows of ``hidden_crc32c``. Commits fall on chunk boundaries, so a resumed shard
    starts at the next chunk, at the batch that holds its first token."""

    def __init__(self, gdir: Path, group, plan: CorpusPlan):
        self.dir, self.plan = gdir, plan
        self.attrs = read_group_attrs(gdir)
        self.shard = dict(self.attrs["shard"])
        self.hidden = group["hidden"]
        self.files = ChunkFiles(self.hidden, gdir)
        self.crc_array = group["hidden_crc32c"]
        self.crc_files = ChunkFiles(self.crc_array, gdir)
        self.n_layers, self.chunk = self.hidden.shape[0], int(self.hidden.chunks[1])
        self.manifest = np.zeros(self.crc_array.shape, dtype=np.uint32)
        self.c0, self.c1 = self.shard["chunks"]
        done = self._valid_done()
        self.hi = min(self.c1 * self.chunk, plan.n_tokens)
        self.buf_start = self.cursor = min((self.c0 + done) * self.chunk, self.hi)
        self.token_ends = plan.offsets[plan.batch_ends]
        self.next_batch = int(np.searchsorted(self.token_ends, self.buf_start, side="right"))
        self.end_batch = (int(np.searchsorted(self.token_ends, self.hi - 1, side="right")) + 1
                          if self.hi > self.buf_start else self.next_batch)
        self.buf: list[np.ndarray] = []
        self.done = self.shard.get("done", False) and done == self.c1 - self.c0

    def _valid_done(self) -> int:
        """The committed chunk count, moved back before the first committed chunk file that is missing
        or short, or to 0 if the manifest rows are unreadable."""
        done = int(self.shard.get("done_chunks", 0))
        if not done:
            return 0
        size = self.chunk * self.hidden.shape[2] * self.hidden.dtype.itemsize + 4
        try:
            rows = manifest_rows(self.dir, self.crc_array, self.c0, self.c0 + done)
        except (HsError, ValueError, OSError):
            return 0
        good = whole_columns(self.dir / "hidden", self.c0, done, self.n_layers, size, rows)
        self.manifest[self.c0:self.c0 + good] = rows[:good]
        return good

    @property
    def start_batch(self) -> int:
        return self.next_batch

    @property
    def first_token(self) -> int:
        return self.buf_start

    def add(self, batch: int, states: np.ndarray, extras: dict | None = None) -> None:
        if batch != self.next_batch:
            raise RuntimeError(f"batch {batch} arrived, expected {self.next_batch}")
        start = int(self.token_ends[batch - 1]) if batch else 0
        end = int(self.token_ends[batch])
        if states.shape[1] != end - start:
            raise RuntimeError(f"batch {batch} has {states.shape[1]} tokens, the plan says {end - start}")
        a, b = max(start, self.cursor), min(end, self.hi)
        if b > a:
            self.buf.append(states[:, a - start:b - start])
            self.cursor = b
        self.next_batch += 1
        self._flush()

    def finish(self) -> None:
        self._flush()

    def _flush(self) -> None:
        pending = self.cursor - self.buf_start
        # whole chunks, and the corpus's last (short) chunk once its tokens are all here
        n = pending if self.cursor == self.plan.n_tokens else pending - pending % self.chunk
        if n <= 0 and not (self.buf_start >= self.hi and not self.done):
            return
        if n > 0:
            data = np.concatenate(self.buf, axis=1) if len(self.buf) > 1 else self.buf[0]
            write_chunk_run(self, data, n)
            self.buf = [data[:, n:]] if n < pending else []
            self.buf_start += n
        self.done = self.buf_start >= self.hi
        self.shard.update(done_chunks=math.ceil(self.buf_start / self.chunk) - self.c0, done=self.done)
        self.attrs["shard"] = self.shard
        write_group_attrs(self.dir, self.attrs, "shard-done" if self.done else "shard-commit")


def manifest_rows(gdir: Path, crc_array, lo: int, hi: int) -> np.ndarray:
    """Rows ``[lo, hi)`` of a corpus's ``hidden_crc32c``, its block files checked present first (Zarr
    would read a missing one as zeros)."""
    if hi <= lo:
        return np.zeros((0, crc_array.shape[1]), dtype=np.uint32)
    rows = crc_array.chunks[0]
    files = list_files(gdir / "hidden_crc32c")
    keys = [chunk_key((r, 0)) for r in range(lo // rows, (hi - 1) // rows + 1)]
    check_present(files, keys, 4 * rows * crc_array.shape[1] + 4, f"{gdir}, array hidden_crc32c")
    return np.asarray(crc_array[lo:hi])


# ---------------------------------------------------------------------------------------------- merge


class _Shards:
    """The N shard stores of one sharded dump, checked to belong together and to be finished."""

    def __init__(self, out: Path):
        found = found_shards(out)
        if not found:
            raise HsError(f"{out} has no shards to merge: dump them first with hs dump --shard K/N --out {out}")
        counts = sorted({n for _, n in found})
        if len(counts) > 1:
            names = ", ".join(p.name for p in found.values())
            raise HsError(f"{out}/{SHARDS} mixes shards of different counts ({names}); remove the ones of the "
                          f"wrong count and rerun their dumps")
        self.n = n = counts[0]
        missing = [f"{k}/{n}" for k in range(1, n + 1) if (k, n) not in found]
        if missing:
            raise HsError(f"shard {', '.join(missing)} of {out} is missing: run hs dump --shard {missing[0]} with "
                          f"the other shards' command, then hs merge {out}")
        self.dirs = [found[k, n] for k in range(1, n + 1)]
        self.stores = []
        for k, d in enumerate(self.dirs, 1):
            try:
                self.stores.append(Store(d))
            except HsError as exc:
                raise StoreError(f"shard {k}/{n} is unreadable ({exc}); rerun its hs dump --shard {k}/{n}") from None
        first = self.stores[0]
        for k, st in enumerate(self.stores[1:], 2):
            differ = model_differences(first.model, st.model)  # the same model, wherever each shard loaded it from
            if differ:
                raise HsError(f"shard {k}/{n} was dumped with another model (it differs in {', '.join(differ)}) than "
                              f"shard 1/{n}: rerun it with the same command and --shard {k}/{n}")
            for key in ("settings", "identity"):
                if st.attrs.get(key) != first.attrs.get(key):
                    differ = key if key != "settings" else ", ".join(
                        s for s in sorted(set(st.settings) | set(first.settings))
                        if st.settings.get(s) != first.settings.get(s))
                    raise HsError(f"shard {k}/{n} was dumped with another {key if key != 'settings' else 'setting'}"
                                  f" ({differ}) than shard 1/{n}: rerun it with the same command and --shard {k}/{n}")
        self.corpora = self._corpora()

    def _corpora(self) -> list[str]:
        """The corpora in dump order, each checked finished and planned alike in every shard."""
        per_shard = []
        for k, st in enumerate(self.stores, 1):
            entries = {}
            for name in st.all_corpora:
                attrs = read_group_attrs(st.path / "corpora" / name)
                sh = attrs.get("shard")
                if not sh or "fingerprint" not in attrs:
                    raise HsError(f"corpus {name!r} of shard {k}/{self.n} was not set up by a sharded dump; "
                                  f"rerun hs dump --shard {k}/{self.n}")
                entries[name] = (attrs, sh)
            per_shard.append(entries)
        names = sorted(per_shard[0], key=lambda c: per_shard[0][c][1]["position"])
        for k, entries in enumerate(per_shard, 1):
            if sorted(entries) != sorted(names):
                raise HsError(f"shard {k}/{self.n} holds corpora {sorted(entries)}, shard 1/{self.n} holds "
                              f"{sorted(names)}: rerun it with the same --task/--corpus-file list")
            for name in names:
                attrs, sh = entries[name]
                if (sh["index"], sh["count"]) != (k, self.n):
                    raise HsError(f"{self.dirs[k - 1]} holds a corpus of shard {sh['index']}/{sh['count']}; "
                                  f"remove it and rerun hs dump --shard {k}/{self.n}")
                if sh["set"] != per_shard[0][name][1]["set"] or attrs["fingerprint"] != \
                        per_shard[0][name][0]["fingerprint"]:
                    raise HsError(f"shard {k}/{self.n} was dumped from other corpora, texts or settings than "
                                  f"shard 1/{self.n} (corpus {name!r}): rerun it with the same command")
                if not sh.get("done"):
                    raise HsError(f"shard {k}/{self.n} has not finished corpus {name!r} ({sh.get('done_chunks', 0)}"
                                  f"/{sh['chunks'][1] - sh['chunks'][0]} chunks): rerun its hs dump --shard "
                                  f"{k}/{self.n} command (it resumes), then hs merge")
        self.attrs = [{name: entries[name][0] for name in names} for entries in per_shard]
        # the chunk ranges must tile each corpus exactly as assign() cuts them
        counts = [(name, math.ceil(self.attrs[0][name]["n_tokens"] / self._chunk(name))) for name in names]
        for k in range(1, self.n + 1):
            want = assign(counts, k, self.n)
            for name in names:
                if tuple(self.attrs[k - 1][name]["shard"]["chunks"]) != want[name]:
                    raise HsError(f"shard {k}/{self.n} covers chunks {self.attrs[k - 1][name]['shard']['chunks']} "
                                  f"of {name!r}, not {list(want[name])}: remove {self.dirs[k - 1]} and rerun it")
        return names

    def _chunk(self, name: str) -> int:
        return int(self.stores[0].corpus(name, allow_incomplete=True).raw("hidden").chunks[1])


def _plan_of(corpus) -> CorpusPlan:
    """The CorpusPlan a stored corpus was dumped from (its plan arrays, read checksum-verified)."""
    attrs = corpus.attrs
    positions = corpus.small("position_ids") if corpus.has("position_ids") else None
    return CorpusPlan(corpus.name, corpus.texts, corpus.offsets, corpus.all_token_ids, corpus.all_token_kinds,
                      corpus.small("batch_ends"), attrs["truncated"], attrs["source"], position_ids=positions,
                      source_position=corpus.source_positions, task_lines=corpus.task_lines())


def check_local(out) -> None:
    """Shards and their merge need one POSIX file system: the merge moves chunk files by rename."""
    if is_remote(location(out)):
        raise HsError(f"{out}: sharded dumps and hs merge need a local or shared file system (the merge renames "
                      "files); dump to one there and copy the merged store, or dump to object storage in one process")


def merge(out: Path, log: Callable[[str], None] = print) -> list[str]:
    """Merge the shards under ``out/shards`` into the store ``out``; returns the corpora merged."""
    check_local(out)
    out = Path(out)
    if not (out / SHARDS).is_dir() and (out / RETIRED).is_dir():  # a merge killed while removing the shards
        shutil.rmtree(out / RETIRED)
        log(f"{out}: removed the shards of a finished merge")
        return []
    shards = _Shards(out)
    first = shards.stores[0]
    with StoreWriter(out, first.model, first.settings, first.vocab) as store:
        if store.attrs["settings"] != first.settings:
            raise HsError(f"{out} already holds corpora dumped with settings {store.attrs['settings']}, the shards "
                          f"have {first.settings}: merge into another store")
        _copy_statics(shards.dirs[0], out)
        vocabulary.copy_record(shards.dirs[0], out)
        for name in shards.corpora:
            _merge_corpus(store, shards, name, log)
    os.replace(out / SHARDS, out / RETIRED)
    fault_point("shards-retired")
    shutil.rmtree(out / RETIRED)
    return shards.corpora


def _copy_statics(src: Path, out: Path) -> None:
    """The model's static arrays, copied from a shard (a dump writes the same bytes); the group's
    zarr.json, which marks them complete, last."""
    GROUP = statics.GROUP
    if not (src / GROUP / "zarr.json").exists():
        return
    try:
        if read_group_attrs(out / GROUP).get(statics.COMPLETE):
            return
    except (OSError, ValueError):
        pass
    marker = src / GROUP / "zarr.json"
    for p in sorted(p for p in (src / GROUP).rglob("*") if p.is_file() and p != marker) + [marker]:
        dst = out / p.relative_to(src)
        dst.parent.mkdir(parents=True, exist_ok=True)
        write_bytes(dst, p.read_bytes(), sync=p.name == "zarr.json")
    fault_point("statics-copied")


def _merge_corpus(store: StoreWriter, shards: _Shards, name: str, log: Callable[[str], None]) -> None:
    src_attrs = shards.attrs[0][name]
    fingerprint = src_attrs["fingerprint"]
    status = store.corpus_status(name, fingerprint)
    if status == "complete":
        log(f"{name}: already merged")
        return
    plan = _plan_of(shards.stores[0].corpus(name, allow_incomplete=True))
    if plan.fingerprint(store.identity) != fingerprint:
        raise StoreError(f"corpus {name!r} of shard 1/{shards.n} does not match its fingerprint (damaged plan "
                         f"arrays?); run hs verify {store.path}")
    info = {k: src_attrs[k] for k in ("device",) if k in src_attrs}
    gdir = store.path / "corpora" / name
    if status == "resume":
        remove_temp_files(gdir)
    store.open_corpus(plan, fingerprint, status, info=info)
    group = store.root["corpora"][name]
    hidden = group["hidden"]
    n_layers, chunk = hidden.shape[0], int(hidden.chunks[1])
    size = chunk * hidden.shape[2] * hidden.dtype.itemsize + 4
    table = np.zeros(group["hidden_crc32c"].shape, dtype=np.uint32)
    moved = 0
    for k, (sdir, attrs) in enumerate(zip(shards.dirs, shards.attrs), 1):
        c0, c1 = attrs[name]["shard"]["chunks"]
        sgdir = sdir / "corpora" / name
        table[c0:c1] = manifest_rows(sgdir, shards.stores[k - 1].corpus(name, allow_incomplete=True)
                                      .raw("hidden_crc32c"), c0, c1)
        for col in range(c0, c1):
            for layer in range(n_layers):
                key = chunk_key((layer, col, 0))
                src, dst = sgdir / "hidden" / key, gdir / "hidden" / key
                want = int(table[col, layer])
                if src.exists():
                    if not chunk_intact(src, size, want):  # its data read: the store gets no chunk unchecked
                        raise StoreError(f"shard {k}/{shards.n}, corpus {name!r}: chunk {key} is damaged; remove "
                                         f"it and rerun hs dump --shard {k}/{shards.n} (it recomputes it), then merge")
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(src, dst)
                    moved += 1
                elif not chunk_intact(dst, size, want):
                    raise StoreError(f"shard {k}/{shards.n}, corpus {name!r}: chunk {key} is missing; rerun "
                                     f"hs dump --shard {k}/{shards.n} (it recomputes it), then hs merge")
        fault_point("shard-moved")
        fault_delay()
    crc_files = ChunkFiles(group["hidden_crc32c"], gdir)
    for row in range(math.ceil(len(table) / MANIFEST_ROWS)):
        crc_files.write(table[row * MANIFEST_ROWS:(row + 1) * MANIFEST_ROWS], (row, 0))
    fault_point("manifest-written")
    check_present(list_files(gdir / "hidden"), expected_keys(hidden.shape, hidden.chunks), size,
                  f"corpus {name!r}, array hidden")
    attrs = read_group_attrs(gdir)
    sentences = plan.n_sentences
    attrs.update({"committed_batches": len(plan.batch_ends), "committed_sentences": sentences,
                  "committed_tokens": plan.n_tokens, "hidden_chunks": len(table), "complete": True})
    write_group_attrs(gdir, attrs, "merged")
    log(f"{name}: merged {shards.n} shards ({moved} chunk files moved)")
