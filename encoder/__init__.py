"""Fitted recipes as encoders of new text, and the folders people load them from.

``Encoder.load(DIR).encode(texts)`` (encoder.py) runs a fitted recipe (``hs fit``) on texts that
are in no store: it tokenises and runs the model as ``hs dump`` does and computes the sentence
vectors with the code ``hs eval`` scores (analysis/fitted). ``fit.py`` writes the folders: hs's own,
sentence-transformers' (``st_export``, whose modules are ``st_modules``), and model2vec's and
sentence-transformers' ``StaticEmbedding`` for static linear recipes (``static_export``).
"""
from .encoder import Encoder

__all__ = ["Encoder"]
