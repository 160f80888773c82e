"""Models beyond BERT, MTEB's results layout, the store as a plain array dataset, and a Unix-friendly CLI."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import hsstore
from cli.main import hs
from families import DECODERS, FAMILIES, build_family
from hsstore.dump.sources import CorpusSource
from hsstore.dump.run import run_dump

TEXTS = ["A man is playing a guitar.", "Stocks fell sharply on Tuesday after the announcement.", "Hello!",
         "A woman is slicing an onion in the kitchen while the radio plays an old song about the sea.",
         "Zebras run.", "The cat sat on the mat, didn't it?"]
ROOT = Path(__file__).resolve().parents[1]


def run(*args):
    result = CliRunner().invoke(hs, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def family_stores(tmp_path_factory):
    """A float32 store of TEXTS for a tiny random model of each family."""
    out = {}
    for family in FAMILIES:
        base = tmp_path_factory.mktemp(family)
        model = build_family(family, base / "model")
        run_dump(str(model), [CorpusSource("mine", TEXTS, {})], base / "store", dtype="float32",
                 batch_tokens=64, progress=False, log=lambda m: None)
        out[family] = (model, base / "store")
    return out


def direct_states(model_dir: Path, text: str) -> np.ndarray:
    """Every layer's states of one sentence alone (no padding), straight from transformers."""
    import torch
    import transformers

    tok = transformers.AutoTokenizer.from_pretrained(model_dir)
    model = transformers.AutoModel.from_pretrained(model_dir).eval()
    ids = tok(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        hidden = model(input_ids=ids, output_hidden_states=True).hidden_states
    return torch.stack(hidden)[:, 0].numpy()  # (layers, tokens, hidden)


@pytest.mark.parametrize("family", FAMILIES)
def test_stored_states_equal_a_direct_forward_pass(family_stores, family):
    """Batched, right-padded, length-sorted states equal each sentence run alone; pool=last reads the
    last real token (for decoders, the one that has seen the whole sentence)."""
    from analysis.embedding.pooling import Pooler
    from analysis.recipes.recipe import parse_recipe

    model, path = family_stores[family]
    store = hsstore.open(path)
    corpus = store.corpus("mine")
    assert store.model["causal"] == (family in DECODERS)
    last = Pooler(store, disk_cache=False).embed(corpus, parse_recipe("layers=last;pool=last"))
    for i, text in enumerate(corpus.texts):
        expected = direct_states(model, text)
        got = corpus.hidden(i)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=2e-4, rtol=1e-3)
        np.testing.assert_allclose(last[i], expected[-1, -1], atol=2e-4, rtol=1e-3)


def test_decoder_without_special_tokens_refuses_drop_special(family_stores):
    from hsstore.tasks import get_task

    model, store = family_stores["gpt2"]
    run_dump(str(model), [CorpusSource("sts17", get_task("sts17").texts(), {"task": "sts17"})], store,
             dtype="float32", batch_tokens=64, progress=False, log=lambda m: None)
    code, _, err = run("eval", store, "-t", "sts17", "--drop", "special", "-q")
    assert code == 2 and err.startswith("hs: error:") and "special" in err and len(err.strip().splitlines()) == 1


def test_unsupported_model_is_one_line(tmp_path):
    """An encoder-decoder model (T5) is refused before any work, in one line."""
    import transformers

    model_dir = build_family("bert", tmp_path / "t5")  # its tokenizer, then T5 weights in its place
    config = transformers.T5Config(vocab_size=1300, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2)
    transformers.T5Model(config).save_pretrained(model_dir)
    code, out, err = run("dump", "--model", model_dir, "--corpus-file", _lines(tmp_path), "--out", tmp_path / "s")
    assert code == 2 and re.fullmatch(r"hs: error: model .* is an encoder-decoder model; .*\n", err), err
    assert not (tmp_path / "s").exists() or not any((tmp_path / "s").iterdir())


def _lines(tmp_path: Path) -> Path:
    path = tmp_path / "mine.txt"
    path.write_text("\n".join(TEXTS) + "\n")
    return path


