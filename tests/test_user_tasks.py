"""A user's own task files: read for every family, bad files refused in one line naming file, line and column,
stored with their corpus under a content hash that every key and record carries, and evaluated end to end
from the store alone (the file gone), against scipy and scikit-learn on the same vectors."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import hsstore
from analysis.evaluation import classification
from analysis.evaluation.registry import families
from analysis.recipes.recipe import parse_recipe
from analysis.runners.engine import Engine, find_task, store_tasks
from cli.main import hs
from hsstore.errors import HsError
from hsstore.tasks import get_task
from hsstore.tasks import taskfile
from hsstore.tasks.taskfile import FAMILIES, read_task_file


def sts_rows(n: int = 40) -> list[dict]:
    return get_task("sts17").records()[:n]


def write_sts(path: Path, rows: list[dict]) -> Path:
    sep = "\t" if path.suffix == ".tsv" else ","
    lines = [sep.join(["text1", "text2", "score"])]
    for r in rows:
        a, b = (r["text"], r["text2"]) if sep == "\t" else (json.dumps(r["text"]), json.dumps(r["text2"]))
        lines.append(sep.join([a, b, str(r["score"])]))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_every_task_file_family_is_a_registered_family():
    assert set(FAMILIES) <= set(families())


def test_families_are_read_from_tsv_csv_and_jsonl(tmp_path):
    rows = sts_rows(12)
    tsv, csv_ = write_sts(tmp_path / "pairs.tsv", rows), write_sts(tmp_path / "pairs.csv", rows)
    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text("".join(json.dumps({"text1": r["text"], "text2": r["text2"], "score": r["score"]}) + "\n"
                             for r in rows))
    tasks = [read_task_file(p) for p in (tsv, csv_, jsonl)]
    assert all(t.family == "sts" and t.id == "pairs" for t in tasks)
    assert tasks[0].records() == tasks[1].records() == tasks[2].records()
    assert tasks[0].identity == tasks[1].identity == tasks[2].identity  # the content, not the file's bytes
    assert [r["score"] for r in tasks[0].records()] == [r["score"] for r in rows]
    labelled = tmp_path / "intents.tsv"
    intents = [(f"book flight {i}", "travel") for i in range(10)] + [(f"play song {i}", "music") for i in range(10)]
    labelled.write_text("text\tlabel\tsplit\n" + "".join(f"{t}\t{y}\t{'test' if i % 2 else 'train'}\n"
                                                        for i, (t, y) in enumerate(intents)))
    task = read_task_file(labelled)
    assert (task.family, task.protocol, task.splits) == ("classification", "split", ("train", "test"))
    labelled.write_text("text\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in intents))
    assert read_task_file(labelled, family="classification").protocol == "cv"
    assert read_task_file(labelled, family="clustering").family == "clustering"
    assert taskfile.OUTER_FOLDS == classification.OUTER_FOLDS and taskfile.INNER_FOLDS == classification.INNER_FOLDS
    labelled.write_text("text\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in intents[:13]))
    with pytest.raises(HsError, match="label 'music' has 3 rows; cross-validated classification needs at least 10"):
        read_task_file(labelled, family="classification")
    pairs = tmp_path / "para.tsv"
    pairs.write_text("text1\ttext2\tlabel\na cat\ta kitten\t1\na cat\ta car\t0\n")
    assert read_task_file(pairs).family == "pair-classification"


@pytest.mark.parametrize("name, content, message", [
    ("a.tsv", "text1\ttext2\n x\ty\n", "a.tsv line 1: columns text1, text2 say no task family"),
    ("a.tsv", "text1\ttext2\tscore\nx\ty\t3\nx\tz\tn/a\n", "a.tsv line 3, column 'score': 'n/a' is not a number"),
    ("a.tsv", "text1\ttext2\tscore\nx\ty\t3\nx\t \t1\n", "a.tsv line 3, column 'text2': empty text"),
    ("a.tsv", "text1\ttext2\tscore\nx\ty\t3\tz\n", "a.tsv line 2: 4 fields, the header has 3"),
    ("a.tsv", "text1\ttext2\tscore\nx\ty\tinf\n", "a.tsv line 2, column 'score': 'inf' is not a finite number"),
    ("a.tsv", "text1\ttext2\tscore\nx\ty\t3\nx\tz\t3\n", "every pair has the same score"),
    ("a.csv", 'text1,text2,score\n"x,y,3\n', "a.csv line"),
    ("a.jsonl", '{"text1": "x", "text2": "y", "score": 1}\n{"text1": "x", "text2": "z"}\n',
     "a.jsonl line 2, column 'score': missing"),
    ("a.jsonl", '{"text1": "x", "text2": "y", "score": 1}\n{"text1": "x", "text2": 5, "score": 2}\n',
     "a.jsonl line 2, column 'text2': 5 is not a string"),
    ("a.jsonl", '{"text1": "x", "text2": "y", "score": 1}\n{"text1": "x", "text2": "z", "score": 2\n',
     "a.jsonl line 2, column 40: not valid JSON"),
    ("a.tsv", "text\tlabel\tsplit\nx\tA\ttrain\ny\t\ttest\n", "a.tsv line 3, column 'label': empty label"),
    ("a.tsv", "text\tlabel\tsplit\nx\tA\ttrain\ny\tB\tvalidation\n",
     "a.tsv line 3, column 'split': split 'validation' is not one of train, dev, test"),
    ("a.tsv", "text\tlabel\tsplit\nx\tA\ttrain\ny\tB\ttrain\n", "no row of split test"),
    ("a.tsv", "text\tlabel\nx\tA\ny\tB\n", "pass --task-family classification (cross-validated) or --task-family"),
    ("a.tsv", "text\tlabel\tsplit\n" + "".join(f"x{i}\t{'AB'[i % 2]}\t{'train' if i < 12 else 'test'}\n"
                                                for i in range(13)) + "y\tC\ttrain\n",
     "label 'C' has 1 train rows; the choice of C on train (no dev rows) needs at least 5 of every label"),
    ("a.tsv", "text1\ttext2\tlabel\nx\ty\t1\nx\tz\t2\n", "a.tsv line 3, column 'label': label '2' is not 0 or 1"),
    ("a.tsv", "text1\ttext2\tlabel\nx\ty\t1\nx\tz\t1\n", "pair classification needs matches (1) and non-matches"),
    ("stsb.tsv", "text1\ttext2\tscore\nx\ty\t3\nx\tz\t1\n", "task name 'stsb' is a bundled task's"),
    ("a.txt", "x\n", "give a .tsv, .csv or .jsonl table"),
])
def test_bad_task_files_name_the_file_line_and_column(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    result = CliRunner().invoke(hs, ["dump", "--task-file", str(path), "--out", str(tmp_path / "store")])
    assert result.exit_code == 2 and result.output.startswith("hs: error: ") and result.output.count("\n") == 1, \
        result.output
    assert message in result.output and str(path) in result.output, result.output
    assert not (tmp_path / "store").exists()  # refused before anything is written or loaded


def _beir(root: Path, qrels: str, corpus: str | None = None, queries: str | None = None) -> Path:
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    (root / "corpus.jsonl").write_text(corpus or '{"_id": "d1", "text": "a cat"}\n{"_id": "d2", "text": "a dog"}\n')
    (root / "queries.jsonl").write_text(queries or '{"_id": "q1", "text": "cats"}\n')
    (root / "qrels" / "test.tsv").write_text(qrels)
    return root


@pytest.mark.parametrize("qrels, corpus, queries, message", [
    ("query-id\tcorpus-id\tscore\nq1\td9\t1\n", None, None,
     "test.tsv line 2, column 'corpus-id': 'd9' is no document of"),
    ("query-id\tcorpus-id\tscore\nq7\td1\t1\n", None, None, "test.tsv line 2, column 'query-id': 'q7' is no query of"),
    ("query-id\tcorpus-id\tscore\nq1\td1\t1.5\n", None, None,
     "test.tsv line 2, column 'score': relevance '1.5' is not a whole number"),
    ("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td1\t2\n", None, None, "already judges this document on line 2"),
    ("query-id\tcorpus-id\tscore\nq1\td1\t0\n", None, None, "no judgment marks a document relevant"),
    ("q1\td1\t1\n", '{"_id": "d1", "text": "a"}\n{"_id": "d1", "text": "b"}\n', None,
     "corpus.jsonl line 2, column '_id': 'd1' is already the id of line 1"),
    ("q1\td1\t1\n", '{"_id": "d1", "title": "", "text": " "}\n', None, "corpus.jsonl line 1, column 'text': empty text"),
    ("q1\td1\t1\n", None, '{"id": "q1", "text": "x"}\n', "queries.jsonl line 1, column '_id': missing"),
])
def test_bad_beir_folders_name_the_file_line_and_column(tmp_path, qrels, corpus, queries, message):
    root = _beir(tmp_path / "mine", qrels, corpus, queries)
    with pytest.raises(HsError, match=None) as exc:
        read_task_file(root)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_a_beir_folder_without_a_test_split_needs_its_qrels_file(tmp_path):
    root = _beir(tmp_path / "mine", "q1\td1\t1\n")  # no header line: the first judgment is kept
    assert read_task_file(root).retrieval().qrels == (("q1", "d1", 1),)
    (root / "qrels" / "test.tsv").rename(root / "qrels" / "dev.tsv")
    (root / "qrels" / "train.tsv").write_text("q1\td2\t1\n")
    with pytest.raises(HsError, match="give the split's file"):
        read_task_file(root)
    task = read_task_file(root / "qrels" / "dev.tsv")
    assert (task.id, task.splits) == ("mine-dev", ("dev",))
    assert task.retrieval().documents == (("d1", "a cat"), ("d2", "a dog"))


# ---- end to end -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def user_store(tmp_path_factory, tiny_model):
    """A store of the tiny model holding four task files (STS, classification by CV, clustering, pairs),
    whose files are then deleted: evaluation needs the store alone."""
    folder = tmp_path_factory.mktemp("tasks")
    write_sts(folder / "mypairs.tsv", sts_rows())
    trec = get_task("trec").records()
    labelled = [r for r in trec if r["split"] == "test"][:120]
    (folder / "questions.csv").write_text("text,label\n" + "".join(f"{json.dumps(r['text'])},{r['label']}\n"
                                                                   for r in labelled))
    (folder / "topics.jsonl").write_text("".join(json.dumps({"text": r["text"], "label": r["label"]}) + "\n"
                                                 for r in labelled[:80]))
    mrpc = [r for r in get_task("mrpc").records() if r["split"] == "test"][:60]
    (folder / "para.tsv").write_text("text1\ttext2\tlabel\n" + "".join(f"{r['text']}\t{r['text2']}\t{r['label']}\n"
                                                                       for r in mrpc))
    out = tmp_path_factory.mktemp("stores") / "user"
    runner = CliRunner()
    for path, extra in ((folder / "mypairs.tsv", []), (folder / "questions.csv", ["--task-family", "classification"]),
                        (folder / "topics.jsonl", ["--task-family", "clustering"]), (folder / "para.tsv", [])):
        result = runner.invoke(hs, ["dump", "--model", str(tiny_model), "--task-file", str(path), *extra,
                                    "--out", str(out), "-q"])
        assert result.exit_code == 0, result.output
    copy = tmp_path_factory.mktemp("kept")
    for p in folder.iterdir():
        shutil.move(p, copy / p.name)
    return out, copy


def test_an_sts_file_evaluates_end_to_end_from_the_store_alone(user_store, tmp_path):
    from scipy.stats import spearmanr

    out, files = user_store
    runner = CliRunner()
    listing = runner.invoke(hs, ["tasks", str(out)], terminal_width=300)
    assert listing.exit_code == 0
    line = next(ln for ln in listing.output.splitlines() if ln.startswith("mypairs "))
    assert "sts" in line and " 40 " in line and "mypairs.tsv" in line and "task identity" in line
    assert "stsb" in listing.output  # beside the bundled ones

    result = runner.invoke(hs, ["eval", str(out), "-t", "mypairs", "-r", "layers=first-last;pool=mean", "-q",
                                "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    (record,) = json.loads((tmp_path / "r.json").read_text())
    store = hsstore.open(out)
    corpus = store.corpus("mypairs")
    recorded = corpus.attrs["source"]["task"]
    task = read_task_file(files / "mypairs.tsv")
    assert record["task"] == {"family": "sts", "identity": task.identity, "origin": recorded["file"]}
    assert recorded["identity"] == task.identity and recorded["rows"] == 40
    X = Engine(store).embed("mypairs", parse_recipe("layers=first-last;pool=mean"))
    rows = sts_rows()
    A, B = X[corpus.ids_of(r["text"] for r in rows)], X[corpus.ids_of(r["text2"] for r in rows)]
    cos = np.einsum("ij,ij->i", A, B) / np.linalg.norm(A, axis=1) / np.linalg.norm(B, axis=1)
    expected = spearmanr(cos, [r["score"] for r in rows]).statistic
    assert record["scores"]["test"][0]["main_score"] == pytest.approx(expected, abs=1e-9)
    report = runner.invoke(hs, ["report", str(tmp_path / "r.json"), "--out", str(tmp_path / "rep")])
    assert report.exit_code == 0, report.output
    assert "| mypairs |" in (tmp_path / "rep" / "report.md").read_text().replace("| mypairs | mean |", "| mypairs |")
    other = {**record, "recipe": "layers=last;pool=mean", "task": {**record["task"], "identity": "0" * 16}}
    (tmp_path / "other.json").write_text(json.dumps([other]))  # the same task name, another file's data
    mixed = runner.invoke(hs, ["report", str(tmp_path / "r.json"), str(tmp_path / "other.json"), "--out",
                               str(tmp_path / "rep2")])
    assert mixed.exit_code == 2 and "was evaluated on different data" in mixed.output, mixed.output


def test_the_other_families_evaluate_from_their_files(user_store):
    from sklearn.metrics import average_precision_score

    out, _ = user_store
    store = hsstore.open(out)
    tasks = {t.id: t for t in store_tasks(store)}
    assert {t: tasks[t].family for t in tasks} == {"mypairs": "sts", "questions": "classification",
                                                   "topics": "clustering", "para": "pair-classification"}
    engine = Engine(store, {"classification": "probe", "seeds": 2})
    recipe = parse_recipe("pool=mean")
    results = {r.task.id: r for r in engine.run(list(tasks.values()), [recipe], progress=False)}
    assert tasks["questions"].protocol == "cv" and 0 < results["questions"].main_score <= 100
    assert 0 <= results["topics"].main_score <= 100
    X = engine.embed("para", recipe)
    corpus = store.corpus("para")
    recs = tasks["para"].records()
    A, B = X[corpus.ids_of(r["text"] for r in recs)], X[corpus.ids_of(r["text2"] for r in recs)]
    cos = np.einsum("ij,ij->i", A, B) / np.linalg.norm(A, axis=1) / np.linalg.norm(B, axis=1)
    expected = 100 * average_precision_score([r["label"] for r in recs], cos)
    assert results["para"].scores["cosine_ap"] == pytest.approx(expected, abs=1e-9)


def test_a_changed_task_file_is_never_the_old_task(user_store, tmp_path, tiny_model):
    """The identity is in the corpus's fingerprint (so in every pooled-matrix key and the study's run key)
    and in the records: a changed file under the old name is refused; under a new name it is a new corpus."""
    out, files = user_store
    changed = tmp_path / "mypairs.tsv"
    rows = sts_rows()
    rows[0] = {**rows[0], "score": rows[0]["score"] + 1.0}
    write_sts(changed, rows)
    runner = CliRunner()
    refused = runner.invoke(hs, ["dump", "--model", str(tiny_model), "--task-file", str(changed), "--out", str(out),
                                 "-q"])
    assert refused.exit_code == 2 and "other texts, settings or task definition" in refused.output
    again = runner.invoke(hs, ["dump", "--model", str(tiny_model), "--task-file", str(files / "mypairs.tsv"),
                               "--out", str(out)])  # without -q: its 'already in' line is informational
    assert again.exit_code == 0 and "already in" in again.output  # the same file: nothing to do
    renamed = runner.invoke(hs, ["dump", "--model", str(tiny_model), "--task-file", str(changed), "--task-name",
                                 "mypairs2", "--out", str(out), "-q"])
    assert renamed.exit_code == 0, renamed.output
    store = hsstore.open(out)
    old, new = store.corpus("mypairs"), store.corpus("mypairs2")
    assert old.texts == new.texts and old.fingerprint != new.fingerprint
    assert find_task(store, "mypairs").identity != find_task(store, "mypairs2").identity


def test_a_damaged_stored_definition_is_an_error_never_a_figure(user_store, tmp_path):
    """Stored lines that no longer hash to the recorded identity (edited, or their chunk replaced by a valid
    one) are refused when the task is read."""
    import zarr

    out, _ = user_store
    copy = tmp_path / "store"
    shutil.copytree(out, copy)
    group = zarr.open_group(str(copy / "corpora" / "mypairs" / "task"), mode="r+")
    lines = hsstore.open(copy).corpus("mypairs").task_lines()
    at = lines[1].index('"score":') + len('"score":')
    digit = lines[1][at]
    lines[1] = lines[1][:at] + str((int(digit) + 1) % 10) + lines[1][at + 1:]  # another gold score, same length
    from hsstore.format.layout import encode_strings

    group["bytes"][:] = encode_strings(lines)[0]  # a valid chunk of other bytes
    result = CliRunner().invoke(hs, ["eval", str(copy), "-t", "mypairs", "-q"])
    assert result.exit_code == 1 and result.output.startswith("hs: error: ") and result.output.count("\n") == 1
    assert "does not match the identity its corpus records" in result.output or "manifest" in result.output


def test_the_definition_travels_with_the_store(user_store, tmp_path, tiny_model):
    """hs verify --deep checks the stored definition; an HDF5 export and a sharded dump carry it."""
    out, files = user_store
    runner = CliRunner()
    verified = runner.invoke(hs, ["verify", str(out), "--corpus", "mypairs", "--deep"])
    assert verified.exit_code == 0, verified.output
    manifest = hsstore.open(out).corpus("mypairs").attrs["manifest"]
    assert {"task/bytes", "task/offsets"} <= set(manifest)
    exported = runner.invoke(hs, ["export", str(out), str(tmp_path / "s.h5"), "-c", "mypairs", "-q"])
    assert exported.exit_code == 0, exported.output
    h5 = hsstore.open(tmp_path / "s.h5")
    assert find_task(h5, "mypairs").identity == find_task(hsstore.open(out), "mypairs").identity
    sharded = tmp_path / "sharded"
    for k in (1, 2):
        result = runner.invoke(hs, ["dump", "--model", str(tiny_model), "--task-file", str(files / "mypairs.tsv"),
                                    "--shard", f"{k}/2", "--out", str(sharded), "-q"])
        assert result.exit_code == 0, result.output
    merged = runner.invoke(hs, ["merge", str(sharded)])
    assert merged.exit_code == 0, merged.output
    a, b = hsstore.open(out).corpus("mypairs"), hsstore.open(sharded).corpus("mypairs")
    assert a.fingerprint == b.fingerprint and a.task_lines() == b.task_lines()


def test_a_benchmark_task_written_as_a_task_file_scores_the_same(tiny_store, tiny_model, tmp_path):
    """STS17's pairs in a user's file: the same texts, plan and states, so the same figure as the bundled task."""
    rows = get_task("sts17").records()
    assert all(r["text"] == r["text"].strip() and r["text2"] == r["text2"].strip() for r in rows)
    path = write_sts(tmp_path / "mine17.tsv", rows)
    out = tmp_path / "store"
    result = CliRunner().invoke(hs, ["dump", "--model", str(tiny_model), "--task-file", str(path), "--batch-tokens",
                                     "1024", "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    recipe = parse_recipe("layers=first-last;pool=mean")
    bundled = Engine(hsstore.open(tiny_store)).evaluate(get_task("sts17"), recipe).main_score
    store = hsstore.open(out)
    assert Engine(store).evaluate(find_task(store, "mine17"), recipe).main_score == bundled
