"""analysis: sentence embeddings from a store's hidden states, evaluated without the model."""
import os
import tempfile

from hsstore.paths import cache_dir

# numba reads its cache location when first imported: compiled kernels go to a per-user cache
# (an installed package directory may be read-only), or to a temporary directory if that cache
# cannot be written (eval still works; analysis.diskcache warns about the cache)
if "NUMBA_CACHE_DIR" not in os.environ:
    try:
        _numba = cache_dir("numba")
        if not os.access(_numba, os.W_OK):
            raise PermissionError(_numba)
    except OSError:
        _numba = os.path.join(tempfile.gettempdir(), f"hs-numba-{os.getuid()}")
    os.environ["NUMBA_CACHE_DIR"] = str(_numba)
