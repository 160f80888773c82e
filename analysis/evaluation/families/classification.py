"""Classification of single texts: a classifier trained on the sentence vectors, scored by accuracy."""
from ..family import Family, Option

PROTOCOL = Option(
    "classification", "--classification", "senteval", param="protocol", choices=("senteval", "probe", "mteb"),
    help="senteval: logistic regression, C by SentEval's CV; probe: ridge on one-hot labels with closed-form CV "
         "(fast, for grids); mteb: MTEB's few-shot protocol with each task's own settings.")

FAMILY = Family(
    name="classification", position=30,
    evaluator="analysis.evaluation.classification:Classification",  # its solver compiles numba kernels on import
    description="texts with labels; a classifier trained on the vectors (SentEval, a ridge probe or MTEB), "
                "accuracy x100",
    measure="accuracy x100", short_measure="accuracy x100",
    options=(PROTOCOL,),
    mteb_keys={"accuracy": ("accuracy",), "f1": ("f1",)},
    mteb_protocol={"classification": "mteb"},  # SentEval's protocol on MTEB's data is not MTEB's figure
    libraries=("sklearn.cluster",),  # scikit-learn's OpenMP runtime
)
