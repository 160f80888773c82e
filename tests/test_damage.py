"""Damage a chunk's own checksum does not see, metadata edited into other valid JSON, the way back
from damage, the model's identity, results files on a full disk, and corpus files' lines
(scripts/faults.py's integrity cases run the same and more on real processes)."""
from __future__ import annotations

import errno
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

import hsstore
from hsstore.format import atomic
from hsstore.format.chunks import crc32c
from hsstore.tasks import get_task
from hsstore.dump.run import run_dump
from hsstore.dump.sources import CorpusSource
from test_integrity import dump, one_line_error, run_cli, snapshot

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from drill import as_older_format  # noqa: E402


@pytest.fixture(scope="module")
def rich(tmp_path_factory, tiny_model) -> Path:
    """A store of every kind of array: a corpus plain and templated (with its template-only rows),
    its attention diagonals, the input embeddings."""
    base = tmp_path_factory.mktemp("rich")
    texts = base / "few.txt"
    texts.write_text("\n".join(get_task("sts17").texts()[:200]) + "\n")
    code, output = run_cli("dump", "--model", tiny_model, "--corpus-file", texts, "--template", "none", "--template",
                           "promptbert", "--attention-diagonals", "--batch-tokens", "256", "--chunk-tokens", "256",
                           "--out", base / "s", "-q")
    assert code == 0, output
    return base / "s"


@pytest.fixture(scope="module")
def few(tmp_path_factory, tiny_model) -> Path:
    """test_integrity's undisturbed store: one corpus of 200 sentences."""
    out = tmp_path_factory.mktemp("few") / "s"
    dump(tiny_model, out)
    return out


@pytest.fixture(scope="module")
def sts(tmp_path_factory, tiny_model) -> Path:
    """A store of the sts17 task, for hs eval."""
    out = tmp_path_factory.mktemp("sts") / "s"
    src = [CorpusSource("sts17", get_task("sts17").texts(), {"task": "sts17"})]
    run_dump(str(tiny_model), src, out, batch_tokens=1024, progress=False, log=lambda m: None)
    return out


@pytest.fixture()
def store(rich, tmp_path) -> Path:
    out = tmp_path / "s"
    shutil.copytree(rich, out)
    return out


def rich_dump(tiny_model, out: Path, rich: Path) -> tuple[int, str]:
    """The command that made ``rich``, rerun into ``out``."""
    texts = rich.parent / "few.txt"
    return run_cli("dump", "--model", tiny_model, "--corpus-file", texts, "--template", "none", "--template",
                   "promptbert", "--attention-diagonals", "--batch-tokens", "256", "--chunk-tokens", "256", "--out", out,
                   "-q")


def rewrite(path: Path) -> None:
    """Other data with their own, valid CRC-32C, and the old modification time."""
    st = path.stat()
    data = bytearray(path.read_bytes()[:-4])
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data) + crc32c(bytes(data)).to_bytes(4, "little"))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def pooled(store: Path, recipe: str = "layers=last;pool=mean", disk_cache: bool = True) -> np.ndarray:
    from analysis.recipes.recipe import parse_recipe
    from analysis.runners.engine import Engine

    engine = Engine(hsstore.open(store), disk_cache=disk_cache)
    return engine.pooler.embed(engine.store.corpus("few"), parse_recipe(recipe))


def edit_attrs(group: Path, **changes) -> None:
    meta = json.loads((group / "zarr.json").read_text())
    meta["attributes"].update(changes)
    (group / "zarr.json").write_text(json.dumps(meta))


# --- 1. a chunk that is valid but not the one written there --------------------------------------

@pytest.mark.parametrize("warm", [False, True])
def test_a_valid_chunk_from_elsewhere_is_an_error_on_read(warm, store, tmp_path, monkeypatch):
    monkeypatch.setenv("HS_CACHE", str(tmp_path / "cache"))
    want = pooled(store)
    if warm:  # the cache holds the matrix: the copied-in chunk, old mtime and all, must still be seen
        np.testing.assert_array_equal(pooled(store), want)
    a, b = store / "corpora/few/hidden/c/3/1/0", store / "corpora/few/hidden/c/3/2/0"
    st = a.stat()
    a.write_bytes(b.read_bytes())
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(hsstore.HsError, match="chunk c/3/1/0 is not the chunk hs wrote there"):
        pooled(store)


@pytest.mark.parametrize("array", ["token_ids", "offsets", "text/bytes", "../../vocab/bytes"])
def test_a_rewritten_small_array_is_an_error(array, store):
    rewrite(sorted((store / "corpora/few" / array / "c").iterdir())[0])
    code, output = run_cli("show", store, "few", "0")
    assert code == 1 and one_line_error(output, "not the chunk hs wrote there"), output


