"""The fault drill: kill, starve and damage `hs dump` and its stores on purpose; never a wrong number.

On a tiny random BERT (built here, no download) it runs:
  - random SIGKILLs during a dump, each followed by a rerun of the same command;
  - a SIGKILL right after each distinct metadata write of the dump and commit path
    (``HS_FAULT_KILL_AFTER``, see hsstore/atomic.py), then a rerun;
  - sharded dumps (`hs dump --shard K/2`, `hs merge`, hsstore/shards.py): shard 1/2 SIGKILLed after
    each of its distinct writes; one of two shards running side by side SIGKILLed at a random moment;
    `hs merge` SIGKILLed after each of its distinct writes; each rerun, merged and compared with the
    one-process dump, file by file; and `hs dump --dask local:2` with a worker SIGKILLed mid-shard;
  - a full disk (a small tmpfs; the dump fails, the store is copied to a larger disk and resumed);
  - the corruption matrix: a chunk of each array missing, truncated or with a flipped byte, read
    by `hs eval` with a cold and with a warm cache, and checked by `hs verify --deep`.
  - on object storage (a local S3 server, scripts/faults_object_storage.py): a SIGKILL after
    metadata writes of a dump to s3://, the rerun, and a second writer refused by the lock;
  - the integrity cases (scripts/faults_integrity.py), on a store holding every kind of array: chunks
    that are valid but not the ones written there (cold and warm caches, modification times kept),
    metadata edited into other valid JSON (format 3 and format 2 stores), a merge of a damaged shard,
    `hs verify --repair` beside a running dump, errors in fresh processes and SIGINT during `hs merge`
    (one line, no asyncio noise), a full disk under the kernel cache and under results files, corpus
    files with odd line breaks, bad input, the way back from each damage (the same `hs dump`, after
    `hs verify --deep --repair` where only it sees the damage), and a model moved to another folder.
Each case's outcome is `identical` (same bytes or same figures as an undisturbed run), `clean error`
(a one-line `hs: error:` and a non-zero exit status) or WRONG (anything else: a different number
with exit status 0, a traceback, a resume that does not end identical). It prints a table and the
count of each outcome.

    python scripts/faults.py                # the whole drill (a few minutes on two cores)
    python scripts/faults.py --kills 5 --quick
    python scripts/faults.py --only shards  # the sharded dump, merge and Dask cases
    python scripts/faults.py --only objects # the s3:// cases (moto server)
    python scripts/faults.py --only integrity  # the integrity cases
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from drill import (CLEAN, IDENTICAL, WRONG, Drill, clean_error, make_corpus, run_hs, run_in_process, snapshot,
                   start_hs)
from faults_integrity import integrity
from faults_object_storage import object_storage

KILL_POINTS = ["store-created", "vocab-written", "store-committed", "plan-written", "corpus-created",
               "chunks-written", "manifest-written", "commit", "commit:3", "complete"]
ARRAYS = ["hidden", "hidden_crc32c", "offsets", "token_ids", "token_kind", "batch_ends", "text/bytes",
          "text/offsets", "vocab/bytes", "vocab/offsets", "statics/input_embeddings"]
DAMAGES = ["missing", "truncated", "flipped"]
# a shard's own commits, and each step of hs merge (hsstore/shards.py)
SHARD_KILL_POINTS = ["corpus-created", "chunks-written", "shard-commit", "shard-commit:3", "shard-done"]
MERGE_KILL_POINTS = ["store-created", "store-committed", "statics-copied", "corpus-created", "shard-moved",
                     "manifest-written", "merged", "shard-moved:3", "merged:2", "shards-retired"]
RECIPE = "layers=last;pool=mean;drop=punct+special"


class FaultDrill(Drill):
    """Every case of the drill, each recorded in the table of ``Drill``."""

    def random_kills(self, n: int, rng: random.Random) -> None:
        """``n`` SIGKILLs at random moments, each followed by the next attempt of the same command."""
        store, kills = self.work / "killed", 0
        while kills < n:
            proc = start_hs(*self.dump_args, "--out", str(store), env={"HS_FAULT_BATCH_DELAY": "0.01"})
            started = store / "corpora" / "wiki" / "zarr.json"
            while not started.exists() and proc.poll() is None:  # kill during the dump, not the imports
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 3.0))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
                if kills % 5 == 0 or kills == n:  # check a resumed store every few kills
                    self.finish_and_compare(f"random SIGKILL x{kills}", store)
                    shutil.rmtree(store)
            else:  # it finished before the kill: compare and start over
                proc.communicate()
                self.finish_and_compare(f"random SIGKILL (finished first, after {kills})", store)
                shutil.rmtree(store)

    def kill_points(self, points: list[str] = KILL_POINTS) -> None:
        for point in points:
            store = self.work / f"kp-{point.replace(':', '-')}"
            proc = run_hs(*self.dump_args, "--out", str(store), env={"HS_FAULT_KILL_AFTER": point})
            if proc.returncode != -signal.SIGKILL:
                self.record(f"kill after {point}", WRONG, f"the hook did not fire (exit {proc.returncode})")
                continue
            self.finish_and_compare(f"kill after {point}", store)

    def merge_and_compare(self, case: str, store: Path) -> None:
        """Finish a sharded dump (rerun every shard: a finished one does nothing), merge, and compare
        every file with the undisturbed one-process dump."""
        for k in (1, 2):
            proc = run_in_process(*self.dump_args, "--shard", f"{k}/2", "--out", str(store))
            if proc.returncode != 0:
                return self.record(case, WRONG, f"shard {k}/2 rerun failed: " + proc.stderr.strip()[-100:])
        self.merge_rerun_and_compare(case, store)

    def merge_rerun_and_compare(self, case: str, store: Path) -> None:
        check = run_in_process("verify", str(store))  # problems are fine here (a cut-off set-up), a traceback is not
        if "Traceback" in check.stderr:
            return self.record(case, WRONG, "hs verify before the merge: " + check.stderr[-90:])
        proc = run_in_process("merge", str(store))
        if proc.returncode != 0:
            return self.record(case, WRONG, "merge failed: " + proc.stderr.strip()[-100:])
        same = snapshot(store) == self.clean_files
        self.record(case, IDENTICAL if same else WRONG, "" if same else "files differ from the one-process dump")

    def shard_kill_points(self, points: list[str] = SHARD_KILL_POINTS) -> None:
        """Shard 1/2 SIGKILLed right after each of its distinct writes, then both rerun and merged."""
        for point in points:
            store = self.work / f"shard-kp-{point.replace(':', '-')}"
            proc = run_hs(*self.dump_args, "--shard", "1/2", "--out", str(store), env={"HS_FAULT_KILL_AFTER": point})
            if proc.returncode != -signal.SIGKILL:
                self.record(f"shard 1/2 killed after {point}", WRONG, f"the hook did not fire (exit {proc.returncode})")
                continue
            self.merge_and_compare(f"shard 1/2 killed after {point}", store)

    def shard_random_kills(self, n: int, rng: random.Random) -> None:
        """Both shards of a 2-way dump run side by side; one, drawn at random, is SIGKILLed at a random
        moment; then it is rerun and the shards merged."""
        for i in range(n):
            store, victim = self.work / f"shard-random-{i}", rng.choice([1, 2])
            procs = {k: start_hs(*self.dump_args, "--shard", f"{k}/2", "--out", str(store),
                                 env={"HS_FAULT_BATCH_DELAY": "0.01"}) for k in (1, 2)}
            started = store / "shards" / f"{victim}-of-2" / "corpora" / "sts17" / "zarr.json"
            while not started.exists() and procs[victim].poll() is None:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 3.0))
            killed = procs[victim].poll() is None
            if killed:
                procs[victim].send_signal(signal.SIGKILL)
            for proc in procs.values():
                proc.communicate()
            self.merge_and_compare(f"shard {victim}/2 random SIGKILL #{i + 1}" + ("" if killed else
                                                                                   " (finished first)"), store)

    def dask_worker_kill(self) -> None:
        """`hs dump --dask local:2`: one Dask worker process SIGKILLed while it dumps its shard; the
        scheduler reruns the task, the shard resumes, and the merged store must equal the reference."""
        case = "dask: worker SIGKILLed during its shard"
        try:
            import distributed  # noqa: F401
        except ImportError:
            return self.record(case, "skipped", "the distributed package is not installed")
        store = self.work / "dask"
        proc = start_hs(*self.dump_args, "--dask", "local:2", "--out", str(store), env={"HS_FAULT_BATCH_DELAY": "0.05"})
        started = store / "shards" / "1-of-2" / "corpora" / "wiki" / "zarr.json"
        while not started.exists() and proc.poll() is None:
            time.sleep(0.05)
        time.sleep(0.5)
        workers = subprocess.run(["pgrep", "-P", str(proc.pid), "-f", "spawn_main"], capture_output=True,
                                 text=True).stdout.split()
        if proc.poll() is not None or not workers:
            proc.communicate()
            return self.record(case, WRONG, "no worker to kill (the dump ended or failed first)")
        os.kill(int(workers[0]), signal.SIGKILL)
        _, err = proc.communicate(timeout=900)
        if proc.returncode != 0:
            return self.record(case, WRONG, "the dump failed: " + err.strip()[-100:])
        same = snapshot(store) == self.clean_files
        self.record(case, IDENTICAL if same else WRONG, "" if same else "files differ from the one-process dump")

    def merge_kill_points(self, points: list[str] = MERGE_KILL_POINTS) -> None:
        """`hs merge` SIGKILLed right after each of its distinct writes, then rerun."""
        ready = self.work / "shards-ready"
        for k in (1, 2):
            proc = run_in_process(*self.dump_args, "--shard", f"{k}/2", "--out", str(ready))
            assert proc.returncode == 0, proc.stderr
        for point in points:
            store = self.work / f"merge-kp-{point.replace(':', '-')}"
            shutil.copytree(ready, store)
            proc = run_hs("merge", str(store), env={"HS_FAULT_KILL_AFTER": point})
            if proc.returncode != -signal.SIGKILL:
                self.record(f"merge killed after {point}", WRONG, f"the hook did not fire (exit {proc.returncode})")
                continue
            info = run_in_process("info", str(store))
            complete = info.stdout.count(" complete")
            if "Traceback" in info.stderr or complete == 2 and point not in ("merged:2", "shards-retired"):
                self.record(f"merge killed after {point}", WRONG, "a half-merged corpus reads as complete")
                continue
            self.merge_rerun_and_compare(f"merge killed after {point}", store)
            shutil.rmtree(store)

    def full_disk(self) -> None:
        mnt = self.work / "tmpfs"
        mnt.mkdir()
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                          capture_output=True).returncode != 0:
            self.record("full disk", "skipped", "cannot mount a tmpfs here (needs root)")
            return
        try:
            proc = run_in_process(*self.dump_args, "--out", str(mnt / "s"))
            if not clean_error(proc) or proc.returncode != 1:
                return self.record("full disk: dump", WRONG, proc.stderr.strip()[-120:])
            self.record("full disk: dump", CLEAN, proc.stderr.strip().splitlines()[-1][:70])
            store = self.work / "from-full-disk"
            shutil.copytree(mnt / "s", store)
            self.finish_and_compare("full disk: copied elsewhere and resumed", store)
            proc = run_in_process("export", str(self.clean), str(mnt / "x.h5"), "-q")
            left = sorted(p.name for p in mnt.iterdir())
            ok = clean_error(proc) and proc.returncode == 1 and "x.h5.partial" not in left and "x.h5" not in left
            self.record("full disk: export", CLEAN if ok else WRONG, proc.stderr.strip()[:70])
        finally:
            subprocess.run(["umount", str(mnt)])

    def corruption(self, arrays: list[str] = ARRAYS, damages: list[str] = DAMAGES) -> None:
        cache = self.work / "cache"
        base = ["eval", "--task", "sts17", "-r", RECIPE, "-q"]
        ref = run_in_process(*base[:1], str(self.clean), *base[1:], env={"HS_CACHE": str(cache / "ref")})
        assert ref.returncode == 0, ref.stderr
        for array in arrays:
            for damage in damages:
                for warm in (False, True):
                    case = f"{array} chunk {damage}, {'warm' if warm else 'cold'} cache"
                    store = self.work / "damaged"
                    shutil.rmtree(store, ignore_errors=True)
                    shutil.copytree(self.clean, store)
                    env = {"HS_CACHE": str(cache / case.replace(" ", "_").replace("/", "_").replace(",", ""))}
                    if warm:
                        first = run_in_process("eval", str(store), *base[1:], env=env)
                        assert first.returncode == 0 and first.stdout == ref.stdout, first.stderr
                    damage_chunk(store, array, damage)
                    proc = run_in_process("eval", str(store), *base[1:], env=env)
                    if proc.returncode == 0:
                        outcome = IDENTICAL if proc.stdout == ref.stdout else WRONG
                        detail = "figures as before (the damage does not reach them)" if outcome == IDENTICAL \
                            else "different figures with exit status 0"
                    else:
                        outcome = CLEAN if clean_error(proc) and proc.returncode == 1 else WRONG
                        detail = proc.stderr.strip().splitlines()[-1][:90]
                    if not warm:  # and hs verify finds every damage
                        check = run_in_process("verify", str(store), "--deep")
                        if check.returncode != 1 or "Traceback" in check.stderr:
                            outcome, detail = WRONG, f"hs verify --deep missed it (exit {check.returncode})"
                    self.record(case, outcome, detail)

def chunk_file(store: Path, array: str) -> Path:
    """The first chunk file of ``array`` (an array of corpus ``sts17``, or ``vocab/...``)."""
    base = store / array if array.startswith(("vocab/", "statics/")) else store / "corpora" / "sts17" / array
    if array == "hidden":  # a chunk of the last layer, which the drill's recipe reads
        return sorted((base / "c").iterdir(), key=lambda p: int(p.name))[-1] / "0" / "0"
    return sorted(p for p in (base / "c").rglob("*") if p.is_file())[0]


def damage_chunk(store: Path, array: str, damage: str) -> Path:
    path = chunk_file(store, array)
    data = path.read_bytes()
    if damage == "missing":
        path.unlink()
    elif damage == "truncated":
        path.write_bytes(data[:len(data) // 2])
    else:
        flipped = bytearray(data)
        flipped[min(5, len(data) - 5)] ^= 0x40
        path.write_bytes(bytes(flipped))
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=20, help="random SIGKILLs (default 20)")
    ap.add_argument("--shard-kills", type=int, default=4, help="random SIGKILLs of one shard of a 2-way dump "
                                                                    "(default 4)")
    ap.add_argument("--quick", action="store_true", help="three arrays in the corruption matrix, not all")
    ap.add_argument("--only", choices=["dump", "shards", "objects", "integrity"],
                    help="only the plain dump's cases, the sharded dump's, merge's and Dask's, those on s3://, or "
                         "the integrity cases")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from conftest import build_tiny_model

    work = Path(tempfile.mkdtemp(prefix="hs-faults-"))
    os.environ["HS_CACHE"] = str(work / "cache" / "default")
    try:
        model = build_tiny_model(work / "model")
        drill = FaultDrill(work, model, make_corpus(work / "wiki.txt", 400))
        if args.only in (None, "dump"):
            drill.kill_points()
        if args.only in (None, "shards"):
            drill.shard_kill_points()
            drill.merge_kill_points()
            drill.shard_random_kills(args.shard_kills, random.Random(args.seed))
            drill.dask_worker_kill()
        if args.only in (None, "dump"):
            drill.full_disk()
            drill.corruption(["hidden", "token_ids", "offsets"] if args.quick else ARRAYS)
            drill.random_kills(args.kills, random.Random(args.seed))
        if args.only in (None, "objects"):
            object_storage(drill)  # the s3:// cases
        if args.only in (None, "integrity"):
            integrity(drill)
        return drill.summary()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
