"""What the fault drills share (scripts/faults.py, scripts/faults_object_storage.py): running `hs`
in a subprocess or in this process, telling a clean one-line error from anything else, the drill's
undisturbed reference dump and its table of outcomes."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

IDENTICAL, CLEAN, WRONG = "identical", "clean error", "WRONG"


def run_hs(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    full = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=ROOT, env=full, capture_output=True,
                          text=True, timeout=timeout)


class Result:
    """What a command left: exit status, stdout, stderr (of a subprocess or an in-process run)."""

    def __init__(self, returncode: int, stdout: str, stderr: str):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def run_in_process(*args: str, env: dict | None = None) -> Result:
    """An `hs` command in this process (no start-up cost: the corruption matrix runs many)."""
    from click.testing import CliRunner

    from cli.main import hs

    r = CliRunner().invoke(hs, list(args), env={"HF_HUB_OFFLINE": "1", **(env or {})})
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        import traceback

        return Result(1, r.stdout, r.stderr + "Traceback\n" + "".join(traceback.format_exception(r.exception)))
    return Result(r.exit_code, r.stdout, r.stderr)


def start_hs(*args: str, env: dict | None = None) -> subprocess.Popen:
    full = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "cli.main", *args], cwd=ROOT, env=full,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def snapshot(path: Path) -> dict[str, str]:
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def clean_error(proc) -> bool:
    """A non-zero exit whose stderr ends on its one `hs: error:` line (no traceback; progress
    messages before it, such as a dump's, are fine)."""
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("hs: warning:")]
    errors = [ln for ln in lines if ln.startswith("hs: error:")]
    return (proc.returncode != 0 and len(errors) == 1 and lines[-1] == errors[0]
            and "Traceback" not in proc.stderr)


class Drill:
    """The undisturbed dump every case is compared with, and the table of the cases' outcomes."""

    def __init__(self, work: Path, model: Path, corpus: Path):
        self.work, self.model, self.corpus = work, model, corpus
        self.rows: list[tuple[str, str, str]] = []
        self.dump_args = ["dump", "--model", str(model), "--task", "sts17", "--corpus-file", str(corpus),
                          "--batch-tokens", "512",
                          "--chunk-tokens", "1024", "-q"]
        self.clean = work / "clean"
        proc = run_in_process(*self.dump_args, "--out", str(self.clean))
        assert proc.returncode == 0, proc.stderr
        self.clean_files = snapshot(self.clean)

    def record(self, case: str, outcome: str, detail: str = "") -> None:
        self.rows.append((case, outcome, detail))
        print(f"{case:44s} {outcome:12s} {detail}", flush=True)

    def finish_and_compare(self, case: str, store: Path) -> None:
        """Rerun the dump into ``store`` and compare every file with the undisturbed dump."""
        info = run_in_process("info", str(store))
        if info.returncode != 0 and not clean_error(info) or "Traceback" in info.stderr:
            return self.record(case, WRONG, "hs info: " + info.stderr.strip().splitlines()[-1][:80])
        proc = run_in_process(*self.dump_args, "--out", str(store))
        if proc.returncode != 0:
            return self.record(case, WRONG, "rerun failed: " + proc.stderr.strip()[-100:])
        same = snapshot(store) == self.clean_files
        self.record(case, IDENTICAL if same else WRONG, "" if same else "files differ from the undisturbed dump")

    def summary(self) -> int:
        counts = {}
        for _, outcome, _ in self.rows:
            counts[outcome] = counts.get(outcome, 0) + 1
        print()
        print("| case | outcome | detail |\n| --- | --- | --- |")
        for case, outcome, detail in self.rows:
            print(f"| {case} | {outcome} | {detail.replace('|', '/')} |")
        print()
        print(f"{len(self.rows)} cases: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
              + f"; {counts.get(WRONG, 0)} WRONG")
        return 1 if counts.get(WRONG) else 0


def make_corpus(path: Path, n: int) -> Path:
    from hsstore.tasks import get_task

    path.write_text("\n".join(get_task("wikitext2").texts()[:n]) + "\n")
    return path


def as_older_format(store: Path, version: int, model: Path | None = None) -> Path:
    """Turn a store into what an older hs wrote there: format 2 (no digests, no manifests of the statics
    and the attention diagonals; with ``model``, the configuration hash of that hs, the model's path in
    it, and the identity and fingerprints that follow from it), or format 1 (no manifests at all)."""
    import json

    import hsstore
    from hsstore.format.atomic import read_group_attrs, write_group_attrs
    from hsstore.format.digests import plan_fingerprint, store_identity

    fresh = hsstore.open(store)
    root = read_group_attrs(store)
    if model is not None:
        import transformers

        from hsstore.dump.model import legacy_config_digest

        config = transformers.AutoModel.from_pretrained(str(model)).config
        root["model"]["config_sha256"] = legacy_config_digest(config, root["model"]["path"])
        root["identity"] = store_identity(root["model"], root["settings"])
    for name in fresh.all_corpora:
        group = store / "corpora" / name
        attrs = read_group_attrs(group)
        attrs.pop("digest", None)
        if model is not None and "fingerprint" in attrs:
            c = fresh.corpus(name, allow_incomplete=True)
            attention = ((len(attrs["attention_layers"]), attrs["attention_heads"]) if "attention_layers" in attrs
                         else None)
            attrs["fingerprint"] = plan_fingerprint(root["identity"], c.texts, c.offsets, c.all_token_ids,
                                                    c.all_token_kinds, c.small("batch_ends"),
                                                    c.small("position_ids") if c.has("position_ids") else None,
                                                    attention)
        if version == 1:
            attrs.pop("manifest", None)
            attrs.pop("hidden_chunks", None)
            shutil.rmtree(group / "hidden_crc32c", ignore_errors=True)
        shutil.rmtree(group / "attention_diagonal_crc32c", ignore_errors=True)
        write_group_attrs(group, attrs, "test")
    if (store / "statics" / "zarr.json").exists():
        write_group_attrs(store / "statics", {"input_embeddings_complete": True}, "test")
    root.pop("digest", None)
    if version == 1:
        root.pop("manifest", None)
    root["format_version"] = version
    write_group_attrs(store, json.loads(json.dumps(root)), "test")
    return store
