"""Static (context-free) arrays of the model kept at the store root: its input word embeddings.

``hs dump`` writes them beside the corpora (float32, vocab x hidden, chunks of up to 4 MiB each
with a CRC-32C, like the store's other small arrays) and adds them to a store made before they
existed when the same command is rerun; no forward pass is needed for that. A ``complete`` flag,
set after the data, tells a finished matrix from one a killed dump left half-written.
"""
from __future__ import annotations

import json

import numpy as np

from hsstore.errors import HsError
from hsstore.format import storage
from hsstore.format.atomic import write_group_attrs
from hsstore.format.layout import DIMENSIONS

GROUP = "statics"
INPUT = "input_embeddings"
COMPLETE = f"{INPUT}_complete"  # set after the data: a killed dump leaves it unset


def write_input_embeddings(root, model, path) -> bool:
    """Store ``model.get_input_embeddings()`` in the open zarr ``root`` unless it is there; True if written."""
    from zarr.codecs import Crc32cCodec  # zarr loads with the first write, not with hsstore

    group = root.require_group(GROUP)
    if group.attrs.get(COMPLETE):
        return False
    matrix = model.get_input_embeddings().weight.detach().float().cpu().numpy()
    rows = max(1, min(len(matrix), (4 << 20) // (matrix.shape[1] * 4)))
    group.create_array(INPUT, data=np.ascontiguousarray(matrix, dtype=np.float32), chunks=(rows, matrix.shape[1]),
                       compressors=[Crc32cCodec()], overwrite=True, dimension_names=DIMENSIONS[INPUT])
    write_group_attrs(storage.location(path) / GROUP, {**group.attrs.asdict(), COMPLETE: True},
                      "input-embeddings-written")
    return True


def export_hdf5(store, h5) -> None:
    """Copy the input-embedding matrix, if the store has it, into an HDF5 export (``hs export``)."""
    try:
        matrix = store.input_embeddings()
    except HsError:
        return
    group = h5.create_group(GROUP)
    group.create_dataset(INPUT, data=matrix, fletcher32=True)
    group.attrs["json"] = json.dumps({COMPLETE: True})
    group.attrs[COMPLETE] = True
