"""`hs dump` from the command line: resume after SIGKILL, and one-line errors that leave stores intact."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import hsstore
from cli.main import hs
from hsstore.tasks import get_task

ROOT = Path(__file__).resolve().parents[1]


def hs_cmd(*args: str, env: dict | None = None) -> subprocess.Popen:
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "cli.main", *args], cwd=ROOT, env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def committed(store: Path, corpus: str) -> int:
    try:
        return json.loads((store / "corpora" / corpus / "zarr.json").read_text())["attributes"]["committed_batches"]
    except (OSError, ValueError, KeyError):
        return 0


def snapshot(path: Path) -> dict[str, str]:
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def long_corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("long") / "wiki.txt"
    path.write_text("\n".join(get_task("wikitext2").texts()[:1500]) + "\n")
    return path


def test_sigkill_then_rerun_gives_identical_arrays(tmp_path, tiny_model, long_corpus):
    args = ["dump", "--model", str(tiny_model), "--corpus-file", str(long_corpus), "--batch-tokens", "512",
            "--chunk-tokens", "1024", "-q"]
    clean = hs_cmd(*args, "--out", str(tmp_path / "clean"))
    assert clean.wait(timeout=300) == 0, clean.stderr.read()

    killed = tmp_path / "killed"
    total = json.loads((tmp_path / "clean/corpora/wiki/zarr.json").read_text())["attributes"]["n_batches"]
    kills = []
    for target in (total // 4, total // 2):  # two kills at different points, each mid-dump
        proc = hs_cmd(*args, "--out", str(killed), env={"HS_FAULT_BATCH_DELAY": "0.02"})
        deadline = time.time() + 120
        while committed(killed, "wiki") < target and proc.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills.append(committed(killed, "wiki"))
    assert 0 < kills[0] < kills[1] < total, kills
    assert not hsstore.open(killed).corpus("wiki", allow_incomplete=True).complete

    resumed = hs_cmd(*[a for a in args if a != "-q"], "--out", str(killed))  # -q would silence the resume line
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert "resuming at batch" in err

    a, b = hsstore.open(tmp_path / "clean").corpus("wiki"), hsstore.open(killed).corpus("wiki")
    for name in ("hidden", "offsets", "token_ids", "token_kind", "batch_ends"):
        x, y = np.asarray(a.raw(name)[:]), np.asarray(b.raw(name)[:])
        assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), name
    # and on disk, chunk file by chunk file
    clean_files = snapshot(tmp_path / "clean/corpora/wiki/hidden")
    assert clean_files == snapshot(killed / "corpora/wiki/hidden")


def run_cli(*args):
    result = CliRunner().invoke(hs, list(args), env={"HF_HUB_OFFLINE": "1"})
    return result.exit_code, result.output


@pytest.fixture()
def small_store(tmp_path, tiny_model, sentences_file):
    out = tmp_path / "store"
    code, output = run_cli("dump", "--model", str(tiny_model), "--corpus-file", str(sentences_file), "--out",
                           str(out), "-q")
    assert code == 0, output
    return out


def bad_inputs(tmp_path: Path, model: str, store: Path):
    empty = tmp_path / "empty-line.txt"
    empty.write_text("one\n\nthree\n")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    no_model = tmp_path / "no-model"
    no_model.mkdir()
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    out = ["--out", str(store)]
    return {
        "unknown task": (["--model", model, "--task", "nosuchtask", *out], "unknown task 'nosuchtask'"),
        "missing file": (["--model", model, "--corpus-file", str(tmp_path / "missing.txt"), *out], "does not exist"),
        "unloadable model": (["--model", str(no_model), "--task", "sts17", *out], "cannot load model"),
        "hub model offline": (["--model", "bert-base-uncased", "--task", "sts17", *out], "hub is not reachable"),
        "empty line": (["--model", model, "--corpus-file", str(empty), *out], "line 2 is empty"),
        "undecodable bytes": (["--model", model, "--corpus-file", str(latin), *out], "not valid utf-8"),
        "output is a file": (["--model", model, "--task", "sts17", "--out", str(a_file)], "is a file"),
        "bad layers": (["--model", model, "--task", "sts17", "--layers", "0,9", *out], "do not exist"),
        "nothing to dump": (["--model", model, *out], "nothing to dump"),
    }


@pytest.mark.parametrize("case", ["unknown task", "missing file", "unloadable model", "hub model offline",
                                  "empty line", "undecodable bytes", "output is a file", "bad layers",
                                  "nothing to dump"])
def test_bad_input_is_one_line_and_leaves_the_store_intact(case, tmp_path, tiny_model, small_store):
    before = snapshot(small_store)
    args, message = bad_inputs(tmp_path, str(tiny_model), small_store)[case]
    code, output = run_cli("dump", *args)
    assert code == 2, output
    assert "Traceback" not in output
    lines = [ln for ln in output.splitlines() if ln.strip()]
    assert lines == [lines[0]] and lines[0].startswith("hs: error:") and message in lines[0], output
    assert snapshot(small_store) == before


def test_skip_empty_and_csv_columns(tmp_path, tiny_model):
    f = tmp_path / "rows.csv"
    f.write_text('id,sentence\n1,"First, with a comma."\n2,Second one\n3,\n')
    out = str(tmp_path / "s")
    code, output = run_cli("dump", "--model", str(tiny_model), "--corpus-file", str(f), "--out", out, "-q")
    assert code == 2 and "no column 'text'" in output
    code, output = run_cli("dump", "--model", str(tiny_model), "--corpus-file", str(f), "--column", "sentence",
                           "--skip-empty", "--out", out, "-q")
    assert code == 0, output
    assert sorted(hsstore.open(out).corpus("rows").texts) == ["First, with a comma.", "Second one"]


def test_info_and_show(small_store):
    code, output = run_cli("info", str(small_store))
    assert code == 0 and "mine" in output and "complete" in output and "bytes/token" in output
    corpus = hsstore.open(small_store).corpus("mine")
    code, output = run_cli("show", str(small_store), "mine", "0")
    assert code == 0
    assert corpus.texts[0] in output and all(t in output for t in corpus.tokens(0))
    norm = np.linalg.norm(corpus.hidden(0, layers=[2])[0, 1])
    assert f"{norm:.2f}" in output
    code, output = run_cli("show", str(small_store), "mine", "99")
    assert code == 2 and "out of range" in output


def test_a_flipped_byte_is_a_clear_error(tmp_path, small_store):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(small_store, broken)
    chunk = broken / "corpora/mine/hidden/c/2/0/0"
    data = bytearray(chunk.read_bytes())
    data[64] ^= 0xFF
    chunk.write_bytes(bytes(data))
    code, output = run_cli("show", str(broken), "mine", "0")
    assert code == 1 and "array hidden (layer 2) has a corrupt chunk" in output and "Traceback" not in output, output
    code, output = run_cli("show", str(small_store), "mine", "0")  # the original is untouched and fine
    assert code == 0
