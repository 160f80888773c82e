"""From stored states to sentence vectors: the recipe steps and what runs them. Views (``views``,
``prompts``) give token vectors, token filters and weights (``tokens``) and the pooling steps and
the pooler (``pooling``, with the numba ``kernels``) make sentence vectors, post-processors
(``post``) shape them; pooled matrices are cached on disk (``diskcache``). Numba loads with the
first pooling, not with the registry (``hs --help`` reads the steps' declarations)."""
