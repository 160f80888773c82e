"""analysis: sentence embeddings from a store's hidden states, evaluated without the model."""
import os
import sys
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


def tolerate_kernel_cache_failures() -> None:
    """A compiled kernel that cannot be saved (a full or read-only cache disk) is used anyway, with one
    warning, as a pooled-matrix cache that cannot be written is: numba would raise its OSError and end
    the evaluation. Called by the modules that compile kernels (after importing numba, which is slow)."""
    from numba.core import caching  # only where kernels are compiled: numba is slow to import

    save = caching.Cache.save_overload
    if getattr(save, "hs_tolerant", False):
        return

    def save_overload(self, sig, data):
        try:
            save(self, sig, data)
        except OSError as exc:
            if not _warned_kernels:
                _warned_kernels.append(exc)
                print(f"hs: warning: cannot save compiled kernels to {os.environ.get('NUMBA_CACHE_DIR')} "
                      f"({exc.strerror or exc}); continuing without that cache", file=sys.stderr)

    save_overload.hs_tolerant = True
    caching.Cache.save_overload = save_overload


_warned_kernels: list = []
