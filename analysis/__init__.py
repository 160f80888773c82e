"""analysis: sentence embeddings from a store's hidden states, evaluated without the model."""
import os

from hsstore.paths import cache_dir

# numba reads its cache location when first imported: compiled kernels go to a per-user cache
# (an installed package directory may be read-only)
os.environ.setdefault("NUMBA_CACHE_DIR", str(cache_dir("numba")))
