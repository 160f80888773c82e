"""Recipe strings, grids and their errors."""
from __future__ import annotations

import pytest

from analysis.recipes.recipe import Recipe, Step, grid, parse_recipe
from hsstore import HsError
from hsstore.layers import parse_layers


def test_round_trip_and_defaults():
    text = "layers=first-last;combine=concat;pool=max;drop=punct+special;weights=sif:a=0.01@wikitext2;" \
           "post=whiten:mode=pca:k=64@wikitext2+abtt:d=2+l2"
    r = parse_recipe(text)
    assert r.layers == "first-last" and r.combine == "concat" and r.pool.name == "max"
    assert [d.name for d in r.drop] == ["punct", "special"]
    assert r.weights == Step("weights", "sif", (("a", 0.01),), "wikitext2")
    assert [s.name for s in r.post] == ["whiten", "abtt", "l2"] and r.post[0].param("k") == 64
    assert parse_recipe(str(r)) == r
    assert r.references == {"wikitext2"}
    assert parse_recipe("") == Recipe()
    assert parse_recipe("pool=cls").pool.name == "first"
    assert parse_recipe("drop=freq").drop[0].kwargs == {"n": 36}
    assert parse_recipe("drop=freq10").drop == parse_recipe("drop=freq:n=10").drop
    assert parse_recipe("drop=freq10").references == {"wikitext2"}


def test_grid_is_the_cartesian_product():
    g = grid({"layers": ["last", "all"], "pool": ["mean", "max", "cls"], "post": ["none", "zscore+l2"]})
    assert len(g) == 12 == len(set(g))
    assert {r.pool.name for r in g} == {"mean", "max", "first"}


@pytest.mark.parametrize("bad,message", [
    ("pool=median", "unknown pooling"), ("layers=x", "cannot read layer"), ("drop=stop", "unknown token filter"),
    ("post=whiten:k", "parameters look like"), ("weights=tfidf", "unknown token weights"),
    ("colour=red", "unknown recipe key"),
    ("pool", "key=value"), ("weights=idf:k=3", "no parameters"), ("weights=sif:a=x", "needs a number"),
])
def test_bad_recipes(bad, message):
    with pytest.raises(HsError, match=message):
        parse_recipe(bad)


def test_layer_specs():
    assert parse_layers("last", 12) == [12]
    assert parse_layers("first-last", 12) == [1, 12]
    assert parse_layers("emb-last", 6) == [0, 6]
    assert parse_layers("0,4-6,-1", 6) == [0, 4, 5, 6]
    assert parse_layers("0,last", 3) == [0, 3]
    with pytest.raises(HsError, match="do not exist"):
        parse_layers("13", 12)
