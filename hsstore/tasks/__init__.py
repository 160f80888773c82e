"""What hs evaluates on: the benchmark registry (``registry``: datasets, tasks, MTEB's names for them),
named sets of corpora (``presets``), prompt templates (``templates``), a user's corpus files
(``corpusfile``) and WikiText's sentence splitter (``wikitext``)."""
from .registry import (DATASETS, MTEB_NAMES, TASKS, Dataset, MtebClassification, MtebClustering, Task, get_task,
                       load_dataset)

__all__ = ["DATASETS", "MTEB_NAMES", "TASKS", "Dataset", "MtebClassification", "MtebClustering", "Task", "get_task",
           "load_dataset"]
