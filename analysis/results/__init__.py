"""What evaluations return and how it is written: ``Result`` (``result``), results files (``records``:
JSON and CSV), MTEB's keys, names and layout (``mteb``), and tables and heatmaps (``table``)."""
