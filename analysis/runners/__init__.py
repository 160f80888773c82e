"""Running recipes on tasks: the engine (``engine``: pool, post-process, score; grids on threads or
Dask), the thread pool that keeps BLAS and OpenMP at one thread an evaluation (``threads``), the Dask
runner (``on_dask``), the reference study's grid (``study``) and its resumable results file
(``study_run``)."""
