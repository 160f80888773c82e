"""The fault drill's integrity cases (scripts/faults.py calls ``integrity``; ``--only integrity`` runs
them alone): damage that a chunk's own checksum does not see, metadata that stays valid JSON but no
longer describes the data, checks that must look at everything, results files on a full disk, corpus
files with odd line breaks, bad input, the way back from damage, and a model moved to another folder.

They run on a second store of the drill's tiny BERT that holds every kind of array: STS17 plain and
under the PromptBERT template (with its template-only rows, ``~empty``), the attention diagonals and
the input embeddings; four recipes read all of it. Each case's outcome is `identical` (the same
figures, or for a repair the same files, as the undisturbed store), `clean error` (one `hs: error:`
line, exit status 1 or 2, data left as they were) or WRONG (a figure from damaged data with exit
status 0, a traceback, a damage `hs verify --deep` misses, a repair that does not end identical).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from drill import (CLEAN, IDENTICAL, WRONG, as_older_format, clean_error, run_hs, run_in_process, snapshot,
                   start_hs)

RECIPES = ["layers=last;pool=mean;drop=punct+special",     # hidden, offsets, token ids and kinds, vocabulary, texts
           "view=prompt:template=promptbert;pool=mask:denoise=yes",  # the templated corpus and its ~empty rows
           "weights=ditto:layer=1:head=0",                   # the attention diagonals
           "view=input"]                                     # the input embeddings (statics)
CORPUS, PROMPT, EMPTY = "sts17", "sts17~promptbert", "sts17~promptbert~empty"


# ---- damage that keeps every checksum valid --------------------------------------------------------

def _crc32c(data: bytes) -> int:
    from hsstore.format.chunks import crc32c

    return crc32c(data)


def _keeping_mtime(path: Path, write) -> None:
    """``write()`` the file again, then give it back its modification time (as cp -p and rsync -a do)."""
    st = path.stat()
    write()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def rewrite(path: Path, at: float = 0.5) -> None:
    """Change a byte of a chunk's data (``at``: where, as a share of its length) and write the CRC-32C
    of the new data: a valid chunk, not the one written."""
    raw = bytearray(path.read_bytes()[:-4])
    raw[int(len(raw) * at)] ^= 0x10
    _keeping_mtime(path, lambda: path.write_bytes(bytes(raw) + _crc32c(bytes(raw)).to_bytes(4, "little")))


def replace_with(path: Path, other: Path) -> None:
    """Put another valid chunk of the same size in this chunk's place."""
    _keeping_mtime(path, lambda: path.write_bytes(other.read_bytes()))


def flip(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 3] ^= 0x40
    path.write_bytes(bytes(raw))


def chunk(store: Path, array: str, key: str = "") -> Path:
    """A chunk file: ``array`` is a path under the store (``corpora/sts17/hidden``, ``vocab/bytes``);
    ``key`` its chunk key, by default the first."""
    base = store / array
    return base / key if key else sorted(p for p in (base / "c").rglob("*") if p.is_file())[0]


def last_layer(store: Path, corpus: str) -> str:
    return str(max(int(p.name) for p in (store / "corpora" / corpus / "hidden" / "c").iterdir()))


# ---- metadata that stays valid JSON --------------------------------------------------------------

def edit_json(path: Path, edit) -> None:
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta, indent=2))


def attrs_edit(group: str, edit):
    return lambda store: edit_json(store / group / "zarr.json", lambda m: edit(m["attributes"]))


def array_edit(array: str, edit):
    return lambda store: edit_json(store / array / "zarr.json", edit)


def _swap_first_two(values: list) -> None:
    values[0], values[1] = values[1], values[0]


