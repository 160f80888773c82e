"""Convert the raw benchmark files of ``../shared/data`` into ``data/*.jsonl.gz``.

Run once from the repository root (the outputs are committed; nothing at run time needs the raw
files):

    python data/convert.py --raw ../shared/data --out data

Every output is a deterministic gzip'd JSON-lines file (gzip mtime 0, sorted keys), one record a
line, with the fields ``split``, ``text`` and, where the family needs them, ``text2``, ``score``,
``label`` and ``subset``. Row counts are checked against ``hsstore.tasks.DATASETS``.
"""
from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import random
import re
import sys
from pathlib import Path

from hsstore.tasks import wikitext


def read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # SentEval reads these files as latin-1 too
    return text.replace("\r\n", "\n").replace("\r", "\n")


def lines(path: Path) -> list[str]:
    return read_text(path).split("\n")


def write(out: Path, name: str, records: list[dict]) -> None:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, compresslevel=9) as gz:
        for rec in records:
            gz.write((json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8"))
    (out / f"{name}.jsonl.gz").write_bytes(buf.getvalue())
    print(f"{name:24s} {len(records):7d} rows", file=sys.stderr)


# --- STS --------------------------------------------------------------------------------------

def sts_pairs(input_file: Path, gold_file: Path, subset: str) -> list[dict]:
    """Pairs whose gold line is non-empty (STS15/16 inputs hold unscored lines)."""
    inputs, golds = lines(input_file), lines(gold_file)
    records = []
    for i, gold in enumerate(golds):
        if not gold.strip():
            continue
        cols = inputs[i].split("\t")
        records.append({"split": "test", "subset": subset, "text": cols[0].strip(),
                        "text2": cols[1].strip(), "score": float(gold)})
    return records


def sts_year(raw: Path, year: str) -> list[dict]:
    folder = raw / "sts-raw" / year
    prefix = "STS2016" if year == "STS16" else "STS"
    records = []
    for gold in sorted(folder.glob(f"{prefix}.gs.*.txt")):
        subset = gold.name[len(prefix) + 4:-4]
        if subset == "ALL":
            continue
        inp = folder / f"{prefix}.input.{subset}.txt"
        if not inp.exists():  # STS13 SMT: input withheld upstream
            continue
        records += sts_pairs(inp, gold, subset)
    return records


def stsb(raw: Path) -> list[dict]:
    records = []
    for split in ("train", "dev", "test"):
        for line in lines(raw / "sts-raw" / "STSBenchmark" / f"sts-{split}.csv"):
            if not line.strip():
                continue
            cols = line.split("\t")
            records.append({"split": split, "subset": cols[0], "text": cols[5].strip(),
                            "text2": cols[6].strip(), "score": float(cols[4])})
    return records


def sick(raw: Path) -> list[dict]:
    records = []
    folder = raw / "senteval" / "downstream" / "SICK"
    for split, name in (("train", "SICK_train.txt"), ("dev", "SICK_trial.txt"),
                        ("test", "SICK_test_annotated.txt")):
        for line in lines(folder / name)[1:]:
            if not line.strip():
                continue
            _, a, b, score, label = line.split("\t")
            records.append({"split": split, "text": a.strip(), "text2": b.strip(),
                            "score": float(score), "label": label.strip()})
    return records


def sts17(raw: Path) -> list[dict]:
    folder = raw / "sts17"
    return sts_pairs(folder / "STS2017.eval.v1.1" / "STS.input.track5.en-en.txt",
                     folder / "STS2017.gs" / "STS.gs.track5.en-en.txt", "track5.en-en")


def biosses(raw: Path) -> list[dict]:
    rows = list(csv.DictReader(io.StringIO(read_text(raw / "biosses" / "biosses.tsv")), delimiter="\t"))
    return [{"split": "test", "text": r["sentence1"], "text2": r["sentence2"],
             "score": float(r["score_mean"])} for r in rows]


# --- classification ---------------------------------------------------------------------------

def binary_files(folder: Path, pos: str, neg: str) -> list[dict]:
    records = []
    for name, label in ((pos, 1), (neg, 0)):
        records += [{"split": "all", "text": t.strip(), "label": label}
                    for t in lines(folder / name) if t.strip()]
    return records


def sst(raw: Path, kind: str) -> list[dict]:
    records = []
    for split in ("train", "dev", "test"):
        for line in lines(raw / "senteval" / "downstream" / "SST" / kind / f"sentiment-{split}"):
            if not line.strip():
                continue
            if kind == "binary":
                text, label = line.rsplit("\t", 1)
            else:
                label, text = line.split(" ", 1)
            records.append({"split": split, "text": text.strip(), "label": int(label)})
    return records


def trec(raw: Path) -> list[dict]:
    records = []
    for split, name in (("train", "train_5500.label"), ("test", "TREC_10.label")):
        for line in lines(raw / "senteval" / "downstream" / "TREC" / name):
            if line.strip():
                label, text = line.split(" ", 1)
                records.append({"split": split, "text": text.strip(), "label": label.split(":")[0]})
    return records


def mrpc(raw: Path) -> list[dict]:
    records = []
    for split in ("train", "test"):
        for line in lines(raw / "senteval" / "downstream" / "MRPC" / f"msr_paraphrase_{split}.txt")[1:]:
            if line.strip():
                label, _, _, a, b = line.split("\t")
                records.append({"split": split, "text": a.strip(), "text2": b.strip(), "label": int(label)})
    return records


def csv_rows(path: Path, **kw) -> list[dict]:
    return list(csv.DictReader(io.StringIO(read_text(path)), **kw))


def banking77(raw: Path) -> list[dict]:
    return [{"split": split, "text": r["text"].strip(), "label": r["category"]}
            for split in ("train", "test") for r in csv_rows(raw / "banking77" / f"{split}.csv")]


def emotion(raw: Path) -> list[dict]:
    records = []
    for split, name in (("train", "train.txt"), ("dev", "val.txt"), ("test", "test.txt")):
        for line in lines(raw / "emotion" / name)[1:]:
            if line.strip():
                text, label = line.rsplit(";", 1)
                records.append({"split": split, "text": text.strip(), "label": label})
    return records


def amazon_counterfactual(raw: Path) -> list[dict]:
    return [{"split": split, "text": r["sentence"].strip(), "label": int(r["is_counterfactual"])}
            for split, name in (("train", "train"), ("dev", "valid"), ("test", "test"))
            for r in csv_rows(raw / "amazon-counterfactual" / f"EN_{name}.tsv", delimiter="\t",
                              quoting=csv.QUOTE_NONE)]


def tweet_sentiment(raw: Path) -> list[dict]:
    # The source's file names are swapped: kaggle_train.csv is the competition's test split.
    folder = raw / "tweet-sentiment-extraction"
    test = csv_rows(folder / "kaggle_train.csv")
    test_ids = {r["textID"] for r in test}
    train = [r for r in csv_rows(folder / "kaggle_test.csv") if r["textID"] not in test_ids]
    return [{"split": split, "text": r["text"].strip(), "label": r["sentiment"]}
            for split, rows in (("train", train), ("test", test)) for r in rows]


def imdb(raw: Path) -> list[dict]:
    records = []
    for split in ("train", "test"):
        with gzip.open(raw / "imdb" / f"{split}.jsonl.gz", "rt", encoding="utf-8") as fh:
            records += [{"split": split, "text": r["text"].strip(), "label": r["label"]} for r in map(json.loads, fh)]
    return records


# --- clustering -------------------------------------------------------------------------------

SCCL_FILES = {
    "agnews": "agnewsdataraw-8000", "searchsnippets": "search_snippets_true_text",
    "stackoverflow": "stackoverflow_true_text", "biomedical": "biomedical_true_text",
    "googlenews-ts": "googlenews_TS", "googlenews-t": "googlenews_T",
    "googlenews-s": "googlenews_S", "tweet": "tweet-original-order.txt",
}


def sccl(raw: Path, name: str) -> list[dict]:
    records = []
    for line in lines(raw / "sccl-short-text-clustering" / SCCL_FILES[name]):
        if line.strip():
            cols = line.split("\t")
            records.append({"split": "test", "text": cols[1].strip(), "label": cols[0].strip()})
    return records


def twentynewsgroups(raw: Path) -> list[dict]:
    records = []
    with open(raw / "twentynewsgroups-titles" / "test.jsonl", encoding="utf-8") as fh:
        for r in map(json.loads, fh):
            text = re.sub(r"^(\s*re\s*:\s*)+", "", r["text"], flags=re.I).strip()
            if text:
                records.append({"split": "test", "text": text, "label": r["label"]})
    return records


def sampled_title_sets(raw: Path, pool: str, n_sets: int = 5, seed: int = 0) -> list[dict]:
    """MTEB-like sets drawn from the TWEAC test pool: each set takes 10-50 labels at random and
    20-100 titles of each label (fewer where a label has fewer)."""
    by_label: dict[str, list[str]] = {}
    with gzip.open(raw / "reddit-stackexchange-titles" / f"{pool}_test.jsonl.gz", "rt", encoding="utf-8") as fh:
        for r in map(json.loads, fh):
            if r["text"].strip():
                by_label.setdefault(r["label"], []).append(r["text"].strip())
    rng = random.Random(seed)
    labels = sorted(by_label)
    records = []
    for s in range(n_sets):
        for label in sorted(rng.sample(labels, rng.randint(10, 50))):
            titles = by_label[label]
            for text in rng.sample(titles, min(len(titles), rng.randint(20, 100))):
                records.append({"split": "test", "subset": str(s), "text": text, "label": label})
    return records


# --- corpora ----------------------------------------------------------------------------------

def wikitext2(raw: Path) -> list[dict]:
    text = read_text(raw / "wikitext-2-raw" / "wiki.test.raw")
    return [{"split": "test", "text": s} for s in wikitext.sentences(text)]


CONVERTERS = {
    "sts12": lambda r: sts_year(r, "STS12"), "sts13": lambda r: sts_year(r, "STS13"),
    "sts14": lambda r: sts_year(r, "STS14"), "sts15": lambda r: sts_year(r, "STS15"),
    "sts16": lambda r: sts_year(r, "STS16"), "stsb": stsb, "sick": sick, "sts17": sts17,
    "biosses": biosses,
    "mr": lambda r: binary_files(r / "senteval/downstream/MR", "rt-polarity.pos", "rt-polarity.neg"),
    "cr": lambda r: binary_files(r / "senteval/downstream/CR", "custrev.pos", "custrev.neg"),
    "subj": lambda r: binary_files(r / "senteval/downstream/SUBJ", "subj.subjective", "subj.objective"),
    "mpqa": lambda r: binary_files(r / "senteval/downstream/MPQA", "mpqa.pos", "mpqa.neg"),
    "sst2": lambda r: sst(r, "binary"), "sst5": lambda r: sst(r, "fine"), "trec": trec, "mrpc": mrpc,
    "banking77": banking77, "emotion": emotion, "amazon-counterfactual": amazon_counterfactual,
    "tweet-sentiment": tweet_sentiment, "imdb": imdb,
    **{name: (lambda r, n=name: sccl(r, n)) for name in SCCL_FILES},
    "twentynewsgroups": twentynewsgroups,
    "reddit": lambda r: sampled_title_sets(r, "reddit"),
    "stackexchange": lambda r: sampled_title_sets(r, "stackexchange"),
    "wikitext2": wikitext2,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--raw", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("data"))
    ap.add_argument("names", nargs="*", help="datasets to convert (default: all)")
    args = ap.parse_args()
    for name in args.names or CONVERTERS:
        write(args.out, name, CONVERTERS[name](args.raw))


if __name__ == "__main__":
    main()
