"""Retrieval as MTEB scores it: every query's documents ranked by cosine similarity, exactly, on the
CPU, and the ranking scored by nDCG@10 (the main score), MAP@k, recall@k, precision@k, MRR@k and
hit rate@k (the family's declaration is families/retrieval.py).

Search: the similarities are matrix products of a block of queries with a block of documents
(``BLOCK_QUERIES`` x ``BLOCK_DOCUMENTS`` float32 scores at a time, so memory stays bounded however
large the corpus), and a numba kernel keeps each query's best ``TOP_K`` documents in a heap that
carries over from block to block (the first block's k-th best score, from ``np.partition``, lets it
skip the scores that cannot be among them). Ties are broken as trec_eval breaks them (and so pytrec_eval and
MTEB): by document id, the larger id first. The heap orders (score, id rank) pairs, so the top k
are exact, ties at the cut included.

Metrics follow trec_eval's definitions (``ndcg_cut``, ``map_cut``, ``recall``, ``P``, ``success``,
with relevance >= 1 relevant and graded relevance as the gain) and MTEB's own MRR@k, averaged over
the queries that have judgments; tests/test_retrieval.py compares them with pytrec_eval.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from hsstore.errors import HsError
from hsstore.store import Corpus
from hsstore.tasks import Task

from ..vectors import unit_rows
from .families.retrieval import K_VALUES, METRICS
from .family import Evaluator

TOP_K = max(K_VALUES)
BLOCK_QUERIES = 256
BLOCK_DOCUMENTS = 32768  # a block of scores is 256 x 32768 float32 = 32 MiB


@njit(inline="always")
def _better(s, o, s2, o2) -> bool:
    """(score s, id rank o) ranks above (s2, o2): a higher score, or the same score and a larger id."""
    return s > s2 or (s == s2 and o > o2)


@njit(inline="always")
def _sift_down(hs, ho, hc, s, o, c, k):
    """Put (s, o, c) at the root of the full min-heap (hs, ho, hc) of size k and sift it down."""
    p = 0
    while True:
        child = 2 * p + 1
        if child >= k:
            break
        if child + 1 < k and _better(hs[child], ho[child], hs[child + 1], ho[child + 1]):
            child += 1  # the worse of the two children
        if not _better(s, o, hs[child], ho[child]):
            break
        hs[p], ho[p], hc[p] = hs[child], ho[child], hc[child]
        p = child
    hs[p], ho[p], hc[p] = s, o, c


@njit(parallel=True, cache=True)
def _offer(S, col0, rank, floor, heap_s, heap_o, heap_c, filled):
    """Offer each query row of the score block ``S`` (documents ``col0 ..``) to that row's heap of its
    best documents so far: a min-heap (the worst kept document at the root) of scores ``heap_s``, id
    ranks ``heap_o`` and document columns ``heap_c``, ``filled[i]`` of them in use; ``rank`` is each
    document's id rank. Scores below ``floor[i]`` are known to lose (k of the row's scores are at
    least that high) and are skipped; once a heap is full, a score below its root costs one comparison."""
    k = heap_s.shape[1]
    for i in prange(S.shape[0]):
        n = filled[i]
        hs, ho, hc = heap_s[i], heap_o[i], heap_c[i]
        row = S[i]
        low = floor[i]
        j = 0
        while n < k and j < row.shape[0]:  # not full: sift each new entry up
            s, c = row[j], col0 + j
            j += 1
            if s < low:
                continue
            o = rank[c]
            p = n
            n += 1
            while p > 0:
                parent = (p - 1) // 2
                if not _better(hs[parent], ho[parent], s, o):
                    break
                hs[p], ho[p], hc[p] = hs[parent], ho[parent], hc[parent]
                p = parent
            hs[p], ho[p], hc[p] = s, o, c
        filled[i] = n
        if n < k:
            continue
        worst_s, worst_o = hs[0], ho[0]
        for jj in range(j, row.shape[0]):
            s = row[jj]
            if s < worst_s:
                continue
            c = col0 + jj
            o = rank[c]
            if s == worst_s and o < worst_o:
                continue
            _sift_down(hs, ho, hc, s, o, c, k)  # better than the worst kept: it replaces it
            worst_s, worst_o = hs[0], ho[0]


def id_ranks(ids: list[str]) -> np.ndarray:
    """Each id's position among the ids sorted as strings (trec_eval's tie-break compares them)."""
    order = sorted(range(len(ids)), key=ids.__getitem__)
    ranks = np.empty(len(ids), dtype=np.int64)
    ranks[order] = np.arange(len(ids))
    return ranks


def search(Q: np.ndarray, D: np.ndarray, k: int, rank: np.ndarray, block_queries: int = BLOCK_QUERIES,
           block_documents: int = BLOCK_DOCUMENTS) -> tuple[np.ndarray, np.ndarray]:
    """Each query's ``k`` best documents by the inner product of its row of ``Q`` with the rows of
    ``D`` (unit rows: cosine), best first, ties by ``rank`` (larger first): (scores, columns), each
    (n_queries, min(k, n_documents))."""
    Q = np.ascontiguousarray(Q, dtype=np.float32)
    D = np.ascontiguousarray(D, dtype=np.float32)
    k = min(k, len(D))
    scores = np.empty((len(Q), k), dtype=np.float32)
    cols = np.empty((len(Q), k), dtype=np.int64)
    for q0 in range(0, len(Q), block_queries):
        q1 = min(q0 + block_queries, len(Q))
        heap_s = np.empty((q1 - q0, k), dtype=np.float32)
        heap_o = np.empty((q1 - q0, k), dtype=np.int64)
        heap_c = np.empty((q1 - q0, k), dtype=np.int64)
        filled = np.zeros(q1 - q0, dtype=np.int64)
        for d0 in range(0, len(D), block_documents):
            S = Q[q0:q1] @ D[d0:d0 + block_documents].T
            floor = np.full(q1 - q0, -np.inf, dtype=np.float32)
            if d0 == 0 and S.shape[1] > k:  # each row's k-th best score of the first block: fewer heap moves
                floor = np.partition(S, S.shape[1] - k, axis=1)[:, S.shape[1] - k]
            _offer(S, d0, rank, floor, heap_s, heap_o, heap_c, filled)
        order = np.lexsort((heap_o, heap_s), axis=1)[:, ::-1]  # score, then id rank, descending
        scores[q0:q1] = np.take_along_axis(heap_s, order, 1)
        cols[q0:q1] = np.take_along_axis(heap_c, order, 1)
    return scores, cols


def metrics(ranked: np.ndarray, qrels: tuple[np.ndarray, np.ndarray, np.ndarray], n_queries: int,
            n_documents: int, k_values=K_VALUES) -> dict[str, float]:
    """trec_eval's measures and MTEB's MRR of the rankings ``ranked`` (n_queries, K: document columns,
    best first), averaged over the queries, x100. ``qrels``: (query rows, document columns,
    relevance) of every judgment; relevance >= 1 is relevant and is the gain of nDCG."""
    q, d, rel = qrels
    K = ranked.shape[1]
    keys = q * n_documents + d
    order = np.argsort(keys)
    keys, gains = keys[order], rel[order]
    wanted = (np.arange(n_queries)[:, None] * n_documents + ranked).ravel()
    at = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
    got = np.where(keys[at] == wanted, gains[at], 0).reshape(n_queries, K).astype(np.float64)
    relevant = got >= 1
    hits = np.cumsum(relevant, axis=1)
    n_relevant = np.bincount(q[rel >= 1], minlength=n_queries).astype(np.float64)
    discount = 1.0 / np.log2(np.arange(2, K + 2))
    dcg = np.cumsum(np.where(relevant, got, 0.0) * discount, axis=1)
    ideal = _ideal_gains(q, rel, n_queries, max(K, max(k_values)))
    idcg = np.cumsum(ideal * (1.0 / np.log2(np.arange(2, ideal.shape[1] + 2))), axis=1)
    precision_sum = np.cumsum(np.where(relevant, hits / np.arange(1, K + 1), 0.0), axis=1)
    first = np.where(relevant.any(axis=1), relevant.argmax(axis=1) + 1, K + 1)  # rank of the first relevant
    safe = np.maximum(n_relevant, 1)
    out = {}
    for k in k_values:
        c = min(k, K) - 1  # a cut beyond the ranking's length counts what was retrieved
        ik = idcg[:, k - 1]
        per_query = {
            "ndcg": np.where(ik > 0, dcg[:, c] / np.where(ik > 0, ik, 1.0), 0.0),
            "map": precision_sum[:, c] / safe,
            "recall": hits[:, c] / safe,
            "precision": hits[:, c] / k,
            "mrr": np.where(first <= k, 1.0 / first, 0.0),
            "hit_rate": (hits[:, c] > 0).astype(np.float64),
        }
        for name in METRICS:
            out[f"{name}_at_{k}"] = 100 * float(per_query[name].mean())
    return out


def _ideal_gains(q: np.ndarray, rel: np.ndarray, n_queries: int, width: int) -> np.ndarray:
    """Per query, its judged gains (relevance >= 1) sorted descending, padded with zeros to ``width``."""
    keep = rel >= 1
    q, rel = q[keep], rel[keep].astype(np.float64)
    order = np.lexsort((-rel, q))
    q, rel = q[order], rel[order]
    starts = np.searchsorted(q, np.arange(n_queries))
    position = np.arange(len(q)) - starts[q]
    out = np.zeros((n_queries, width))
    inside = position < width
    out[q[inside], position[inside]] = rel[inside]
    return out


def _unit_in_place(X: np.ndarray) -> np.ndarray:
    """``unit_rows(X)`` written over ``X`` (a copy the caller owns), row blocks at a time."""
    X = np.asarray(X, dtype=np.float32)
    for a in range(0, len(X), 65536):
        X[a:a + 65536] = unit_rows(X[a:a + 65536])
    return X


class Retrieval(Evaluator):
    """nDCG@10 x100 of each query's documents ranked by cosine similarity (MTEB's retrieval).

    The task's corpus holds the queries' and the documents' texts; ``query_texts`` are the queries
    in the task's order, for a recipe that embeds them from another corpus (a query-side template:
    the engine then passes their matrix as ``queries``)."""

    def __init__(self, task: Task, corpus: Corpus, top_k: int = TOP_K):
        part = task.retrieval()
        self.query_texts = [t for _, t in part.queries]
        self.queries = corpus.ids_of(self.query_texts)
        self.documents = corpus.ids_of(t for _, t in part.documents)
        self.rank = id_ranks([i for i, _ in part.documents])
        query_row = {qid: i for i, (qid, _) in enumerate(part.queries)}
        doc_col = {did: j for j, (did, _) in enumerate(part.documents)}
        self.qrels = (np.array([query_row[a] for a, _, _ in part.qrels], dtype=np.int64),
                      np.array([doc_col[b] for _, b, _ in part.qrels], dtype=np.int64),
                      np.array([r for _, _, r in part.qrels], dtype=np.int64))
        self.top_k = top_k
        # texts cut at the model's limit, per role, as the dump counted them
        self.truncated = dict((corpus.attrs.get("source") or {}).get("truncated") or {})

    @property
    def cost(self) -> float:
        return float(len(self.queries)) * len(self.documents)

    def rankings(self, X: np.ndarray, queries: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, document columns) of each query's top documents, best first."""
        Q = unit_rows(X[self.queries] if queries is None else queries)
        D = _unit_in_place(X[self.documents])  # one copy of the documents' rows, not two
        if not (np.isfinite(Q).all() and np.isfinite(D).all()):
            raise HsError("the recipe gives non-finite sentence vectors (NaN or infinity) for this retrieval task; "
                          "no ranking can be scored: change the recipe")
        return search(Q, D, self.top_k, self.rank)

    def __call__(self, X: np.ndarray, queries: np.ndarray | None = None) -> dict:
        _, ranked = self.rankings(X, queries)
        scores = metrics(ranked, self.qrels, len(self.queries), len(self.documents))
        scores.update({"queries": len(self.queries), "documents": len(self.documents),
                       **{f"{role}_truncated": n for role, n in self.truncated.items()}})
        scores["main_score"] = scores["ndcg_at_10"]
        return scores

    def diagnostics(self, X: np.ndarray) -> dict:
        """Isotropy and uniformity of the documents' vectors."""
        return super().diagnostics(X[self.documents])