def test_model_recipe_is_the_sentence_transformers_pipeline(tmp_path):
    """`-r model` reads the pooling and normalisation stored with the dump from modules.json."""
    import torch
    import transformers

    from analysis.runners.engine import Engine
    from analysis.recipes.recipe import parse_recipe

    model_dir = build_family("mpnet", tmp_path / "st")
    (model_dir / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]))
    (model_dir / "1_Pooling").mkdir()
    (model_dir / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": 32, "pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}))
    run_dump(str(model_dir), [CorpusSource("mine", TEXTS, {})], tmp_path / "store", dtype="float32",
             progress=False, log=lambda m: None)
    store = hsstore.open(tmp_path / "store")
    assert store.model["pipeline"]["pooling"] == "cls" and store.model["pipeline"]["normalize"]
    from hsstore.dump.st_modules import model_recipe

    recipe = parse_recipe(model_recipe(store.model["pipeline"], store.model["name"]))
    got = Engine(store, disk_cache=False).embed("mine", recipe)
    tok = transformers.AutoTokenizer.from_pretrained(model_dir)
    model = transformers.AutoModel.from_pretrained(model_dir).eval()
    for i, text in enumerate(store.corpus("mine").texts):  # sentence-transformers: CLS state, then L2
        with torch.no_grad():
            cls = model(**tok(text, return_tensors="pt")).last_hidden_state[0, 0].numpy()
        np.testing.assert_allclose(got[i], cls / np.linalg.norm(cls), atol=1e-4)
    # a folder without modules.json has no pipeline, and -r model says so in one line
    code, _, err = run("eval", _plain_store(tmp_path), "-t", "sts17", "-r", "model", "-q")
    assert code == 2 and "sentence-transformers pipeline" in err and len(err.strip().splitlines()) == 1


def _plain_store(tmp_path: Path) -> Path:
    from hsstore.tasks import get_task

    model = build_family("bert", tmp_path / "plain")
    run_dump(str(model), [CorpusSource("sts17", get_task("sts17").texts(), {"task": "sts17"})], tmp_path / "plain-store",
             progress=False, log=lambda m: None)
    return tmp_path / "plain-store"


def test_mteb_dir_loads_with_mteb(tiny_store, tmp_path):
    mteb = pytest.importorskip("mteb", reason="the mteb package is not installed (pip install -e '.[test]')")
    code, out, err = run("eval", tiny_store, "-t", "sts17", "-t", "biosses", "--pool", "mean", "--pool", "max",
                         "--mteb-dir", tmp_path / "mteb", "--json", tmp_path / "hs.json", "-q")
    assert code == 0, err
    ours = {(r["recipe"], r["task_name"]): r["scores"]["test"][0] for r in json.loads((tmp_path / "hs.json").read_text())}
    cache = mteb.ResultCache(tmp_path / "mteb")
    results = cache.load_results(include_remote=False)
    assert len(results.model_results) == 2  # one model folder per recipe
    seen = 0
    for model_result in results.model_results:
        recipe = model_result.model_name.split("__", 1)[1]
        for task_result in model_result.task_results:
            path = cache.get_task_result_path(task_result.task_name, model_result.model_name.replace("/", "__"),
                                              model_result.model_revision)
            loaded = mteb.TaskResult.from_disk(path)
            score = loaded.scores["test"][0]
            hs_score = [v for (r, t), v in ours.items() if t == loaded.task_name and r.replace(";", ",") == recipe][0]
            assert score["hf_subset"] == {"STS17": "en-en", "BIOSSES": "default"}[loaded.task_name]
            assert loaded.get_score() == pytest.approx(hs_score["cosine_spearman"])
            assert score["cosine_pearson"] == pytest.approx(hs_score["cosine_pearson"])
            seen += 1
    assert seen == 4


def test_mteb_names_only_for_mteb_data_and_protocol():
    """SentEval's SICK-R split and SentEval-protocol classification are never filed under MTEB's names."""
    from types import SimpleNamespace

    from analysis.results.mteb import mteb_name
    from hsstore.tasks import get_task

    def name(task, **options):
        return mteb_name(SimpleNamespace(task=get_task(task)), options)

    assert name("sickr") is None and name("sickr-full") == ("SICK-R", "default")
    assert name("sts17") == ("STS17", "en-en") and name("reddit") is None and name("mr") is None
    assert name("banking77", classification="senteval") is None
    assert name("banking77", classification="mteb") == ("Banking77Classification", "default")
    assert get_task("SICK-R").id == "sickr-full"


