"""A recipe fitted once and kept: the fitting (fit), its folder (folder), applying it to texts held
in memory (recipe) and folding a static linear one into one token table (static)."""