def test_verify_deep_covers_statics_and_attention_diagonals(store):
    code, output = run_cli("verify", store, "--deep")
    assert code == 0, output
    statics = store / "statics/input_embeddings/c/0/0"
    data = bytearray(statics.read_bytes())
    data[100] ^= 1
    statics.write_bytes(bytes(data))
    (store / "corpora/few/attention_diagonal/c/1/1/0").unlink()
    code, output = run_cli("verify", store, "--deep")
    assert code == 1, output
    assert "store statics array input_embeddings chunk c/0/0: checksum mismatch" in output
    assert "corpus few array attention_diagonal chunk c/1/1/0: missing" in output
    with pytest.raises(hsstore.HsError, match="attention_diagonal.*missing"):
        pooled(store, "weights=ditto:layer=2:head=0")
    with pytest.raises(hsstore.HsError, match="input_embeddings has a corrupt chunk"):
        pooled(store, "view=input")


# --- 2. metadata that stays valid JSON but no longer describes the data ---------------------------

def _edit(store: Path, what: str) -> None:
    corpus = store / "corpora/few"
    if what == "root layers reordered":
        meta = json.loads((store / "zarr.json").read_text())
        meta["attributes"]["settings"]["layers"].reverse()
        (store / "zarr.json").write_text(json.dumps(meta))
    elif what == "hidden float16 -> int16":
        meta = json.loads((corpus / "hidden/zarr.json").read_text())
        meta["data_type"] = "int16"
        (corpus / "hidden/zarr.json").write_text(json.dumps(meta))
    elif what == "offsets shape shortened":
        meta = json.loads((corpus / "offsets/zarr.json").read_text())
        meta["shape"][0] -= 1
        (corpus / "offsets/zarr.json").write_text(json.dumps(meta))
    elif what == "n_tokens one less":
        edit_attrs(corpus, n_tokens=json.loads((corpus / "zarr.json").read_text())["attributes"]["n_tokens"] - 1)
    elif what == "template-only lengths permuted":
        empty = store / "corpora/few~promptbert~empty"
        source = json.loads((empty / "zarr.json").read_text())["attributes"]["source"]
        lengths = source["sentence_lengths"]
        lengths[0], lengths[1] = lengths[1], lengths[0]
        edit_attrs(empty, source=source)


EDITS = ["root layers reordered", "hidden float16 -> int16", "offsets shape shortened", "n_tokens one less",
         "template-only lengths permuted"]


@pytest.mark.parametrize("version", [3, 2])
def test_metadata_edits_are_errors(version, rich, tmp_path):
    for what in EDITS:
        store = tmp_path / f"{version}-{EDITS.index(what)}"
        shutil.copytree(rich, store)
        if version == 2:
            as_older_format(store, 2)
            assert hsstore.open(store).corpus("few").layer(3).shape[0] > 0  # readable as it is
        _edit(store, what)
        name = "few~promptbert~empty" if "template" in what else "few"
        code, output = run_cli("show", store, name, "0")
        assert code == 1 and one_line_error(output, "changed after hs wrote it"), (version, what, output)
        code, output = run_cli("verify", store)
        assert code == 1 and "Traceback" not in output, (version, what, output)


# --- 7. the way back: the same hs dump, after hs verify --deep --repair for what only it sees --------

def test_a_damaged_complete_corpus_is_recomputed_by_the_same_dump(rich, tmp_path, tiny_model):
    out = tmp_path / "s"
    shutil.copytree(rich, out)
    (out / "corpora/few/hidden/c/2/3/0").unlink()
    rewrite(out / "corpora/few/token_ids/c/0")
    (out / "corpora/few/attention_diagonal/c/0/2/0").unlink()
    (out / "vocab/bytes/c/0").unlink()
    (out / "statics/input_embeddings/c/0/0").unlink()
    assert run_cli("verify", out)[0] == 1
    code, output = rich_dump(tiny_model, out, rich)
    assert code == 0 and "damaged, written again" in output, output
    assert snapshot(out) == snapshot(rich)


def test_verify_repair_marks_deep_damage_for_the_dump(rich, tmp_path, tiny_model):
    out = tmp_path / "s"
    shutil.copytree(rich, out)
    chunk = out / "corpora/few/hidden/c/1/2/0"
    data = bytearray(chunk.read_bytes())
    data[50] ^= 4
    chunk.write_bytes(bytes(data))
    assert rich_dump(tiny_model, out, rich)[0] == 0  # the quick check cannot see a flipped bit ...
    assert run_cli("verify", out, "--deep")[0] == 1
    code, output = run_cli("verify", out, "--deep", "--repair")  # ... so verify marks it for the dump
    assert code == 1 and "marked incomplete from token chunk 2" in output, output
    assert "incomplete" in run_cli("info", out)[1]
    assert rich_dump(tiny_model, out, rich)[0] == 0
    assert snapshot(out) == snapshot(rich)


# --- 8. a model moved to another folder is the same model ----------------------------------------

