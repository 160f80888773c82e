"""Evaluators, one per task family, following SentEval's and MTEB's protocols: the family registry
(``family``, with one declaration a family in ``families/``), STS (``sts``), classification with its
solvers (``classification``, ``logreg``, ``probe``), clustering (``clustering``) and the diagnostics
of a sentence matrix (``diagnostics``). Evaluators read sentence matrices and task data; they never
import the embedding steps."""
