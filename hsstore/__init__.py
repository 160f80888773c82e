"""hsstore: a cached store of every layer's hidden state for every token of a corpus.

    import hsstore
    store = hsstore.open("runs/minilm")
    corpus = store.corpus("stsb")
    corpus.tokens(0), corpus.hidden(0, layers=[0, -1]).shape   # (2, n_tokens, hidden)
"""
__version__ = "0.1.0"

from .errors import HsError  # noqa: E402
from .store import Corpus, Store, open  # noqa: E402,A004

__all__ = ["open", "Store", "Corpus", "HsError", "__version__"]
