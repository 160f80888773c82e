"""The task registry: which benchmark files exist, what each task evaluates, where they came from.

A *dataset* is one normalised file ``data/<name>.jsonl.gz`` (written by ``data/convert.py``); a
*task* is an evaluation over some splits of a dataset. Several tasks may share a dataset (SICK
serves ``sickr``, ``sickr-full`` and ``sicke``). The store keeps one corpus per task, named by the
task id, holding the deduplicated texts the task needs.
"""
from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass, field
from functools import lru_cache

from hsstore.errors import HsError
from hsstore.paths import data_dir

from .wikitext import fetch_split

SENTEVAL = "SentEval data (GitHub yan-soares/research_embeddings_fine_tuning@045c5e9, data/downstream)"
STS_RAW = "original STS releases (GitHub amao0o0/SynWMD@59042a9)"
SCCL = "SCCL short-text sets (GitHub rashadulrakib/short-text-clustering-enhancement@f363b66)"
TWEAC = "TWEAC titles (GitHub UKPLab/TWEAC-qa-agent-selection@ed4f0ca), test pool"


@dataclass(frozen=True)
class Dataset:
    name: str
    source: str
    licence: str
    rows: dict[str, int]  # verified rows per split (or per file) after conversion; {} if not shipped
    note: str = ""
    hub_split: str = ""  # not in data/: a WikiText-2 split fetched from the hub when asked for


DATASETS = {d.name: d for d in [
    Dataset("sts12", STS_RAW, "per source (STS 2012 readme)", {"test": 3108}),
    Dataset("sts13", STS_RAW, "per source (STS 2013 readme)", {"test": 1500},
            "SMT subset withheld upstream"),
    Dataset("sts14", STS_RAW, "per source (STS 2014 readme)", {"test": 3750}),
    Dataset("sts15", STS_RAW, "per source; answers-forums CC BY-SA 3.0", {"test": 3000},
            "unscored input lines skipped"),
    Dataset("sts16", STS_RAW, "per source (STS 2016 LICENSE.txt)", {"test": 1186},
            "unscored input lines skipped"),
    Dataset("stsb", STS_RAW, "scores CC BY-SA 4.0, text per source", {"train": 5749, "dev": 1500, "test": 1379}),
    Dataset("sick", SENTEVAL, "CC BY-NC-SA 3.0", {"train": 4500, "dev": 500, "test": 4927},
            "dev is SICK's trial split"),
    Dataset("sts17", "SemEval-2017 Task 1 release (GitHub eduardofv/sts_eval@b4cd273)", "CC BY-SA 4.0",
            {"test": 250}, "track 5, en-en"),
    Dataset("biosses", "GitHub gizemsogancioglu/biosses@381b240", "GPL-3.0", {"test": 100},
            "score = mean of 5 annotators"),
    Dataset("mr", SENTEVAL, "research use (Pang & Lee)", {"all": 10662}),
    Dataset("cr", SENTEVAL, "research use (Hu & Liu)", {"all": 3771}, "4 blank lines of 3775 dropped"),
    Dataset("subj", SENTEVAL, "research use (Pang & Lee)", {"all": 10000}),
    Dataset("mpqa", SENTEVAL, "research use (MPQA)", {"all": 10603}, "3 blank lines of 10606 dropped"),
    Dataset("sst2", SENTEVAL, "research use (SST)", {"train": 67349, "dev": 872, "test": 1821}),
    Dataset("sst5", SENTEVAL, "research use (SST)", {"train": 8544, "dev": 1101, "test": 2210}),
    Dataset("trec", SENTEVAL, "research use (TREC)", {"train": 5452, "test": 500}, "coarse labels (6)"),
    Dataset("mrpc", SENTEVAL, "Microsoft Research licence", {"train": 4076, "test": 1725}),
    Dataset("banking77", "GitHub PolyAI-LDN/task-specific-datasets@57ec275", "CC BY 4.0",
            {"train": 10003, "test": 3080}),
    Dataset("emotion", "GitHub niuzaisheng/AttExplainer@fc8080f (dair-ai emotion)", "research use",
            {"train": 16000, "dev": 2000, "test": 2000}),
    Dataset("amazon-counterfactual", "GitHub amazon-science/amazon-multilingual-counterfactual-dataset@3cc7de4",
            "CC BY-NC 4.0", {"train": 4018, "dev": 335, "test": 670}, "English (EN) files"),
    Dataset("tweet-sentiment", "GitHub spence998/Tweet-Sentiment-Predictor@01759f9 (Kaggle 2020)",
            "Kaggle competition terms", {"train": 27480, "test": 3534}),
    Dataset("imdb", "aclImdb v1 (GitHub PVidyadhar/Detection-of-Fraud-apps-using-Sentiment-Analysis@81406d5)",
            "research use; cite Maas et al. 2011", {"train": 25000, "test": 25000}),
    Dataset("agnews", SCCL, "none stated", {"test": 8000}),
    Dataset("searchsnippets", SCCL, "none stated", {"test": 12340}),
    Dataset("stackoverflow", SCCL, "none stated", {"test": 20000}),
    Dataset("biomedical", SCCL, "none stated", {"test": 20000}),
    Dataset("googlenews-ts", SCCL, "none stated", {"test": 11109}),
    Dataset("googlenews-t", SCCL, "none stated", {"test": 11108}),
    Dataset("googlenews-s", SCCL, "none stated", {"test": 11108}),
    Dataset("tweet", SCCL, "none stated", {"test": 2472}),
    Dataset("twentynewsgroups", "20news-bydate test subjects (GitHub YunomiXavia/20news-bydate@2298b3e)",
            "none stated", {"test": 7532}, "leading 'Re:' stripped"),
    Dataset("reddit", TWEAC, "MIT (UKP Lab); titles from Reddit", {"test": 8049},
            "5 sets of 10-50 subreddits x 20-100 titles, seed 0; not MTEB's exact sets"),
    Dataset("stackexchange", TWEAC, "MIT (UKP Lab); titles CC BY-SA", {"test": 9222},
            "5 sets of 10-50 sites x 20-100 titles, seed 0; not MTEB's exact sets"),
    Dataset("wikitext2", "WikiText-2 raw test split (GitHub Tylogi/TyloQuant@7989d03)", "CC BY-SA 3.0 and GFDL",
            {"test": 9670}, "paragraphs split into sentences, headings dropped, @-@ markup undone"),
    *[Dataset(f"wikitext2-{split}", "Hugging Face hub, Salesforce/wikitext (wikitext-2-raw-v1)", "CC BY-SA 3.0 and GFDL",
              {}, "not shipped: downloaded when dumped (needs the hub and pyarrow)", hub_split=split)
      for split in ("train", "validation")],
]}