METADATA = {
    "root: stored layer list reordered": attrs_edit("", lambda a: a["settings"]["layers"].reverse()),
    "root: settings dtype float16 -> float32": attrs_edit("", lambda a: a["settings"].update(dtype="float32")),
    "root: identity edited": attrs_edit("", lambda a: a.update(identity="0" * 32)),
    "hidden: data type float16 -> int16": array_edit(f"corpora/{CORPUS}/hidden", lambda m: m.update(data_type="int16")),
    "hidden: shape shortened": array_edit(f"corpora/{CORPUS}/hidden", lambda m: m["shape"].__setitem__(1, m["shape"][1] - 100)),
    "hidden: chunk shape halved": array_edit(
        f"corpora/{CORPUS}/hidden", lambda m: m["chunk_grid"]["configuration"]["chunk_shape"].__setitem__(1, 512)),
    "hidden: crc32c codec removed": array_edit(f"corpora/{CORPUS}/hidden", lambda m: m["codecs"].pop()),
    "offsets: shape shortened": array_edit(f"corpora/{CORPUS}/offsets", lambda m: m["shape"].__setitem__(0, m["shape"][0] - 1)),
    "text/offsets: shape shortened": array_edit(f"corpora/{CORPUS}/text/offsets",
                                                lambda m: m["shape"].__setitem__(0, m["shape"][0] - 1)),
    "corpus: n_tokens one less": attrs_edit(f"corpora/{CORPUS}", lambda a: a.update(n_tokens=a["n_tokens"] - 1)),
    "corpus: layers reordered": attrs_edit(f"corpora/{CORPUS}", lambda a: a["layers"].reverse()),
    "corpus: fingerprint edited": attrs_edit(f"corpora/{CORPUS}", lambda a: a.update(fingerprint="0" * 32)),
    "corpus: manifest of token_ids edited": attrs_edit(f"corpora/{CORPUS}",
                                                       lambda a: a["manifest"]["token_ids"].__setitem__(0, 1)),
    "corpus: attention heads one less": attrs_edit(f"corpora/{CORPUS}",
                                                   lambda a: a.update(attention_heads=a["attention_heads"] - 1)),
    "~empty: sentence lengths permuted": attrs_edit(f"corpora/{EMPTY}",
                                                    lambda a: _swap_first_two(a["source"]["sentence_lengths"])),
    "~empty: sentence lengths shifted by one": attrs_edit(
        f"corpora/{EMPTY}", lambda a: a["source"].update(sentence_lengths=[k + 1 for k in a["source"]["sentence_lengths"]])),
    "statics: identity edited": attrs_edit("statics", lambda a: a.update(identity="0" * 32)),
}
# edits a format 2 store cannot show (it has no digests, and its statics no identity): not run on it
ONLY_FORMAT_3 = ("statics: identity edited",)


