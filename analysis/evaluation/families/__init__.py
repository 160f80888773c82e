"""One module a task family, each declaring ``FAMILY`` (analysis/evaluation/family.py reads them all)."""
