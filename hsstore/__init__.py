"""hsstore: a cached store of every layer's hidden state for every token of a corpus.

    import hsstore
    store = hsstore.open("runs/minilm")
    corpus = store.corpus("stsb")
    corpus.tokens(0), corpus.hidden(0, layers=[0, -1]).shape   # (2, n_tokens, hidden)

The package's rooms: ``format`` (the on-disk layout: chunk files, atomic writes, local and object
storage), ``store`` (reading, writing, verifying, exporting and merging stores), ``tasks`` (the
benchmark registry, presets, corpus files, prompt templates) and ``dump`` (running a model into a
store). ``errors``, ``paths`` and ``layers`` are shared by all of them.
"""
from .errors import HsError
from .store import Corpus, Store, open  # noqa: A004
from .version import __version__

__all__ = ["open", "Store", "Corpus", "HsError", "__version__"]
