"""Token-table steps: transforms of a static view's (V, H) table, fitted on the table itself.

They act on the vocabulary's vectors before any pooling, where post-processing steps act on
sentence vectors after it: ``view=alone>tablepca:k=256`` projects every token's vector onto the top
256 principal directions of the vocabulary (Model2Vec's PCA), and the sentence is then pooled from
the projected vectors. Each is a registered step (analysis/recipes/steps.py) on the ``table`` axis.
"""
from __future__ import annotations

import numpy as np

from hsstore.store import vocabulary

from ..recipes.steps import Param, StepType, register


class TableStep(StepType):
    AXIS, LINEAR = "table", False

    def apply(self, table: np.ndarray, store) -> np.ndarray:
        """The transformed (V, H') float32 table."""
        raise NotImplementedError


def principal_axes(X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean, components (k, H)) of the rows of X from the eigenvectors of their covariance, each
    component's sign chosen so that the row with the largest absolute score scores positive (the
    convention of Model2Vec's PCA, so that the projected vectors, not only their cosines, agree)."""
    X = X.astype(np.float64)
    mean = X.mean(axis=0)
    Xc = X - mean
    vals, vecs = np.linalg.eigh(Xc.T @ Xc / max(1, len(X) - 1))
    comps = vecs[:, ::-1][:, :k].T
    scores = Xc @ comps.T
    top = np.abs(scores).argmax(axis=0)
    return mean, comps * np.sign(scores[top, np.arange(len(comps))])[:, None]


@register
class TablePCA(TableStep):
    NAME = "tablepca"
    PARAMS = (Param("k", int, 256, low=1, help="directions kept (at most the hidden size)"),)
    DESCRIPTION = ("the table's rows projected onto the top k principal directions of the vocabulary's rows "
                   "(Model2Vec's PCA; fitted on the table, before pooling)")

    def __init__(self, k: int = 256):
        self.k = k

    def apply(self, table, store):
        kept = vocabulary.table_vocabulary(store)  # the ids Model2Vec keeps: no placeholders, no [CLS]
        rows = np.zeros(len(table), dtype=bool)
        rows[:min(len(kept), len(table))] = kept[:len(table)]
        mean, comps = principal_axes(table[rows], min(self.k, table.shape[1]))
        return ((table.astype(np.float64) - mean) @ comps.T).astype(np.float32)
