"""The retrieval family: exact blocked top-k against a full sort, its metrics against pytrec_eval and mteb's
own MRR, and a BEIR-layout folder end to end through hs dump and hs eval, with and without a query template,
scored against mteb's retrieval scoring (pytrec_eval) on the same embeddings."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import pytrec_eval
from click.testing import CliRunner

import hsstore
from analysis.evaluation.families.retrieval import K_VALUES
from analysis.evaluation.retrieval import id_ranks, metrics, search
from analysis.recipes.recipe import parse_recipe
from analysis.runners.engine import Engine, find_task
from cli.main import hs
from hsstore.errors import HsError
from hsstore.tasks import get_task

MEASURES = {"ndcg": "ndcg_cut", "map": "map_cut", "recall": "recall", "precision": "P", "hit_rate": "success"}


def _unit(rng, n, dim=16):
    X = rng.standard_normal((n, dim)).astype(np.float32)
    return X / np.linalg.norm(X, axis=1, keepdims=True)


@pytest.mark.parametrize("blocks", [(256, 32768), (7, 333)], ids=["one block", "many blocks"])
def test_search_is_an_exact_top_k_with_trec_evals_tie_break(blocks):
    rng = np.random.default_rng(0)
    D, Q = _unit(rng, 1500), _unit(rng, 30)
    D[100:200] = D[:100]  # duplicate documents: exactly tied scores, across blocks
    rank = id_ranks([f"d{i}" for i in rng.permutation(len(D))])
    scores, cols = search(Q, D, 1000, rank, *blocks)
    bq, bd = blocks  # the same block products, then a full sort by (score, id rank), both descending
    S = np.vstack([np.hstack([Q[a:a + bq] @ D[b:b + bd].T for b in range(0, len(D), bd)])
                   for a in range(0, len(Q), bq)])
    for i in range(len(Q)):
        order = np.lexsort((rank, S[i]))[::-1][:1000]
        assert np.array_equal(cols[i], order) and np.array_equal(scores[i], S[i, order])
    same = np.repeat(D[:1], len(D), axis=0)  # every score tied: the cut and the order are the ids' alone
    assert np.array_equal(search(Q[:3], same, 1000, rank, *blocks)[1], np.tile(np.argsort(rank)[::-1][:1000], (3, 1)))
    short = search(Q, D[:5], 1000, rank[:5])[1]  # fewer documents than k: all of them, ranked
    assert short.shape == (30, 5) and all(sorted(r) == list(range(5)) for r in short)


def _pytrec(qrels: dict, run: dict) -> dict:
    ks = ",".join(map(str, K_VALUES))
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {f"{m}.{ks}" for m in MEASURES.values()})
    return evaluator.evaluate(run)


def test_metrics_equal_pytrec_eval_and_mtebs_mrr():
    from mteb._evaluators.retrieval_metrics import mrr

    rng = np.random.default_rng(1)
    D, Q = _unit(rng, 1200), _unit(rng, 40)
    D[50:60] = D[:10]
    ids = [f"doc{i}" for i in rng.permutation(len(D))]
    scores, cols = search(Q, D, 1000, id_ranks(ids))
    judged = [(i, int(j), int(rng.integers(0, 4))) for i in range(len(Q)) for j in rng.choice(len(D), 6, replace=False)]
    judged += [(i, int(cols[i, 2]), 2) for i in range(0, len(Q), 3)]  # some relevant documents near the top
    judged = list({(i, j): (i, j, r) for i, j, r in judged}.values())
    judged += [(len(Q) - 1, j, 0) for j in range(3) if (len(Q) - 1, j) not in {(a, b) for a, b, _ in judged}]
    arrays = tuple(np.array(c) for c in zip(*judged))
    ours = metrics(cols, arrays, len(Q), len(D))
    qrels: dict = {}
    for i, j, r in judged:
        qrels.setdefault(f"q{i}", {})[ids[j]] = r
    run = {f"q{i}": {ids[j]: float(s) for j, s in zip(cols[i], scores[i])} for i in range(len(Q))}
    theirs = _pytrec(qrels, run)
    for k in K_VALUES:
        for name, measure in MEASURES.items():
            expected = 100 * np.mean([theirs[f"q{i}"][f"{measure}_{k}"] for i in range(len(Q))])
            assert ours[f"{name}_at_{k}"] == pytest.approx(expected, abs=1e-9), (name, k)
    their_mrr = mrr(qrels, run, K_VALUES)
    for k in K_VALUES:
        assert ours[f"mrr_at_{k}"] == pytest.approx(100 * np.mean(their_mrr[f"MRR@{k}"]), abs=1e-9)
    assert 0 < ours["ndcg_at_10"] < 100


# ---- a BEIR folder end to end ---------------------------------------------------------------------

def write_beir(root: Path, n_docs: int = 60, n_queries: int = 15) -> dict:
    """A small BEIR-layout folder of WikiText-2 sentences: every few documents long (the tiny model
    truncates them at 64 tokens) or titled; each query a few words of its relevant document."""
    texts = get_task("wikitext2").texts()
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    docs = {f"d{i}": (("Title " if i % 4 == 0 else ""), texts[i] + (" " + texts[i + 200]) * (6 if i % 5 == 0 else 0))
            for i in range(n_docs)}
    with open(root / "corpus.jsonl", "w") as fh:
        for did, (title, text) in docs.items():
            fh.write(json.dumps({"_id": did, "title": title.strip(), "text": text}) + "\n")
    queries = {f"q{i}": " ".join(texts[i].split()[2:9]) + " ?" for i in range(n_queries + 3)}  # 3 never judged
    with open(root / "queries.jsonl", "w") as fh:
        for qid, text in queries.items():
            fh.write(json.dumps({"_id": qid, "text": text}) + "\n")
    qrels = {f"q{i}": {f"d{i}": 1, **({f"d{i + 30}": 2} if i % 3 == 0 else {}), **({"d59": 0} if i == 1 else {})}
             for i in range(n_queries)}
    with open(root / "qrels" / "test.tsv", "w") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        for qid, rels in qrels.items():
            for did, rel in rels.items():
                fh.write(f"{qid}\t{did}\t{rel}\n")
    return {"docs": {d: (t + " " + x).strip() for d, (t, x) in docs.items()}, "queries": queries, "qrels": qrels}


@pytest.fixture(scope="module")
def beir_store(tmp_path_factory, tiny_model):
    root = tmp_path_factory.mktemp("beir") / "wikiqa"
    data = write_beir(root)
    out = tmp_path_factory.mktemp("stores") / "beir"
    result = CliRunner().invoke(hs, ["dump", "--model", str(tiny_model), "--task-file", str(root),
                                     "--template", "none", "--template", "Find the passage for : [X]",
                                     "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    return out, data, root


def _mteb_scores(Q: np.ndarray, D: np.ndarray, data: dict, doc_ids: list[str], query_ids: list[str]) -> dict:
    """mteb's retrieval scoring (pytrec_eval and its MRR) of a cosine ranking computed here in float64."""
    from mteb._evaluators.retrieval_metrics import calculate_retrieval_scores

    Qn = Q / np.linalg.norm(Q, axis=1, keepdims=True)
    Dn = D / np.linalg.norm(D, axis=1, keepdims=True)
    S = Qn.astype(np.float64) @ Dn.astype(np.float64).T
    run = {q: {d: float(s) for d, s in zip(doc_ids, row)} for q, row in zip(query_ids, S)}
    return calculate_retrieval_scores(run, data["qrels"], list(K_VALUES))


