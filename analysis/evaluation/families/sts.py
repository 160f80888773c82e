"""Semantic textual similarity: Spearman's rho of the pairs' cosine similarities against gold scores."""
from ..family import Family, Option
from ..sts import STS

FAMILY = Family(
    name="sts", position=10, evaluator=STS,
    description="sentence pairs with a gold similarity score; Spearman's rho x100 of cosine similarity",
    measure="Spearman's rho x100 of cosine similarity", short_measure="Spearman x100",
    options=(Option("sts_aggregate", "--sts-aggregate", "all", param="aggregate", choices=("all", "mean", "wmean"),
                    help="Main STS12-16 score: subsets concatenated (all), their mean, or pair-weighted mean."),),
    # cosine similarity is hs's only STS similarity, so MTEB's model-similarity keys equal the cosine ones
    mteb_keys={"spearman_all": ("cosine_spearman", "spearman"), "pearson_all": ("cosine_pearson", "pearson")},
    mteb_main="cosine_spearman",
)
