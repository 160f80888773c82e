"""The normalised benchmark files against the row counts verified in their sources' READMEs."""
from __future__ import annotations

import collections

import pytest
from click.testing import CliRunner

from cli.main import hs
from hsstore import HsError
from hsstore.tasks import DATASETS, TASKS, get_task, load_dataset


@pytest.mark.parametrize("name", sorted(n for n, d in DATASETS.items() if not d.hub_split))
def test_row_counts_per_split(name):
    counts = collections.Counter(r["split"] for r in load_dataset(name))
    assert dict(counts) == DATASETS[name].rows
    assert all(r["text"].strip() == r["text"] and r["text"] for r in load_dataset(name))


@pytest.mark.parametrize("task", sorted(t for t in TASKS if not TASKS[t].info.hub_split))
def test_every_task_has_the_fields_its_family_needs(task):
    t = TASKS[task]
    recs = t.records()
    assert recs, task
    pairs = {"text", "text2", "label"}
    need = {"sts": {"text", "text2", "score"}, "pair-trained": pairs, "pair-classification": pairs,
            "classification": {"text", "label"}, "clustering": {"text", "label"}, "corpus": {"text"}}[t.family]
    assert all(need <= r.keys() for r in recs)


def test_known_facts_of_the_sources():
    sts12 = collections.Counter(r["subset"] for r in get_task("sts12").records())
    assert sts12 == {"MSRpar": 750, "MSRvid": 750, "SMTeuroparl": 459, "surprise.OnWN": 750, "surprise.SMTnews": 399}
    assert len(get_task("sickr").records()) == 4927 and len(get_task("sickr-full").records()) == 9927
    first = get_task("sts17").records()[0]
    assert (first["text"], first["text2"], first["score"]) == (
        "A person is on a baseball team.", "A person is playing basketball on a team.", 2.4)
    # original cased text of the raw releases, as MTEB uses
    assert get_task("sts12").records()[0]["text"].startswith("The problem likely will mean corrective changes")
    labels = {t: len({r["label"] for r in get_task(t).records()}) for t in ("banking77", "tweet", "googlenews-ts", "trec")}
    assert labels == {"banking77": 77, "tweet": 89, "googlenews-ts": 152, "trec": 6}


def test_aliases_and_unknown_names():
    assert get_task("STSBenchmark").id == "stsb"
    assert get_task("Banking77Classification").id == "banking77"
    with pytest.raises(HsError, match="hs tasks"):
        get_task("nope")


def test_texts_are_deduplicated():
    texts = get_task("stsb").texts()
    assert len(texts) == len(set(texts)) == 2552  # as stored by hs dump for the STS-B test split


def test_hs_tasks_lists_every_task():
    result = CliRunner().invoke(hs, ["tasks"])
    assert result.exit_code == 0
    for task in TASKS:
        assert f"\n{task} " in "\n" + result.output


def test_wikitext_splits_not_shipped_fail_clearly_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    load_dataset.cache_clear()
    with pytest.raises(HsError, match="--corpus-format wikitext"):
        get_task("wikitext2-train").texts()


def test_wikitext_raw_file_reader(tmp_path):
    from hsstore.tasks.corpusfile import read_corpus_file
    from hsstore.tasks.wikitext import sentences

    raw = " = Title = \n \n The 1 @,@ 000 @-@ tonne ship sank . It was 3 @.@ 5 km long . \n = = Part = = \n More text here .\n"
    assert sentences(raw) == ["The 1,000-tonne ship sank .", "It was 3.5 km long .", "More text here ."]
    path = tmp_path / "wiki.train.raw"
    path.write_text(raw)
    assert read_corpus_file(path, fmt="wikitext") == sentences(raw)