def test_a_beir_folder_evaluates_end_to_end(beir_store, tmp_path):
    out, data, root = beir_store
    store = hsstore.open(out)
    corpus = store.corpus("wikiqa")
    source = corpus.attrs["source"]
    assert source["task"]["family"] == "retrieval" and source["task"]["file"] == str(root)
    # the dump counted the documents cut at the tiny model's 64 tokens, with the tokenizer's own count
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(store.model["name"])
    long_docs = sum(len(tok(t)["input_ids"]) > 64 for t in data["docs"].values())
    assert source["truncated"] == {"queries": 0, "documents": long_docs} and long_docs >= 10

    result = CliRunner().invoke(hs, ["eval", str(out), "-t", "wikiqa", "-r", "layers=last;pool=mean", "-q",
                                     "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    (record,) = json.loads((tmp_path / "r.json").read_text())
    scores = record["scores"]["test"][0]
    assert record["task"]["identity"] == source["task"]["identity"]
    assert scores["main_score"] == scores["ndcg_at_10"] and scores["documents_truncated"] == long_docs
    assert scores["queries"] == 15 and scores["documents"] == 60

    task = find_task(store, "wikiqa")
    part = task.retrieval()
    X = Engine(store).embed("wikiqa", parse_recipe("layers=last;pool=mean"))
    Q = X[corpus.ids_of(t for _, t in part.queries)]
    D = X[corpus.ids_of(t for _, t in part.documents)]
    theirs = _mteb_scores(Q, D, data, [d for d, _ in part.documents], [q for q, _ in part.queries])
    assert [q for q, _ in part.queries] == list(data["qrels"])  # the unjudged queries are left out
    for k in K_VALUES:  # mteb rounds its averages to 5 decimals
        assert scores[f"ndcg_at_{k}"] == pytest.approx(theirs.ndcg[f"NDCG@{k}"], abs=1e-5)
        assert scores[f"map_at_{k}"] == pytest.approx(theirs.map[f"MAP@{k}"], abs=1e-5)
        assert scores[f"recall_at_{k}"] == pytest.approx(theirs.recall[f"Recall@{k}"], abs=1e-5)
        assert scores[f"precision_at_{k}"] == pytest.approx(theirs.precision[f"P@{k}"], abs=1e-5)
        assert scores[f"mrr_at_{k}"] == pytest.approx(theirs.mrr[f"MRR@{k}"], abs=1e-9)
    assert 0 < scores["ndcg_at_10"] < 1

    report = CliRunner().invoke(hs, ["report", str(tmp_path / "r.json"), "--out", str(tmp_path / "rep")])
    assert report.exit_code == 0, report.output
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "### retrieval (nDCG@10 x100" in text and "wikiqa" in text


def test_a_query_template_wraps_the_queries_only(beir_store):
    """view=prompt on a retrieval task: the queries from <task>~T (their templated states), the documents as
    stored; the queries' vectors equal a forward pass of the templated query, the scores pytrec_eval's."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    out, data, _ = beir_store
    store = hsstore.open(out)
    (variant,) = [c for c in store.corpora if c.startswith("wikiqa~") and not c.endswith("~empty")]
    template = variant.split("~")[1]
    assert store.corpus(variant).n_sentences == len(data["qrels"])  # queries only: the documents are not templated
    assert store.corpus(variant).attrs["source"]["templated"] == "queries"
    task = find_task(store, "wikiqa")
    engine = Engine(store)
    recipe = parse_recipe(f"view=prompt:template={template};pool=mean;drop=special+template")
    (docs_corpus, plain), (queries_corpus, _) = engine.inputs(task, recipe)
    assert (docs_corpus, queries_corpus) == ("wikiqa", variant) and str(plain.view[0]) == "ctx"
    result = engine.evaluate(task, recipe)
    part = task.retrieval()
    Q = engine.embed(variant, plain)[store.corpus(variant).ids_of(t for _, t in part.queries)]

    path = store.model["name"]
    tok, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    for i, (_, text) in enumerate(part.queries[:5]):  # the sentence's own tokens inside the template
        enc = tok("Find the passage for : " + text, return_tensors="pt")
        with torch.no_grad():
            last = model(**enc).last_hidden_state[0].numpy()
        n_prefix = 1 + len(tok("Find the passage for :", add_special_tokens=False)["input_ids"])
        np.testing.assert_allclose(Q[i], last[n_prefix:-1].mean(axis=0), rtol=0, atol=5e-3)
    D = engine.embed("wikiqa", plain)[store.corpus("wikiqa").ids_of(t for _, t in part.documents)]
    theirs = _mteb_scores(Q, D, data, [d for d, _ in part.documents], [q for q, _ in part.queries])
    assert result.scores["ndcg_at_10"] / 100 == pytest.approx(theirs.ndcg["NDCG@10"], abs=1e-5)
    plain_result = engine.evaluate(task, parse_recipe("pool=mean;drop=special"))
    assert plain_result.main_score != result.main_score  # the template changed the queries

    runner = CliRunner()
    mix = runner.invoke(hs, ["eval", str(out), "-t", "wikiqa", "-q", "-r", f"view=ctx*0.5+prompt:template={template}"])
    assert mix.exit_code == 2 and "view=prompt must be the only view" in mix.output
    mask = runner.invoke(hs, ["eval", str(out), "-t", "wikiqa", "-q", "-r", f"view=prompt:template={template};pool=mask"])
    assert mask.exit_code == 2 and "no read-out slot" in mask.output
    with pytest.raises(HsError, match="has nothing after \\[X\\]"):  # an instruction template has no read-out slot
        engine.embed(variant, parse_recipe("pool=mask"))
    missing = runner.invoke(hs, ["eval", str(out), "-t", "wikiqa", "-q", "-r", "view=prompt:template=promptbert"])
    assert missing.exit_code == 2 and "wikiqa~promptbert" in missing.output and missing.output.count("\n") == 1
