"""Never a wrong number: every case of issue 6's table, each against an undisturbed run.

Kills are simulated in-process by raising at the dump's fault points (``hsstore.atomic.fault_point``),
which leaves the store exactly as a SIGKILL there would (every write before it is a whole file);
tests/test_faults.py runs the real SIGKILL drill's fast subset.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import hsstore
from cli.main import hs
from hsstore.format import atomic, chunks
from hsstore.store import writer
from hsstore.dump.sources import CorpusSource
from hsstore.dump.run import run_dump
from hsstore.tasks import get_task

ROOT = Path(__file__).resolve().parents[1]
KILL_POINTS = ["store-created", "vocab-written", "store-committed", "plan-written", "corpus-created",
               "chunks-written", "manifest-written", "commit", "complete"]


class Killed(BaseException):
    """Stands for a SIGKILL at a fault point (BaseException: nothing in hs catches it)."""


def interrupt_at(monkeypatch, label: str, nth: int = 1) -> None:
    hits = []

    def point(name):
        if name == label:
            hits.append(name)
            if len(hits) == nth:
                raise Killed(label)

    monkeypatch.setattr(atomic, "fault_point", point)
    monkeypatch.setattr(writer, "fault_point", point)


def dump(model, out: Path, texts=None, **kw):
    texts = texts if texts is not None else get_task("sts17").texts()[:200]
    src = [CorpusSource("few", list(texts), {"test": True})]
    kw = {"batch_tokens": 256, "chunk_tokens": 256, **kw}
    return run_dump(str(model), src, out, progress=False, log=lambda m: None, **kw)


def snapshot(path: Path) -> dict[str, str]:
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def run_cli(*args, env=None):
    result = CliRunner().invoke(hs, [str(a) for a in args], env={"HF_HUB_OFFLINE": "1", **(env or {})})
    return result.exit_code, result.output


def one_line_error(output: str, *words: str) -> bool:
    """The run ended on exactly one ``hs: error:`` line holding ``words``, with no traceback (progress
    messages before it are fine)."""
    lines = [ln for ln in output.splitlines() if ln.strip() and not ln.startswith("hs: warning")]
    errors = [ln for ln in lines if ln.startswith("hs: error:")]
    return (len(errors) == 1 and lines[-1] == errors[0] and "Traceback" not in output
            and all(w in errors[0] for w in words))


@pytest.fixture(scope="module")
def clean(tmp_path_factory, tiny_model) -> Path:
    out = tmp_path_factory.mktemp("clean") / "s"
    dump(tiny_model, out)
    return out


@pytest.fixture()
def sts_store(tmp_path, tiny_model) -> Path:
    """A store holding the sts17 task (for hs eval); a fresh copy per test."""
    out = tmp_path / "sts"
    src = [CorpusSource("sts17", get_task("sts17").texts(), {"task": "sts17"})]
    run_dump(str(tiny_model), src, out, batch_tokens=1024, progress=False, log=lambda m: None)
    return out


def eval_scores(store: Path, recipe: str = "layers=last;pool=mean;drop=punct", env=None) -> tuple[int, str]:
    return run_cli("eval", store, "--task", "sts17", "-r", recipe, "-q", env=env)


# --- kills at every metadata write: the rerun ends identical --------------------------------------

@pytest.mark.parametrize("point", KILL_POINTS + ["commit:3"])
def test_a_kill_after_any_metadata_write_resumes_to_identical_files(point, monkeypatch, tmp_path, tiny_model, clean):
    label, _, nth = point.partition(":")
    interrupt_at(monkeypatch, label, int(nth or 1))
    out = tmp_path / "s"
    with pytest.raises(Killed):
        dump(tiny_model, out)
    monkeypatch.undo()
    code, output = run_cli("info", out)  # whatever the state, info answers without a traceback
    assert "Traceback" not in output and (code == 0 or one_line_error(output)), output
    dump(tiny_model, out)
    assert snapshot(out) == snapshot(clean)


def test_kill_between_vocab_metadata_and_data_is_redone(monkeypatch, tmp_path, tiny_model, clean):
    import zarr

    interrupt_at(monkeypatch, "store-created")
    out = tmp_path / "s"
    with pytest.raises(Killed):
        dump(tiny_model, out)
    monkeypatch.undo()
    # the state a kill inside zarr's array creation leaves: metadata of vocab/offsets, no data
    g = zarr.open_group(str(out), mode="a").require_group("vocab")
    g.create_array("offsets", shape=(10,), dtype=np.int64, chunks=(10,))
    dump(tiny_model, out)
    assert snapshot(out) == snapshot(clean)
    assert hsstore.open(out).vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def test_resume_with_another_precision_is_refused(monkeypatch, tmp_path, tiny_model):
    interrupt_at(monkeypatch, "commit", 2)
    out = tmp_path / "s"
    with pytest.raises(Killed):
        dump(tiny_model, out, precision="fp32")
    monkeypatch.undo()
    before = snapshot(out)
    with pytest.raises(hsstore.HsError, match="precision=fp32, this dump asks for precision=bf16"):
        dump(tiny_model, out, precision="bf16")
    assert snapshot(out) == before


def test_damaged_committed_chunk_is_recomputed_on_resume(monkeypatch, tmp_path, tiny_model, clean):
    interrupt_at(monkeypatch, "commit", 4)
    out = tmp_path / "s"
    with pytest.raises(Killed):
        dump(tiny_model, out)
    monkeypatch.undo()
    (out / "corpora/few/hidden/c/1/0/0").unlink()  # a committed chunk lost
    dump(tiny_model, out)
    assert snapshot(out) == snapshot(clean)


def test_temporary_files_of_a_killed_run_are_removed_by_the_rerun(monkeypatch, tmp_path, tiny_model, clean):
    interrupt_at(monkeypatch, "commit", 2)
    out = tmp_path / "s"
    with pytest.raises(Killed):
        dump(tiny_model, out)
    monkeypatch.undo()
    for leftover in (out / ".zarr.json.99.partial", out / "corpora/few/hidden/c/0/.0.99.partial"):
        leftover.parent.mkdir(parents=True, exist_ok=True)
        leftover.write_bytes(b"half")
    dump(tiny_model, out)
    assert snapshot(out) == snapshot(clean)


# --- what changes the numbers is in the identity and the cache key --------------------------------

def test_identity_covers_precision_config_and_tokenizer(tmp_path, tiny_model):
    a, b = tmp_path / "a", tmp_path / "b"
    dump(tiny_model, a, precision="fp32")
    dump(tiny_model, b, precision="bf16")
    assert hsstore.open(a).identity != hsstore.open(b).identity
    assert hsstore.open(b).settings["precision"] == "bf16"
    changed = tmp_path / "model"
    shutil.copytree(tiny_model, changed)
    config = json.loads((changed / "config.json").read_text())
    config["layer_norm_eps"] = 1e-3  # same weights, other numbers
    (changed / "config.json").write_text(json.dumps(config))
    c = tmp_path / "c"
    dump(changed, c, precision="fp32")
    assert hsstore.open(c).identity != hsstore.open(a).identity
    with pytest.raises(hsstore.HsError, match="differs in config_sha256"):
        dump(changed, a, precision="fp32", texts=["Another corpus."])


def test_redump_at_the_same_path_never_serves_old_cached_matrices(tmp_path, tiny_model):
    from analysis.runners.engine import Engine
    from analysis.recipes.recipe import parse_recipe

    out = tmp_path / "s"
    recipe = parse_recipe("layers=last;pool=mean")
    matrices = {}
    for precision in ("fp32", "bf16"):
        shutil.rmtree(out, ignore_errors=True)
        dump(tiny_model, out, precision=precision)
        engine = Engine(hsstore.open(out))
        matrices[precision] = engine.pooler.embed(engine.store.corpus("few"), recipe)
        assert engine.pooler.stats["computed"] == 1 and engine.pooler.stats["disk"] == 0
    assert not np.array_equal(matrices["fp32"], matrices["bf16"])
    engine = Engine(hsstore.open(out))  # and the same store again: the disk cache serves it
    np.testing.assert_array_equal(engine.pooler.embed(engine.store.corpus("few"), recipe), matrices["bf16"])
    assert engine.pooler.stats["disk"] == 1


def test_a_damaged_cached_matrix_is_recomputed(sts_store, tmp_path):
    env = {"HS_CACHE": str(tmp_path / "cache")}
    code, first = eval_scores(sts_store, env=env)
    assert code == 0, first
    cached = sorted((tmp_path / "cache" / "matrices").rglob("*.npy"))
    assert cached
    for path in cached:
        data = bytearray(path.read_bytes())
        data[200] ^= 0x10
        path.write_bytes(bytes(data))
    code, again = eval_scores(sts_store, env=env)
    assert code == 0 and "is damaged; recomputing" in again
    assert [ln for ln in again.splitlines() if not ln.startswith("hs: warning")] == first.splitlines()


# --- missing, truncated or damaged chunks: an error naming corpus, array and chunk -----------------

@pytest.mark.parametrize("array", ["hidden", "token_ids", "offsets"])
def test_a_missing_chunk_is_an_error_not_zeros(array, sts_store, tmp_path):
    base = sts_store / "corpora/sts17" / array / "c"
    victim = sorted(p for p in base.rglob("*") if p.is_file())[-1]
    victim.unlink()
    key = "c/" + str(victim.relative_to(base))
    code, output = eval_scores(sts_store)
    assert code == 1 and one_line_error(output, "'sts17'", f"array {array}", f"chunk {key} is missing"), output
    code, output = run_cli("show", sts_store, "sts17", "0")
    assert code == 1 and one_line_error(output, "missing"), output
    code, output = run_cli("export", sts_store, tmp_path / "x.h5", "-q")
    assert code == 1 and one_line_error(output, "missing"), output
    assert not list(tmp_path.glob("x.h5*"))
    code, output = run_cli("verify", sts_store)
    assert code == 1 and f"corpus sts17 array {array} chunk {key}: missing" in output


def test_a_truncated_chunk_is_an_error(sts_store):
    chunk = sts_store / "corpora/sts17/hidden/c/3/0/0"
    chunk.write_bytes(chunk.read_bytes()[:100])
    code, output = eval_scores(sts_store)
    assert code == 1 and one_line_error(output, "hidden", "truncated"), output


def test_a_flipped_byte_with_a_warm_cache_is_an_error(sts_store, tmp_path):
    env = {"HS_CACHE": str(tmp_path / "cache")}
    assert eval_scores(sts_store, env=env)[0] == 0
    chunk = sts_store / "corpora/sts17/hidden/c/3/0/0"
    data = bytearray(chunk.read_bytes())
    data[10] ^= 0x01
    chunk.write_bytes(bytes(data))
    code, output = eval_scores(sts_store, env=env)
    assert code == 1 and one_line_error(output, "corrupt chunk", "array hidden (layer 3)"), output
    code, output = run_cli("verify", sts_store)  # presence and sizes are fine ...
    assert code == 0, output
    code, output = run_cli("verify", sts_store, "--deep")  # ... the checksum is not
    assert code == 1 and "corpus sts17 array hidden chunk c/3/0/0: checksum mismatch" in output


def test_a_checksum_failure_outside_hidden_and_in_export(sts_store, tmp_path):
    chunk = sts_store / "corpora/sts17/token_ids/c/0"
    data = bytearray(chunk.read_bytes())
    data[3] ^= 0x01
    chunk.write_bytes(bytes(data))
    code, output = eval_scores(sts_store)
    assert code == 1 and one_line_error(output, "array token_ids", "checksum"), output
    code, output = run_cli("export", sts_store, tmp_path / "x.h5", "-q")
    assert code == 1 and one_line_error(output, "checksum"), output
    assert not list(tmp_path.glob("x.h5*"))


def test_manifest_catches_a_valid_chunk_from_elsewhere(sts_store):
    a, b = sts_store / "corpora/sts17/hidden/c/1/0/0", sts_store / "corpora/sts17/hidden/c/2/0/0"
    a.write_bytes(b.read_bytes())  # its own checksum is right; it is just not this chunk
    code, output = run_cli("verify", sts_store, "--deep")
    assert code == 1 and "chunk c/1/0/0: not the chunk that was written" in output


def test_verify_a_good_store_and_repair(sts_store):
    code, output = run_cli("verify", sts_store, "--deep", "--corpus", "sts17")
    assert code == 0 and "ok" in output, output
    (sts_store / "corpora/sts17/.zarr.json.1.partial").write_text("x")
    code, output = run_cli("verify", sts_store)
    assert code == 1 and "temporary file" in output
    code, output = run_cli("verify", sts_store, "--repair")
    assert code == 0 and "removed 1 temporary files" in output
    code, output = run_cli("verify", sts_store, "--corpus", "nope")
    assert code == 1 and one_line_error(output, "no corpus 'nope'")  # missing data


def test_format_1_stores_stay_readable_and_refuse_new_corpora(clean, tmp_path, tiny_model):
    old = tmp_path / "old"
    shutil.copytree(clean, old)
    # what main's hs wrote: format 1, no manifests
    for group in (old, old / "corpora/few"):
        attrs = atomic.read_group_attrs(group)
        attrs.pop("manifest", None)
        attrs.pop("hidden_chunks", None)
        if group == old:
            attrs["format_version"] = 1
        atomic.write_group_attrs(group, attrs, "test")
    shutil.rmtree(old / "corpora/few/hidden_crc32c")
    store = hsstore.open(old)
    np.testing.assert_array_equal(store.corpus("few").layer(3), hsstore.open(clean).corpus("few").layer(3))
    code, output = run_cli("verify", old, "--deep")
    assert code == 0 and "no chunk manifest" in output, output
    with pytest.raises(hsstore.HsError, match="made by an older hs"):
        dump(tiny_model, old, texts=["Another corpus."])


# --- one-line errors that leave data as it was ---------------------------------------------------

def test_disk_full_is_a_clean_error_and_the_rerun_finishes(monkeypatch, tmp_path, tiny_model, clean):
    calls = []
    real = chunks.write_bytes  # every chunk file goes through it

    def full(path, *parts, sync=False):
        calls.append(path)
        if len(calls) == 5:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, *parts, sync=sync)

    monkeypatch.setattr(chunks, "write_bytes", full)
    out = tmp_path / "s"
    texts = tmp_path / "few.txt"
    texts.write_text("\n".join(get_task("sts17").texts()[:200]) + "\n")
    args = ["dump", "--model", tiny_model, "--corpus-file", texts, "--batch-tokens", "256", "--chunk-tokens", "256",
            "--out", out, "-q"]
    code, output = run_cli(*args)
    assert code == 1 and one_line_error(output, "No space left", "disk is full"), output
    monkeypatch.undo()
    assert run_cli(*args)[0] == 0
    got, want = snapshot(out), snapshot(clean)
    for meta in (got, want):  # the corpus's source attribute names the file here
        meta.pop("corpora/few/zarr.json")
    assert got == want and hsstore.open(out).corpus("few").complete


def test_info_on_a_store_killed_during_corpus_setup(monkeypatch, tmp_path, tiny_model):
    interrupt_at(monkeypatch, "plan-written")
    out = tmp_path / "s"
    with pytest.raises(Killed):
        dump(tiny_model, out)
    monkeypatch.undo()
    code, output = run_cli("info", out)
    assert code == 0 and "cut off while being set up" in output, output


def test_unreadable_metadata(clean, tmp_path):
    broken = tmp_path / "b"
    shutil.copytree(clean, broken)
    (broken / "corpora/few/zarr.json").write_text("{not json")
    code, output = run_cli("info", broken)
    assert code == 0 and "unreadable metadata" in output, output
    code, output = run_cli("show", broken, "few", "0")
    assert code == 1 and one_line_error(output, "unreadable"), output
    (broken / "zarr.json").write_text("{not json")
    for cmd in (["info", broken], ["show", broken, "few", "0"], ["verify", broken]):
        code, output = run_cli(*cmd)
        assert code == 1 and one_line_error(output, "zarr.json is unreadable"), (cmd, output)


@pytest.mark.parametrize("name", ["a\\..\\b", "zarr.json", "x" * 300, "a\nb", ".hidden", "a/b"])
def test_odd_corpus_names_are_refused(name, tmp_path, tiny_model, sentences_file):
    code, output = run_cli("dump", "--model", tiny_model, "--corpus-file", sentences_file, "--corpus-name", name,
                           "--out", tmp_path / "s", "-q")
    assert code == 2 and one_line_error(output, "is not allowed"), output
    assert not (tmp_path / "s").exists()


def test_out_under_a_file(tmp_path, tiny_model, sentences_file):
    (tmp_path / "f").write_text("x")
    code, output = run_cli("dump", "--model", tiny_model, "--corpus-file", sentences_file, "--out",
                           tmp_path / "f" / "s", "-q")
    assert code == 2 and one_line_error(output, "is a file"), output
    code, output = run_cli("export", tmp_path / "nowhere", tmp_path / "f" / "x.h5")
    assert code == 1 and one_line_error(output, "no store at"), output  # a missing store: missing data


def test_dump_into_a_read_only_store(clean, tmp_path, tiny_model, sentences_file):
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() == 0:  # root ignores permission bits: a read-only bind mount
        if subprocess.run(["mount", "--bind", "-o", "ro", str(clean), str(ro)], capture_output=True).returncode:
            pytest.skip("cannot bind-mount here")
    else:
        shutil.rmtree(ro)
        shutil.copytree(clean, ro)
        for p in [ro, *ro.rglob("*")]:
            p.chmod(p.stat().st_mode & ~0o222)
    try:
        before = snapshot(ro)
        code, output = run_cli("dump", "--model", tiny_model, "--corpus-file", sentences_file, "--out", ro, "-q")
        assert code == 1 and one_line_error(output, "read-only"), output
        assert snapshot(ro) == before
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(ro)])


def test_eval_with_an_unwritable_cache(sts_store, tmp_path):
    (tmp_path / "file").write_text("x")
    env = {**os.environ, "HS_CACHE": str(tmp_path / "file" / "cache"), "HF_HUB_OFFLINE": "1"}
    env.pop("NUMBA_CACHE_DIR", None)
    expected = eval_scores(sts_store, env={"HS_CACHE": str(tmp_path / "good")})[1]
    for extra in ([], ["--no-cache"]):
        proc = subprocess.run([sys.executable, "-m", "cli.main", "eval", str(sts_store), "--task", "sts17", "-r",
                               "layers=last;pool=mean;drop=punct", "-q", *extra], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr
        table = [ln for ln in expected.splitlines() if not ln.startswith(("recipe:", "hs: warning"))]
        assert proc.stdout.splitlines() == table  # the recipe line and warnings go to stderr
        if not extra:
            assert "cached in memory only" in proc.stderr


@pytest.mark.parametrize("content, message", [('{"text": "fine"}\n{"text": null}\n', "line 2: field 'text' is null"),
                                              ("one\ntwo\x00three\n", "line 2 holds a NUL byte")])
def test_bad_corpus_file_content(content, message, tmp_path, tiny_model):
    f = tmp_path / "c.jsonl" if "null" in content else tmp_path / "c.txt"
    f.write_text(content)
    code, output = run_cli("dump", "--model", tiny_model, "--corpus-file", f, "--out", tmp_path / "s", "-q")
    assert code == 2 and one_line_error(output, message), output