class Integrity:
    """The integrity cases of the drill ``drill`` (scripts/drill.py), recorded in its table."""

    def __init__(self, drill):
        self.drill, self.work, self.record = drill, drill.work / "integrity", drill.record
        self.work.mkdir()
        self.rich = self.work / "rich"
        self.rich_args = ["dump", "--model", str(drill.model), "--task", CORPUS, "--template", "none", "--template",
                          "promptbert", "--attention-diagonals", "--batch-tokens", "512", "--chunk-tokens", "1024", "-q"]
        proc = run_in_process(*self.rich_args, "--out", str(self.rich))
        assert proc.returncode == 0, proc.stderr
        from conftest import build_tiny_model

        self.other_model = build_tiny_model(self.work / "other-model", seed=1)
        self.rich_files = snapshot(self.rich)
        self.eval_args = ["--task", CORPUS, *[x for r in RECIPES for x in ("-r", r)], "-q"]
        ref = self.eval(self.rich, "ref")
        assert ref.returncode == 0, ref.stderr
        self.figures = ref.stdout
        self.n = 0

    # -- helpers

    def copy(self, source: Path | None = None) -> Path:
        self.n += 1
        out = self.work / f"case-{self.n}"
        shutil.copytree(source or self.rich, out)
        return out

    def eval(self, store: Path, cache: str, *extra: str):
        return run_in_process("eval", str(store), *self.eval_args, *extra,
                              env={"HS_CACHE": str(self.work / "cache" / cache)})

    def short(self, text: str) -> str:
        """An error line for the table: the drill's temporary paths named STORE, FILE or WORK."""
        text = text.strip().splitlines()[-1] if text.strip() else ""
        text = re.sub(re.escape(str(self.work)) + r"/(case-\d+|rich|running|breaks-\w+)", "STORE", text)
        text = re.sub(re.escape(str(self.work)) + r"/[\w.-]+\.(json|txt)", "FILE", text)
        return text.replace(str(self.drill.work), "WORK").removeprefix("hs: error: ")[:110]

    def judge(self, case: str, proc, verify_store: Path | None = None, figures: str | None = None) -> None:
        """An eval's outcome; with ``verify_store``, `hs verify --deep` must also report the damage."""
        if proc.returncode == 0:
            same = proc.stdout == (figures if figures is not None else self.figures)
            outcome, detail = (IDENTICAL, "figures as before") if same else (WRONG, "other figures with exit status 0")
        else:
            ok = clean_error(proc) and proc.returncode in (1, 2)
            outcome, detail = (CLEAN, self.short(proc.stderr)) if ok else (WRONG, proc.stderr[-200:])
        if verify_store is not None:
            check = run_in_process("verify", str(verify_store), "--deep")
            if check.returncode != 1 or "Traceback" in check.stderr + check.stdout:
                outcome, detail = WRONG, f"hs verify --deep missed it (exit {check.returncode})"
        self.record(case, outcome, detail)

    # -- 1. a chunk that is valid but not the one written there

    def foreign_chunks(self) -> None:
        L = last_layer(self.rich, CORPUS)
        hidden = f"corpora/{CORPUS}/hidden"
        cases = {
            "hidden: chunk replaced by the next one": lambda s: replace_with(
                chunk(s, hidden, f"c/{L}/0/0"), chunk(s, hidden, f"c/{L}/1/0")),
            "hidden: chunk replaced by another corpus's": lambda s: replace_with(
                chunk(s, hidden, f"c/{L}/0/0"), chunk(s, f"corpora/{PROMPT}/hidden", f"c/{L}/0/0")),
            "hidden: chunk rewritten with a new checksum": lambda s: rewrite(chunk(s, hidden, f"c/{L}/1/0")),
            "token_ids: rewritten with a new checksum": lambda s: rewrite(chunk(s, f"corpora/{CORPUS}/token_ids")),
            "token_kind: rewritten with a new checksum": lambda s: rewrite(chunk(s, f"corpora/{CORPUS}/token_kind")),
            "offsets: rewritten with a new checksum": lambda s: rewrite(chunk(s, f"corpora/{CORPUS}/offsets")),
            "text/bytes: rewritten with a new checksum": lambda s: rewrite(chunk(s, f"corpora/{CORPUS}/text/bytes")),
            "vocab/bytes: rewritten with a new checksum": lambda s: rewrite(chunk(s, "vocab/bytes")),
            "vocab/offsets: rewritten with a new checksum": lambda s: rewrite(chunk(s, "vocab/offsets")),
            "~empty hidden: rewritten with a new checksum": lambda s: rewrite(
                chunk(s, f"corpora/{EMPTY}/hidden", f"c/{L}/0/0")),
            "~empty position_ids: rewritten with a new checksum": lambda s: rewrite(
                chunk(s, f"corpora/{EMPTY}/position_ids")),
            "attention_diagonal: chunk replaced by the next one": lambda s: replace_with(
                chunk(s, f"corpora/{CORPUS}/attention_diagonal", "c/0/0/0"),
                chunk(s, f"corpora/{CORPUS}/attention_diagonal", "c/0/1/0")),
            "attention_diagonal: rewritten with a new checksum": lambda s: rewrite(
                chunk(s, f"corpora/{CORPUS}/attention_diagonal", "c/0/0/0")),
            "statics: rewritten with a new checksum": lambda s: rewrite(chunk(s, "statics/input_embeddings")),
            "statics: chunk missing": lambda s: chunk(s, "statics/input_embeddings").unlink(),
            "statics: one flipped bit": lambda s: flip(chunk(s, "statics/input_embeddings")),
            "hidden_crc32c: its padding rewritten with a new checksum": lambda s: rewrite(
                chunk(s, f"corpora/{CORPUS}/hidden_crc32c")),
            "hidden_crc32c: an entry rewritten with a new checksum": lambda s: rewrite(
                chunk(s, f"corpora/{CORPUS}/hidden_crc32c"), at=0.0),
        }
        for name, damage in cases.items():
            for warm in (False, True):
                store = self.copy()
                cache = f"{self.n}"
                if warm:
                    first = self.eval(store, cache)
                    assert first.returncode == 0 and first.stdout == self.figures, first.stderr
                damage(store)
                self.judge(f"{name}, {'warm' if warm else 'cold'} cache (mtime kept)", self.eval(store, cache),
                           None if warm else store)
                shutil.rmtree(store)

    # -- 2. metadata that stays valid JSON but no longer describes the data

    def metadata(self) -> None:
        older = as_older_format(self.copy(), 2)
        for label, base in (("format 3", self.rich), ("format 2", older)):
            figures = self.eval(base, f"meta-{label}")
            if figures.returncode != 0 or figures.stdout != self.figures:
                self.record(f"{label}: the undamaged store", WRONG, figures.stderr[-120:])
                continue
            for name, edit in METADATA.items():
                if label == "format 2" and name in ONLY_FORMAT_3:
                    continue
                store = self.copy(base)
                edit(store)
                proc = self.eval(store, f"meta-{label}")  # a warm cache: the edit must be seen all the same
                info = run_in_process("info", str(store))
                if "Traceback" in info.stderr + info.stdout:
                    self.record(f"{label}, {name}", WRONG, "hs info: traceback")
                else:
                    self.judge(f"{label}, {name}", proc, store)
                shutil.rmtree(store)
        shutil.rmtree(older)

    # -- 3. checks that look at less than they could

    def merge_checks_data(self) -> None:
        drill = self.drill
        ready = self.work / "shards"
        for k in (1, 2):
            proc = run_in_process(*drill.dump_args, "--shard", f"{k}/2", "--out", str(ready))
            assert proc.returncode == 0, proc.stderr
        for name, damage in (("one flipped bit", flip), ("rewritten with a new checksum", rewrite)):
            store = self.copy(ready)
            victim = sorted(p for p in (store / "shards" / "2-of-2" / "corpora").rglob("hidden/c/*/*/0")
                            if p.is_file() and p.stat().st_size > 4)[-1]
            damage(victim)
            proc = run_in_process("merge", str(store))
            case = f"merge: a shard's chunk {name}"
            if proc.returncode == 0 or not clean_error(proc):
                self.record(case, WRONG, "merged without complaint" if proc.returncode == 0 else proc.stderr[-120:])
                continue
            victim.unlink()  # the way back the error names: remove it, rerun that shard, merge
            rerun = run_in_process(*drill.dump_args, "--shard", "2/2", "--out", str(store))
            again = run_in_process("merge", str(store))
            same = rerun.returncode == 0 and again.returncode == 0 and snapshot(store) == drill.clean_files
            self.record(case, CLEAN if same else WRONG, self.short(proc.stderr) if same else
                        "the shard rerun and merge did not end identical")
            shutil.rmtree(store)

    def repair_beside_a_dump(self) -> None:
        case = "verify --repair while a dump runs"
        store = self.work / "running"
        proc = start_hs(*self.drill.dump_args, "--out", str(store), env={"HS_FAULT_BATCH_DELAY": "0.05"})
        started = store / "corpora" / "wiki" / "zarr.json"
        while not started.exists() and proc.poll() is None:
            time.sleep(0.02)
        time.sleep(0.3)
        check = run_in_process("verify", str(store), "--repair")
        _, err = proc.communicate(timeout=600)
        same = proc.returncode == 0 and snapshot(store) == self.drill.clean_files
        ok = clean_error(check) and "being written" in check.stderr and same
        self.record(case, CLEAN if ok else WRONG, self.short(check.stderr) if ok
                    else f"verify exit {check.returncode}, dump exit {proc.returncode}: {err[-80:]}")
        shutil.rmtree(store)

    def no_noise_after_errors(self) -> None:
        """Real processes (asyncio's complaints appear as the interpreter exits): an error ends on one line."""
        store = self.copy()
        flip(chunk(store, f"corpora/{CORPUS}/hidden", f"c/{last_layer(store, CORPUS)}/0/0"))
        flip(chunk(store, f"corpora/{CORPUS}/token_ids"))
        for i in range(3):
            proc = run_hs("eval", str(store), *self.eval_args, env={"HS_CACHE": str(self.work / "cache" / "noise")})
            quiet = clean_error(proc) and "Task was destroyed" not in proc.stderr
            self.record(f"checksum error in a new process #{i + 1}: one line", CLEAN if quiet else WRONG,
                        self.short(proc.stderr) if quiet else proc.stderr[-200:])
        ready = self.work / "shards"
        for i in range(2):
            target = self.copy(ready)
            merge = start_hs("merge", str(target), env={"HS_FAULT_BATCH_DELAY": "0.5"})
            while not (target / "zarr.json").exists() and merge.poll() is None:
                time.sleep(0.02)
            time.sleep(0.3 + 0.6 * i)
            merge.send_signal(signal.SIGINT)
            _, err = merge.communicate(timeout=120)
            lines = [ln for ln in err.splitlines() if ln.strip()]
            quiet = merge.returncode == 130 and lines[-1:] == ["hs: interrupted; rerun the same command to resume"] \
                and "Task was destroyed" not in err and "Traceback" not in err
            again = run_in_process("merge", str(target))
            same = again.returncode == 0 and snapshot(target) == self.drill.clean_files
            self.record(f"SIGINT during hs merge #{i + 1}, then rerun", IDENTICAL if quiet and same else WRONG,
                        "" if quiet and same else f"exit {merge.returncode}: {err[-150:]}")
            shutil.rmtree(target)
        shutil.rmtree(store)

    # -- 3 and 4. a full disk: the kernel cache and results files

    def full_disk(self) -> None:
        mnt = self.work / "tmpfs"
        mnt.mkdir()
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True).returncode:
            return self.record("full disk: results and caches", "skipped", "cannot mount a tmpfs here (needs root)")
        try:
            self._full_disk(mnt)
        finally:
            subprocess.run(["umount", str(mnt)])

    def _fill(self, mnt: Path) -> None:
        """Fill the disk to the last byte."""
        with open(mnt / "filler", "ab", buffering=0) as fh:
            for size in (1 << 16, 4096, 512, 64, 1):
                try:
                    while True:
                        fh.write(b"\0" * size)
                except OSError:
                    pass

    def _full_disk(self, mnt: Path) -> None:
        drill = self.drill
        base = ["eval", str(drill.clean), "--task", "sts17", "-r", "layers=last;pool=mean", "-q"]
        ref = run_in_process(*base)
        # numba compiles the kernels anew and cannot save them; the figures stand, with warnings
        env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
        env["HS_CACHE"] = str(mnt / "cache")
        (mnt / "cache" / "numba").mkdir(parents=True)
        self._fill(mnt)
        proc = subprocess.run([sys.executable, "-m", "cli.main", *base], env={**env, "HF_HUB_OFFLINE": "1"},
                              capture_output=True, text=True, timeout=600, cwd=Path(__file__).resolve().parents[1])
        ok = proc.returncode == 0 and proc.stdout == ref.stdout and "Traceback" not in proc.stderr
        self.record("full disk: HS_CACHE there, kernels not compiled", IDENTICAL if ok else WRONG,
                    "figures as before, with warnings" if ok else proc.stderr[-150:])
        (mnt / "filler").unlink()
        # results files: each written once with room, then again on the full disk
        report_src = self.work / "results.json"
        assert run_in_process(*base, "--json", str(report_src)).returncode == 0
        outputs = {"--json": mnt / "out.json", "--csv": mnt / "out.csv", "--mteb-dir": mnt / "mteb",
                   "--plot": mnt / "out.png"}
        for flag, path in outputs.items():
            first = run_in_process(*base, flag, str(path))
            assert first.returncode == 0, first.stderr
        assert run_in_process("report", str(report_src), "--out", str(mnt / "report")).returncode == 0
        before = snapshot(mnt)
        self._fill(mnt)
        for flag, path in outputs.items():
            proc = run_in_process(*base, flag, str(path))
            self._judge_kept(f"full disk: hs eval {flag} over an earlier file", proc, mnt, before)
        proc = run_in_process("report", str(report_src), "--out", str(mnt / "report"))
        self._judge_kept("full disk: hs report over an earlier report", proc, mnt, before)
        (mnt / "filler").unlink()

    def _judge_kept(self, case: str, proc, mnt: Path, before: dict) -> None:
        now = {k: v for k, v in snapshot(mnt).items() if k != "filler"}
        kept = now == {k: v for k, v in before.items() if k != "filler"}
        ok = proc.returncode == 1 and clean_error(proc) and kept
        self.record(case, CLEAN if ok else WRONG, self.short(proc.stderr) if ok else
                    f"exit {proc.returncode}; earlier files {'kept' if kept else 'changed or litter left'}")

    # -- 5. a corpus file read with another idea of a line than the user's

    def line_breaks(self) -> None:
        import hsstore

        texts = ["one\x0cform feed inside", "two\u2028line separator inside", "three\x85next line inside",
                 "four\x0bvertical tab\x1cfile separator\x1dgroup\x1erecord inside"]
        for name, newline in (("LF", "\n"), ("CRLF", "\r\n")):
            path = self.work / f"breaks-{name}.txt"
            path.write_bytes(newline.join(texts).encode() + newline.encode())
            store = self.work / f"breaks-{name}"
            proc = run_in_process("dump", "--model", str(self.drill.model), "--corpus-file", str(path), "--out",
                                  str(store), "-q")
            got = hsstore.open(store).corpus(path.stem).texts if proc.returncode == 0 else None
            wc = path.read_bytes().count(b"\n")
            ok = got is not None and sorted(got) == sorted(texts) and len(got) == wc
            self.record(f"corpus file, {name}, odd breaks inside lines: {wc} lines, {len(got or [])} texts",
                        IDENTICAL if ok else WRONG, "" if ok else f"{proc.stderr[-100:]} {got}")
            shutil.rmtree(store, ignore_errors=True)

    # -- 6. bad input: one line, exit status 2 (or 1), nothing changed

    def bad_input(self) -> None:
        drill, store = self.drill, self.rich
        good = self.work / "good.json"
        assert run_in_process("eval", str(drill.clean), "--task", "sts17", "-q", "--json", str(good)).returncode == 0
        record = json.loads(good.read_text())[0]

        def results(name: str, **change) -> str:
            path = self.work / f"bad-{name}.json"
            path.write_text(json.dumps([{**record, **change}]))
            return str(path)

        corpus = self.work / "empty-lines.txt"
        corpus.write_text(" \n\t\n")
        grid = self.work / "grid.json"
        grid.write_text('{"pool": "mean"}')
        dump = ["dump", "--model", str(drill.model), "--task", "sts17", "--out", str(self.work / "never"), "-q"]
        cases = {
            "dump --layers 3-1": [*dump, "--layers", "3-1"],
            "dump --layers 0-9999999": [*dump, "--layers", "0-9999999"],
            "dump --layers ''": [*dump, "--layers", ""],
            "dump --layers ,,": [*dump, "--layers", ",,"],
            "dump --layers -9": [*dump, "--layers", "-9"],
            "dump a file of blank lines": ["dump", "--model", str(drill.model), "--corpus-file", str(corpus), "--out",
                                           str(self.work / "never"), "-q"],
            "dump --batch-tokens 0": [*dump, "--batch-tokens", "0"],
            "dump --max-length 0": [*dump, "--max-length", "0"],
            "eval -r layers=3-1": ["eval", str(store), "-t", CORPUS, "-r", "layers=3-1", "-q"],
            "eval -r layers=0-9999999": ["eval", str(store), "-t", CORPUS, "-r", "layers=0-9999999", "-q"],
            "eval -r layers=0;pool=first (all vectors equal)": ["eval", str(store), "-t", CORPUS, "-r",
                                                                 "layers=0;pool=first", "-q"],
            "eval -r of 100,000 characters": ["eval", str(store), "-t", CORPUS, "-r", "layers=" + "1," * 50000, "-q"],
            "eval -r weights=ditto:layer=99": ["eval", str(store), "-t", CORPUS, "-r", "weights=ditto:layer=99", "-q"],
            "eval -r view=prompt:template=nope": ["eval", str(store), "-t", CORPUS, "-r",
                                                  "view=prompt:template=nope;pool=mask", "-q"],
            "eval --grid with a non-list axis": ["eval", str(store), "-t", CORPUS, "--grid", str(grid), "-q"],
            "eval --json under a missing folder": ["eval", str(store), "-t", CORPUS, "-q", "--json",
                                                  str(self.work / "no" / "such" / "x.json")],
            "eval --json onto a folder": ["eval", str(store), "-t", CORPUS, "-q", "--json", str(self.work)],
            "show a sentence index below -n": ["show", str(store), CORPUS, "--", "-99999"],  # -1 is the last
            "show a huge sentence index": ["show", str(store), CORPUS, "99999999999"],
            "report: versions a list": ["report", results("versions", versions=[1]), "--out", str(self.work / "r")],
            "report: hs_task a list": ["report", results("task", hs_task=["sts17"]), "--out", str(self.work / "r")],
            "report: diagnostics a list": ["report", results("diag", diagnostics=[1.0]), "--out", str(self.work / "r")],
            "report: store a string": ["report", results("store", store="x"), "--out", str(self.work / "r")],
            "report: scores a string": ["report", results("scores", scores="x"), "--out", str(self.work / "r")],
            "report: main_score NaN": ["report", results("nan", scores={"test": [{"main_score": float("nan")}]}),
                                       "--out", str(self.work / "r")],
            "report: recipe a number": ["report", results("recipe", recipe=3), "--out", str(self.work / "r")],
        }
        before = snapshot(store)
        for name, args in cases.items():
            proc = run_in_process(*args)
            line = (proc.stderr.strip().splitlines() or [""])[-1]
            ok = clean_error(proc) and proc.returncode in (1, 2) and len(line) < 400
            self.record(f"bad input: {name}", CLEAN if ok else WRONG, self.short(line) if ok else
                        f"exit {proc.returncode}: {(proc.stderr or proc.stdout)[-160:]}")
        if snapshot(store) != before or (self.work / "never").exists():
            self.record("bad input: data left as they were", WRONG, "a refused command changed a store")

    # -- 7. a way back from damage: the same hs dump (after hs verify --deep --repair where only it sees it)

    def way_back(self) -> None:
        L = last_layer(self.rich, CORPUS)
        hidden = f"corpora/{CORPUS}/hidden"
        cases = {
            "hidden chunk deleted": (lambda s: chunk(s, hidden, f"c/{L}/1/0").unlink(), False),
            "hidden chunk truncated": (lambda s: chunk(s, hidden, "c/1/0/0").write_bytes(b"x"), False),
            "hidden chunk replaced by another valid one": (lambda s: replace_with(
                chunk(s, hidden, f"c/{L}/0/0"), chunk(s, hidden, f"c/{L}/1/0")), False),
            "hidden chunk with one flipped bit": (lambda s: flip(chunk(s, hidden, f"c/{L}/2/0")), True),
            "hidden_crc32c chunk deleted": (lambda s: chunk(s, f"corpora/{CORPUS}/hidden_crc32c").unlink(), False),
            "token_ids chunk deleted": (lambda s: chunk(s, f"corpora/{CORPUS}/token_ids").unlink(), False),
            "offsets with one flipped bit": (lambda s: flip(chunk(s, f"corpora/{CORPUS}/offsets")), False),
            "text/bytes rewritten with a new checksum": (lambda s: rewrite(chunk(s, f"corpora/{CORPUS}/text/bytes")),
                                                         False),
            "~empty hidden chunk deleted": (lambda s: chunk(s, f"corpora/{EMPTY}/hidden", f"c/{L}/0/0").unlink(), False),
            "attention_diagonal chunk deleted": (lambda s: chunk(
                s, f"corpora/{CORPUS}/attention_diagonal", "c/1/1/0").unlink(), False),
            "vocab chunk deleted": (lambda s: chunk(s, "vocab/bytes").unlink(), False),
            "vocab with one flipped bit": (lambda s: flip(chunk(s, "vocab/offsets")), False),
            "statics chunk deleted": (lambda s: chunk(s, "statics/input_embeddings").unlink(), False),
            "statics with one flipped bit": (lambda s: flip(chunk(s, "statics/input_embeddings")), True),
        }
        for name, (damage, deep) in cases.items():
            store = self.copy()
            damage(store)
            case = f"way back: {name}: " + ("verify --deep --repair, " if deep else "") + "the same hs dump"
            steps = [["verify", str(store), "--deep", "--repair"]] if deep else []
            failed = None
            for args in [*steps, [*self.rich_args, "--out", str(store)]]:
                proc = run_in_process(*args)
                if "Traceback" in proc.stderr or (args[0] == "dump" and proc.returncode != 0):
                    failed = f"{args[0]}: {proc.stderr[-120:]}"
                    break
            check = run_in_process("verify", str(store), "--deep")
            same = snapshot(store) == self.rich_files
            self.record(case, IDENTICAL if same and not failed and check.returncode == 0 else WRONG,
                        failed or ("" if same else "files differ from the undamaged store"))
            shutil.rmtree(store)

    # -- 8. a model moved to another folder is the same model

    def moved_model(self) -> None:
        drill = self.drill
        moved = self.work / "moved-model"
        shutil.copytree(drill.model, moved)
        changed = self.work / "changed-model"
        shutil.copytree(drill.model, changed)
        edit_json(changed / "config.json", lambda c: c.update(layer_norm_eps=1e-3))  # same weights, other numbers
        extra = ["--task", "biosses", "-q"]
        for label, base in (("format 3", drill.clean), ("format 2, the old configuration hash", None)):
            if base is None:
                base = as_older_format(self.copy(drill.clean), 2, drill.model)
            here = self.copy(base)
            there = self.copy(base)
            a = run_in_process("dump", "--model", str(drill.model), "--out", str(here), *extra)
            b = run_in_process("dump", "--model", str(moved), "--out", str(there), *extra)
            same = a.returncode == b.returncode == 0 and snapshot(here) == snapshot(there)
            self.record(f"moved model extends a store ({label})", IDENTICAL if same else WRONG,
                        "" if same else (a.stderr + b.stderr)[-150:])
            for other, what in ((changed, "the same weights, another configuration"),
                                (self.other_model, "other weights")):
                store = self.copy(base)
                before = snapshot(store)
                proc = run_in_process("dump", "--model", str(other), "--out", str(store), *extra)
                ok = proc.returncode == 2 and clean_error(proc) and snapshot(store) == before
                self.record(f"{what} refused ({label})", CLEAN if ok else WRONG,
                            self.short(proc.stderr) if ok else proc.stderr[-150:])
                shutil.rmtree(store)
            for p in (here, there):
                shutil.rmtree(p)


def integrity(drill) -> None:
    """Every integrity case (rows of the drill's table)."""
    cases = Integrity(drill)
    cases.foreign_chunks()
    cases.metadata()
    cases.merge_checks_data()
    cases.repair_beside_a_dump()
    cases.no_noise_after_errors()
    cases.full_disk()
    cases.line_breaks()
    cases.bad_input()
    cases.way_back()
    cases.moved_model()
