"""The recipe language: the registry of steps on each axis (``steps``) and recipes and grids of them
(``recipe``). It parses and validates; it computes nothing (that is analysis/embedding)."""
