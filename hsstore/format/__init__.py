"""The on-disk format of a store: its layout (names, kinds, chunking, dimension names), chunk files
with their CRC-32C, atomic metadata writes, and where a store lives (a local directory or an
object-storage prefix). Nothing here knows about corpora, models or tasks."""