@dataclass(frozen=True)
class MtebClassification:
    """How MTEB evaluates a classification task (its ``AbsTaskClassification`` settings).

    Each experiment shuffles the training indices with ``numpy.random.RandomState(seed)`` (the
    list shuffled by the experiment before), keeps the first ``samples_per_label`` of each label,
    fits ``LogisticRegression(max_iter=max_iter, random_state=seed)`` and scores ``eval_split``;
    the main score is the mean accuracy over ``n_experiments``. Tasks that MTEB does not define
    get MTEB's defaults (the ``name`` is then empty)."""
    name: str = ""
    samples_per_label: int = 8
    n_experiments: int = 10
    seed: int = 42
    max_iter: int = 100
    train_split: str = "train"
    eval_split: str = "test"


@dataclass(frozen=True)
class MtebClustering:
    """How MTEB's legacy clustering tasks evaluate: one ``MiniBatchKMeans(k = number of labels,
    batch_size, n_init="auto", random_state=seed)`` per set, V-measure averaged over the sets."""
    name: str = ""
    batch_size: int = 500
    seed: int = 42


@dataclass(frozen=True)
class RetrievalPart:
    """A retrieval task's queries and documents, each ``(id, text)`` in the task's order, and its
    judgments ``(query id, document id, relevance)``."""
    queries: tuple[tuple[str, str], ...]
    documents: tuple[tuple[str, str], ...]
    qrels: tuple[tuple[str, str, int], ...]


