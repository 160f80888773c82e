"""Sentence pairs classified by a classifier trained on the pair's features [u, v, |u-v|, u*v] (SentEval's
MRPC and SICK-E); reports count it as classification. Its training-free counterpart is pair_classification.py."""
from ..family import Family
from .classification import PROTOCOL

FAMILY = Family(
    name="pair-trained", position=31, group="classification",
    evaluator="analysis.evaluation.classification:TrainedPairs",  # its solver compiles numba kernels on import
    description="sentence pairs with labels; a classifier trained on [u, v, |u-v|, u*v] (SentEval), accuracy x100",
    measure="accuracy x100", short_measure="accuracy x100",
    options=(PROTOCOL,),
    mteb_protocol={"classification": "mteb"},
    libraries=("sklearn.cluster",),
)