@pytest.mark.parametrize("older", [False, True])
def test_a_moved_model_extends_its_store(older, few, tmp_path, tiny_model):
    moved = tmp_path / "elsewhere" / "tiny"
    shutil.copytree(tiny_model, moved)
    here, there = tmp_path / "here", tmp_path / "there"
    shutil.copytree(few, here)
    if older:  # a store of the hs before: its configuration hash holds the model's path
        as_older_format(here, 2, tiny_model)
    shutil.copytree(here, there)
    def add(model, out, name):
        src = [CorpusSource(name, ["Another corpus.", "And a second sentence of it."], {"test": True})]
        run_dump(str(model), src, out, progress=False, log=lambda m: None)

    add(tiny_model, here, "more")
    add(moved, there, "more")
    assert snapshot(here) == snapshot(there)
    config = json.loads((moved / "config.json").read_text())
    config["layer_norm_eps"] = 1e-3  # the same weights and path, another configuration: other numbers
    (moved / "config.json").write_text(json.dumps(config))
    with pytest.raises(hsstore.HsError, match="differs in config_sha256"):
        add(moved, there, "third")


# --- 3, 4, 5, 6: kernels and results on a full disk, lines, bad input -----------------------------

def test_a_kernel_cache_write_that_fails_only_warns(monkeypatch, capsys):
    import analysis
    import analysis.embedding.kernels  # noqa: F401 - installs the tolerance
    from numba import njit
    from numba.core import caching

    def full(self, sig, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(caching.Cache, "_save_overload", full)
    monkeypatch.setattr(analysis, "_warned_kernels", [])

    @njit(cache=True)
    def add_one(x):
        return x + 1.0

    assert add_one(np.float32(2.5)) == 3.5
    assert "cannot save compiled kernels" in capsys.readouterr().err


def test_results_files_are_replaced_whole(tmp_path, monkeypatch):
    path = tmp_path / "out.json"
    path.write_text("earlier results")

    def half_then_full(tmp):
        tmp.write_text("half of the new")
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp))

    with pytest.raises(OSError):
        atomic.replace_file(path, half_then_full)
    assert path.read_text() == "earlier results" and sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_hs_eval_json_on_a_full_disk_keeps_the_earlier_file(sts, tmp_path, monkeypatch):
    from analysis.results import records

    out = tmp_path / "out.json"
    out.write_text("[]\n")

    def full(path, *parts, sync=False):  # the disk fills up halfway through the new file
        def write(tmp):
            tmp.write_bytes(parts[0][:10])
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
        atomic.replace_file(path, write)

    monkeypatch.setattr(records, "write_bytes", full)
    code, output = run_cli("eval", sts, "--task", "sts17", "-r", "layers=last;pool=mean", "-q", "--json", out)
    assert code == 1 and one_line_error(output, "disk is full"), output
    assert out.read_text() == "[]\n" and sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_a_line_is_what_wc_counts(tmp_path):
    from hsstore.tasks.corpusfile import read_corpus_file

    texts = ["one\x0cform feed", "two\u2028line separator", "three\x85next line", "four\x0bvertical\x1ctab"]
    for newline in ("\n", "\r\n"):
        f = tmp_path / "c.txt"
        f.write_bytes(newline.join(texts).encode() + newline.encode())
        assert read_corpus_file(f) == texts and f.read_bytes().count(b"\n") == len(texts)
    f = tmp_path / "c.jsonl"
    f.write_text("\n".join(json.dumps({"text": t}, ensure_ascii=False) for t in texts) + "\n")
    assert read_corpus_file(f) == texts


def test_bad_layer_lists_and_degenerate_recipes(sts, tiny_model, tmp_path):
    from hsstore.layers import parse_layers

    assert parse_layers("0,2-3", 3) == [0, 2, 3] and parse_layers("-1", 3) == [3]
    for spec in ("3-1", "0-9999999", "", ",", "-2-3", "x"):
        with pytest.raises(hsstore.HsError) as err:
            parse_layers(spec, 3)
        assert len(str(err.value)) < 200
    code, output = run_cli("dump", "--model", tiny_model, "--task", "sts17", "--layers", "3-1", "--out", tmp_path / "x")
    assert code == 2 and one_line_error(output, "runs backwards") and not (tmp_path / "x").exists(), output
    for recipe, words in (("layers=0-9999999", "do not exist"), ("layers=0;pool=first", "undefined (NaN)")):
        code, output = run_cli("eval", sts, "--task", "sts17", "-r", recipe, "-q")
        assert code == 2 and one_line_error(output, words) and "Warning" not in output, output


def test_a_hub_name_and_its_local_copy_are_one_model(few, tmp_path, tiny_model):
    """A store made from a local folder is extended by the same model loaded by its hub name (from the
    local Hugging Face cache: the weights are hashed there as in the folder)."""
    import subprocess

    snapshot_dir = tmp_path / "hub" / "models--hs-test--tiny" / "snapshots" / ("0" * 40)
    shutil.copytree(tiny_model, snapshot_dir)
    (snapshot_dir.parents[1] / "refs").mkdir()
    (snapshot_dir.parents[1] / "refs" / "main").write_text("0" * 40)
    out = tmp_path / "s"
    shutil.copytree(few, out)
    texts = tmp_path / "more.txt"
    texts.write_text("Another corpus.\nAnd a second sentence of it.\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub")}
    proc = subprocess.run([sys.executable, "-m", "cli.main", "dump", "--model", "hs-test/tiny", "--corpus-file", texts,
                           "--out", out, "-q"], env=env, capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr
    assert hsstore.open(out).corpus("more").complete
