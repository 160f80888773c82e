"""Static (context-free) arrays of the model kept at the store root: its input word embeddings.

``hs dump`` writes them beside the corpora (float32, vocab x hidden, chunks of up to 4 MiB each
with a CRC-32C, like the store's other small arrays) and adds them to a store made before they
existed when the same command is rerun; no forward pass is needed for that. The group's attributes,
written after the data, hold a ``complete`` flag (a killed dump leaves it unset), the manifest (each
chunk's CRC-32C), the store identity they belong to, and their digest (hsstore/format/digests.py).
A rerun that finds a chunk missing, short or not the manifest's writes the matrix again.
"""
from __future__ import annotations

import json

import numpy as np

from hsstore.errors import HsError
from hsstore.format import storage
from hsstore.format.atomic import read_group_attrs, write_group_attrs
from hsstore.format.chunks import chunk_nbytes, expected_keys, list_files, small_array_crcs, trailer
from hsstore.format.digests import with_digest
from hsstore.format.layout import DIMENSIONS

GROUP = "statics"
INPUT = "input_embeddings"
COMPLETE = f"{INPUT}_complete"  # set after the data: a killed dump leaves it unset
MANIFEST = f"{INPUT}_crc32c"  # the CRC-32C of each chunk, row-block by row-block


def intact(path, attrs: dict, array) -> bool:
    """Whether the stored matrix's chunk files are all there at full size, each carrying the CRC-32C the
    manifest records (a quick check: the data are not read)."""
    directory = storage.location(path) / GROUP / INPUT
    files, size = list_files(directory), chunk_nbytes(array.chunks, array.dtype)
    keys = expected_keys(array.shape, array.chunks)
    crcs = attrs.get(MANIFEST)
    if any(files.get(k, (None,))[0] != size for k in keys):
        return False
    if crcs is None or len(crcs) != len(keys) or storage.is_remote(directory):
        return crcs is None or len(crcs) == len(keys)
    return all(trailer(directory / k) == crc for k, crc in zip(keys, crcs))


def write_input_embeddings(root, model, path, identity: str) -> bool:
    """Store ``model.get_input_embeddings()`` in the open zarr ``root`` unless it is there, intact;
    True if written."""
    from zarr.codecs import Crc32cCodec  # zarr loads with the first write, not with hsstore

    group = root.require_group(GROUP)
    try:
        attrs = read_group_attrs(storage.location(path) / GROUP)
    except (OSError, ValueError):
        attrs = {}
    if attrs.get(COMPLETE) and INPUT in group.array_keys() and intact(path, attrs, group[INPUT]):
        return False
    matrix = np.ascontiguousarray(model.get_input_embeddings().weight.detach().float().cpu().numpy(), dtype=np.float32)
    rows = max(1, min(len(matrix), (4 << 20) // (matrix.shape[1] * 4)))
    group.create_array(INPUT, data=matrix, chunks=(rows, matrix.shape[1]), compressors=[Crc32cCodec()], overwrite=True,
                       dimension_names=DIMENSIONS[INPUT])
    attrs = with_digest({COMPLETE: True, MANIFEST: small_array_crcs(matrix, rows), "identity": identity})
    write_group_attrs(storage.location(path) / GROUP, attrs, "input-embeddings-written")
    return True


def export_hdf5(store, h5) -> None:
    """Copy the input-embedding matrix, if the store has it, into an HDF5 export (``hs export``), with
    its group's attributes (the reader checks them there too)."""
    try:
        matrix = store.input_embeddings()
    except HsError:
        return
    group = h5.create_group(GROUP)
    group.create_dataset(INPUT, data=matrix, fletcher32=True)
    group.attrs["json"] = json.dumps(store.statics_attrs)
    group.attrs[COMPLETE] = True
