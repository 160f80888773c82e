"""``hs dump``: what a dump reads (``sources``), its plan (``plan``; ``templated`` for prompt templates),
the model (``model``: loading and identity; ``st_modules``: its sentence-transformers pipeline), the
forward pass (``forward``; ``attention`` for attention diagonals), the run itself (``run``) and its
shards on Dask workers (``on_dask``). torch and transformers load with these modules, so nothing
outside a dump imports them."""
