"""Click parameter types shared by the commands."""
from __future__ import annotations

import re
from pathlib import Path

import click


class StoreLocation(click.ParamType):
    """A store: a local directory, or an fsspec URL such as ``s3://bucket/prefix`` (kept as text,
    since ``Path`` would fold its ``//``); hsstore.storage.location resolves either."""

    name = "store"

    def convert(self, value, param, ctx):
        if isinstance(value, str) and re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", value):
            return value
        return Path(value)


STORE = StoreLocation()
