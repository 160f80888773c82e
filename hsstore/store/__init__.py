"""Stores: reading (``reader``), writing with resumable commits (``writer``), checking (``verify``),
the HDF5 export (``export``), sharded dumps and their merge (``shards``), layers as dask arrays
(``daskarray``), and the arrays beside the hidden states (``statics``: input embeddings;
``attention``: attention diagonals)."""
from .reader import Corpus, Store, checked_read, open  # noqa: A004

__all__ = ["Store", "Corpus", "open", "checked_read"]