@dataclass(frozen=True)
class Task:
    """One evaluation. ``splits`` are the dataset splits whose texts the task's corpus holds."""
    id: str
    family: str  # a task family's name (analysis/evaluation/families/), or corpus: a reference, not evaluated
    dataset: str
    splits: tuple[str, ...] = ("test",)
    aliases: tuple[str, ...] = ()
    protocol: str = ""  # classification: "cv" (k-fold on one split) or "split"
    description: str = ""
    label_field: str = "label"
    extra: dict = field(default_factory=dict)
    mteb: MtebClassification | MtebClustering | None = None  # MTEB's own protocol, where MTEB has the task

    @property
    def info(self) -> Dataset:
        return DATASETS[self.dataset]

    def records(self) -> list[dict]:
        """The task's records from ``data/``, in file order, limited to its splits."""
        return [r for r in load_dataset(self.dataset) if r["split"] in self.splits]

    def texts(self) -> list[str]:
        """Deduplicated texts (first occurrence order) that the task's corpus must hold."""
        seen: dict[str, None] = {}
        for r in self.records():
            for key in ("text", "text2"):  # a retrieval task's judgments hold no text
                if key in r:
                    seen.setdefault(r[key], None)
        return list(seen)

    @property
    def identity(self) -> str:
        """Names the task's data in results records: a digest of its data file."""
        return f"hs-data:{data_digest(self.dataset)}"

    def provenance(self) -> dict:
        """The task as results records name it: family, identity and where its data came from."""
        return {"family": self.family, "identity": self.identity, "origin": f"data/{self.dataset}.jsonl.gz"}

    def retrieval(self) -> RetrievalPart:
        """A retrieval task's queries, documents and judgments, from its records (rows holding
        ``query``, ``document`` or ``qrel``)."""
        recs = self.records()
        return RetrievalPart(tuple((r["query"], r["text"]) for r in recs if "query" in r),
                             tuple((r["document"], r["text"]) for r in recs if "document" in r),
                             tuple(tuple(r["qrel"]) for r in recs if "qrel" in r))

    def roles(self) -> dict[str, list[str]]:
        """Texts by role where the task's texts play different parts (a retrieval task's queries and
        documents): the dump counts truncation per role, and a prompt template wraps the queries only."""
        if self.family != "retrieval":
            return {}
        part = self.retrieval()
        return {"queries": [t for _, t in part.queries], "documents": [t for _, t in part.documents]}


