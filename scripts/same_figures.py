"""Figures before and after a change that must not change them: a fixed set of recipes per task
family, run through the `hs` command line, compared field by field with a saved results file.

    python scripts/same_figures.py STORE --out after.json                      # run the set
    python scripts/same_figures.py STORE --out after.json --compare before.json  # and compare

The set covers every task family and protocol and the main code paths of the engine: each view
(contextual, RE, input, Avg., a mix, the prompt read-out with and without denoising), pooling
modes, token filters and weights from the task and from WikiText-2, every post-processor, layer
mixes and concatenation, and the diagnostics. It also renders `hs report` from the results (one
protocol per task) and compares report.md. Every score, diagnostic and report line must be equal
(exact equality of the JSON numbers); only timings, versions and paths may differ.

STORE must hold the corpora below (`--dump-command` prints the `hs dump` command that makes them
with all-MiniLM-L6-v2). Exit status 0 when everything is equal, 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STS = ["sts12", "sts13", "sts14", "sts15", "sts16", "stsb", "sickr"]
CORPORA = STS + ["wikitext2", "trec", "mrpc", "cr", "amazon-counterfactual", "tweet", "twentynewsgroups"]
# (tasks, options, recipes): every family and protocol, and the engine's paths
RUNS = [
    (STS, ["--diagnostics"], [
        "layers=last;pool=mean", "layers=first-last;pool=max", "layers=last;pool=cls", "layers=0;pool=last",
        "layers=last;drop=special;weights=idf@wikitext2", "layers=last;weights=sif@task;drop=freq:n=36",
        "layers=last;drop=punct+subword;weights=idf@task",
        "layers=last;post=whiten@wikitext2+l2", "layers=last;post=whiten:k=64@task", "layers=last;post=quantile@task",
        "layers=last;post=zscore@wikitext2", "layers=last;post=abtt:d=3@wikitext2", "layers=last;post=pca:k=32@task",
        "layers=all;combine=concat;post=abtt@task", "layers=2,4-6;pool=max;post=zscore@task",
        "view=re;pool=mean", "view=re:dim=64:seed=3;weights=idf@wikitext2", "view=input;drop=special",
        "view=avg@wikitext2;layers=last", "view=avg:fallback=zero@wikitext2;layers=first-last",
        "view=ctx*0.8+avg*0.2;layers=last", "view=ctx:layers=1*0.5+input*0.5",
        "layers=last;pool=weightedmean", "layers=last;pool=mean_sqrt_len_tokens",
    ]),
    (["stsb"], [], ["view=prompt:template=promptbert;pool=mask", "view=prompt:template=promptbert;pool=mask:denoise=yes",
                    "view=prompt:template=promptbert;drop=special+template", "view=prompt;pool=mean"]),
    (STS, ["--sts-aggregate", "wmean"], ["layers=last;pool=mean"]),
    (["trec", "mrpc", "cr"], ["--classification", "senteval"], ["layers=last;pool=mean", "layers=first-last;post=zscore@task"]),
    (["trec", "mrpc", "cr", "amazon-counterfactual"], ["--classification", "probe"],
     ["layers=last;pool=mean", "view=re;post=whiten@wikitext2"]),
    (["amazon-counterfactual"], ["--classification", "mteb"], ["layers=last;pool=mean"]),
    (["tweet"], ["--clustering", "kmeans", "--seeds", "2", "--diagnostics"], ["layers=last;pool=mean",
                                                                             "layers=last;post=whiten@wikitext2"]),
    (["twentynewsgroups"], ["--clustering", "mteb"], ["layers=last;pool=mean"]),
]
VOLATILE = {"evaluation_time", "versions"}  # what may differ between two runs of the same code
# the runs hs report reads: one protocol per task (a report refuses one recipe's two scores on a task)
REPORT_RUNS = (0, 1, 3, 5, 6, 7)


def dump_command(store: str) -> str:
    tasks = " ".join(f"--task {t}" for t in CORPORA)
    return (f"hs dump --model minilm --out {store} {tasks} && "
            f"hs dump --model minilm --out {store} --task stsb --template promptbert")


def run(store: str, out: Path) -> list[dict]:
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (tasks, options, recipes) in enumerate(RUNS):
            path = Path(tmp) / f"run{i}.json"
            cmd = [sys.executable, "-m", "cli.main", "eval", store, "-q", "--no-cache", "--json", str(path), *options,
                   *(a for t in tasks for a in ("-t", t)), *(a for r in recipes for a in ("-r", r))]
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            if proc.returncode != 0:
                sys.exit(f"hs eval failed ({' '.join(cmd[3:])}):\n{proc.stderr}")
            for rec in json.loads(path.read_text()):
                rec["run"] = {"index": i, "options": options}
                records.append(rec)
    out.write_text(json.dumps(records, indent=1) + "\n")
    return records


def report(records: list[dict]) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp, "results.json")
        results.write_text(json.dumps([r for r in records if r["run"]["index"] in REPORT_RUNS]))
        proc = subprocess.run([sys.executable, "-m", "cli.main", "report", str(results), "--out", tmp], cwd=ROOT,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"hs report failed:\n{proc.stderr}")
        return Path(tmp, "report.md").read_text()


def differences(a, b, where: str = "") -> list[str]:
    """Every place two JSON values differ (numbers compared exactly)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            if key in VOLATILE or (key == "path" and where.endswith("store")):
                continue
            if key not in a or key not in b:
                out.append(f"{where}/{key}: only in {'the new run' if key in b else 'the reference'}")
            else:
                out += differences(a[key], b[key], f"{where}/{key}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} entries against {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{where}[{i}]")]
    return [] if a == b else [f"{where}: {a!r} (reference) != {b!r} (new)"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("store")
    parser.add_argument("--out", type=Path, help="results file of this run (JSON)")
    parser.add_argument("--compare", type=Path, help="a results file written by an earlier run of this script")
    parser.add_argument("--dump-command", action="store_true", help="print the hs dump command for STORE and stop")
    args = parser.parse_args()
    if args.dump_command:
        print(dump_command(args.store))
        return 0
    out = args.out or Path(tempfile.mkdtemp()) / "figures.json"
    new = run(args.store, out)
    print(f"{len(new)} records in {out}")
    new_report = report(new)
    out.with_suffix(".report.md").write_text(new_report)
    if not args.compare:
        return 0
    ref = json.loads(args.compare.read_text())
    found = differences(ref, new)
    ref_report = args.compare.with_suffix(".report.md")
    if ref_report.exists():
        old_lines, new_lines = ref_report.read_text().splitlines(), new_report.splitlines()
        found += [f"report.md line {i + 1}: {x!r} != {y!r}" for i, (x, y) in enumerate(zip(old_lines, new_lines))
                  if x != y and "From `" not in x]
        if len(old_lines) != len(new_lines):
            found.append(f"report.md: {len(old_lines)} lines against {len(new_lines)}")
    else:
        found.append(f"{ref_report} is missing: the report was not compared")
    for line in found[:50]:
        print(line)
    print(f"{len(ref)} reference records, {len(new)} new: " + ("all figures equal" if not found else
                                                               f"{len(found)} differences"))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