def test_json_and_csv_to_stdout(tiny_store):
    code, out, err = run("eval", tiny_store, "-t", "sts17", "--json", "-", "-q")
    assert code == 0, err
    records = json.loads(out)  # stdout is the JSON alone
    assert records[0]["task_name"] == "STS17" and "cosine_spearman" in records[0]["scores"]["test"][0]
    assert err.startswith("recipe: ") and "sts17" in err  # the table and the recipe line went to stderr
    code, out, err = run("eval", tiny_store, "-t", "sts17", "-t", "biosses", "--csv", "-", "-q")
    assert code == 0 and out.splitlines()[0].startswith("recipe,") and len(out.splitlines()) == 3
    code, _, err = run("eval", tiny_store, "-t", "sts17", "--csv", "-", "--json", "-", "-q")
    assert code == 2 and "stdout" in err


def test_single_recipe_table_parses_as_is(tiny_store):
    code, out, err = run("eval", tiny_store, "-t", "sts17", "-t", "biosses")
    assert code == 0
    assert out.splitlines()[0].split() == ["layers", "pool", "sts17", "biosses", "avg"]
    assert err.startswith("recipe: ") and ";layers=last;" in err.splitlines()[0]
    assert "eval:" not in err and "run/s" not in err  # no progress bar when stderr is not a terminal


def test_broken_pipe_exits_quietly():
    """`hs tasks | head -1`: the reader is gone before hs writes; hs stops with status 0 and says nothing."""
    import os

    read_end, write_end = os.pipe()
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "tasks"], cwd=ROOT, stdout=write_end,
                            stderr=subprocess.PIPE)
    os.close(write_end)
    os.close(read_end)  # hs is still importing: its first write meets a closed pipe
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and err == b""


def test_export_corpus_subset_with_dimension_scales(tiny_store, tmp_path):
    import h5py

    out = tmp_path / "sub.h5"
    code, _, err = run("export", tiny_store, out, "--corpus", "sts17", "-q")
    assert code == 0, err
    store = hsstore.open(tiny_store)
    with h5py.File(out) as h5:
        assert list(h5["corpora"]) == ["sts17"]
        hidden = h5["corpora/sts17/hidden"]
        assert [d.label for d in hidden.dims] == ["layer", "token", "feature"]
        assert list(hidden.dims[0][0][:]) == store.layers
    exported = hsstore.open(out)
    np.testing.assert_array_equal(exported.corpus("sts17").layer(1), store.corpus("sts17").layer(1))
    code, _, err = run("export", tiny_store, tmp_path / "x.h5", "--corpus", "nope", "-q")
    assert code == 1 and "nope" in err and not (tmp_path / "x.h5").exists()  # a missing corpus: missing data


def _reading_without_hs_snippets() -> list[str]:
    text = (ROOT / "docs" / "store-format.md").read_text()
    section = text.split("## Reading without hs", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


@pytest.mark.parametrize("index", range(3))
def test_reading_without_hs_snippets_run(tiny_store, index):
    """The docs' plain zarr / dask / xarray snippets run on a real store and agree with hs's reader."""
    snippets = _reading_without_hs_snippets()
    assert len(snippets) == 3
    code = snippets[index]
    for module in re.findall(r"^import (\w+)", code, flags=re.M):
        pytest.importorskip(module, reason=f"{module} is not installed (pip install -e '.[test]')")
    code = code.replace('"runs/minilm"', repr(str(tiny_store))).replace("stsb", "sts17")  # the tiny store's task
    scope: dict = {}
    exec(compile(code, f"store-format.md snippet {index}", "exec"), scope)
    expected = hsstore.open(tiny_store).corpus("sts17")
    # every snippet ends with ``states``: the last layer's states of the first sentence
    np.testing.assert_array_equal(np.asarray(scope["states"]), expected.hidden(0, [expected.store.layers[-1]])[0])