def _tasks() -> list[Task]:
    sts = [Task(f"sts{y}", "sts", f"sts{y}", aliases=(f"STS{y}",), description=f"SemEval STS 20{y}")
           for y in (12, 13, 14, 15, 16)]
    sts += [
        Task("stsb", "sts", "stsb", aliases=("STSBenchmark", "sts-b"), description="STS Benchmark test"),
        Task("sickr", "sts", "sick", aliases=("SICK-R-SentEval",),
             description="SICK relatedness, SentEval test split (4,927 pairs)"),
        Task("sickr-full", "sts", "sick", ("train", "dev", "test"), aliases=("SICK-R", "SICK-R-full"),
             description="SICK relatedness, all 9,927 pairs (MTEB's SICK-R)"),
        Task("sts17", "sts", "sts17", aliases=("STS17",), description="SemEval STS 2017 en-en"),
        Task("biosses", "sts", "biosses", aliases=("BIOSSES",), description="biomedical STS"),
    ]
    cv = [Task(n, "classification", n, ("all",), aliases=(n.upper(),), protocol="cv",
               description=d) for n, d in (("mr", "movie review sentiment"), ("cr", "product review sentiment"),
                                           ("subj", "subjectivity"), ("mpqa", "opinion polarity"))]
    split = [
        Task("sst2", "classification", "sst2", ("train", "dev", "test"), ("SST2", "SST-2"), "split", "SST binary"),
        Task("sst5", "classification", "sst5", ("train", "dev", "test"), ("SST5", "SST-5"), "split", "SST fine"),
        Task("trec", "classification", "trec", ("train", "test"), ("TREC",), "split", "question type"),
        Task("mrpc", "pair-trained", "mrpc", ("train", "test"), ("MRPC",), "split", "paraphrase"),
        Task("sicke", "pair-trained", "sick", ("train", "dev", "test"), ("SICK-E",), "split",
             "SICK entailment"),
        Task("mrpc-pairs", "pair-classification", "mrpc", ("test",), ("MRPC-PairClassification",),
             description="MRPC's test pairs, paraphrase or not, by the pair's similarity (no training)"),
        Task("banking77", "classification", "banking77", ("train", "test"), ("Banking77Classification",),
             "split", "banking intents", mteb=MtebClassification("Banking77Classification", samples_per_label=8)),
        Task("emotion", "classification", "emotion", ("train", "dev", "test"), ("EmotionClassification",),
             "split", "tweet emotion", mteb=MtebClassification("EmotionClassification", samples_per_label=16)),
        Task("amazon-counterfactual", "classification", "amazon-counterfactual", ("train", "dev", "test"),
             ("AmazonCounterfactualClassification",), "split", "counterfactual statements (en)",
             mteb=MtebClassification("AmazonCounterfactualClassification", samples_per_label=32)),
        Task("tweet-sentiment", "classification", "tweet-sentiment", ("train", "test"),
             ("TweetSentimentExtractionClassification",), "split", "tweet sentiment",
             mteb=MtebClassification("TweetSentimentExtractionClassification", samples_per_label=32)),
        Task("imdb", "classification", "imdb", ("train", "test"), ("ImdbClassification",), "split",
             "movie review sentiment (long texts)", mteb=MtebClassification("ImdbClassification", samples_per_label=8)),
    ]
    clustering = [Task(n, "clustering", n, description=f"short-text clustering ({n})")
                  for n in ("agnews", "searchsnippets", "stackoverflow", "biomedical",
                            "googlenews-ts", "googlenews-t", "googlenews-s", "tweet")]
    clustering += [
        Task("twentynewsgroups", "clustering", "twentynewsgroups", aliases=("TwentyNewsgroupsClustering",),
             description="20 Newsgroups subject lines", mteb=MtebClustering("TwentyNewsgroupsClustering", batch_size=500)),
        Task("reddit", "clustering", "reddit",
             description="Reddit titles by subreddit, 5 sampled sets", mteb=MtebClustering("RedditClustering", batch_size=500)),
        Task("stackexchange", "clustering", "stackexchange",
             description="StackExchange titles by site, 5 sampled sets",
             mteb=MtebClustering("StackExchangeClustering", batch_size=500)),
    ]
    corpora = [Task("wikitext2", "corpus", "wikitext2", aliases=("wikitext", "wikitext-2"),
                    description="WikiText-2 raw test, one sentence a text")]
    corpora += [Task(f"wikitext2-{split}", "corpus", f"wikitext2-{split}", (split,),
                     description=f"WikiText-2 raw {split} from the hub, one sentence a text")
                for split in ("train", "validation")]
    return sts + cv + split + clustering + corpora


TASKS = {t.id: t for t in _tasks()}

# MTEB's (task name, hf_subset) for tasks whose data are MTEB's test sets (same pairs or texts and
# labels); the others have no MTEB name, so their figures are never filed under one.
MTEB_NAMES = {
    **{f"sts{y}": (f"STS{y}", "default") for y in (12, 13, 14, 15, 16)},
    "stsb": ("STSBenchmark", "default"), "sickr-full": ("SICK-R", "default"), "sts17": ("STS17", "en-en"),
    "biosses": ("BIOSSES", "default"), "banking77": ("Banking77Classification", "default"),
    "emotion": ("EmotionClassification", "default"), "imdb": ("ImdbClassification", "default"),
    "amazon-counterfactual": ("AmazonCounterfactualClassification", "en"),
    "tweet-sentiment": ("TweetSentimentExtractionClassification", "default"),
}
_ALIASES = {a.lower(): t.id for t in TASKS.values() for a in (t.id, *t.aliases)}


def get_task(name: str) -> Task:
    try:
        return TASKS[_ALIASES[name.lower()]]
    except KeyError:
        raise HsError(f"unknown task {name!r}; `hs tasks` lists the known ones") from None


@lru_cache(maxsize=None)
def data_digest(dataset: str) -> str:
    """A short SHA-256 of a dataset's file in data/: the dataset revision hs evaluated."""
    return hashlib.sha256((data_dir() / f"{dataset}.jsonl.gz").read_bytes()).hexdigest()[:16]


@lru_cache(maxsize=None)
def load_dataset(name: str) -> tuple[dict, ...]:
    path = data_dir() / f"{name}.jsonl.gz"
    split = DATASETS[name].hub_split
    if split and not path.exists():
        return tuple({"split": split, "text": t} for t in fetch_split(split))
    if not path.exists():
        raise HsError(f"task data {path} is missing; run hs from a clone of the repository or set HS_DATA")
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return tuple(json.loads(line) for line in fh)
