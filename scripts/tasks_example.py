"""The input files of docs/tasks.md's worked example, written from the repository's own data so that the
example's figures reproduce: a user's STS file and a BEIR-layout retrieval folder.

- ``OUT/pairs.tsv``: STS-B's 1,500 dev pairs as ``text1``, ``text2``, ``score`` (tab-separated).
- ``OUT/paraphrases/``: find a sentence's paraphrase. The documents are the second sentences of
  STS-B's test pairs; the queries are the first sentences of the pairs scored 4 or more, each judged
  relevant (1) to its own pair's second sentence (``qrels/test.tsv``).

    python scripts/tasks_example.py runs/example
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hsstore.tasks import load_dataset  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    out = ap.parse_args().out
    rows = load_dataset("stsb")
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "pairs.tsv", "w", encoding="utf-8") as fh:
        fh.write("text1\ttext2\tscore\n")
        for r in rows:
            if r["split"] == "dev":
                fh.write(f"{r['text']}\t{r['text2']}\t{r['score']}\n")
    test = [r for r in rows if r["split"] == "test"]
    root = out / "paraphrases"
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    doc_ids: dict[str, str] = {}
    with open(root / "corpus.jsonl", "w", encoding="utf-8") as fh:
        for r in test:
            if r["text2"] not in doc_ids:
                doc_ids[r["text2"]] = f"d{len(doc_ids)}"
                fh.write(json.dumps({"_id": doc_ids[r["text2"]], "title": "", "text": r["text2"]}) + "\n")
    judged = [(f"q{i}", r) for i, r in enumerate(test) if r["score"] >= 4.0]
    with open(root / "queries.jsonl", "w", encoding="utf-8") as fh:
        for qid, r in judged:
            fh.write(json.dumps({"_id": qid, "text": r["text"]}) + "\n")
    with open(root / "qrels" / "test.tsv", "w", encoding="utf-8") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        for qid, r in judged:
            fh.write(f"{qid}\t{doc_ids[r['text2']]}\t1\n")
    print(f"wrote {out / 'pairs.tsv'} (1500 pairs) and {root} ({len(doc_ids)} documents, {len(judged)} queries)")


if __name__ == "__main__":
    main()
