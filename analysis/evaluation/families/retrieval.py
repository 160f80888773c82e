"""Retrieval as MTEB evaluates it: each query's documents ranked by the cosine similarity of their vectors
(exact search on the CPU), scored by nDCG@10; MAP, recall, precision, MRR and hit rate at MTEB's cut-offs
beside it. Tasks come from BEIR-layout folders (hs dump --task-file, docs/tasks.md); a recipe's prompt
template (view=prompt) embeds the queries only."""
from ..family import Family

K_VALUES = (1, 3, 5, 10, 20, 100, 1000)  # MTEB's cut-offs; it retrieves the top 1000 of each query
METRICS = ("ndcg", "map", "recall", "precision", "mrr", "hit_rate")

FAMILY = Family(
    name="retrieval", position=50,
    evaluator="analysis.evaluation.retrieval:Retrieval",  # its search compiles a numba kernel on import
    description="queries and documents with relevance judgments (BEIR's layout); the documents ranked by cosine "
                "similarity, exactly; nDCG@10 x100",
    measure="nDCG@10 x100 of the documents ranked by cosine similarity", short_measure="nDCG@10 x100",
    mteb_keys={key: (key,) for key in [f"{m}_at_{k}" for m in METRICS for k in K_VALUES]},
    mteb_main="ndcg_at_10",
    query_side=True,
)
