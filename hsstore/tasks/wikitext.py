"""WikiText raw files as sentence corpora: the splitter behind ``data/wikitext2.jsonl.gz`` and
``hs dump --corpus-format wikitext``, and the hub download of the splits not shipped here."""
from __future__ import annotations

import re

from hsstore.errors import HsError

MARKUP = ((" @-@ ", "-"), (" @,@ ", ","), (" @.@ ", "."))
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
HUB_REPO = "Salesforce/wikitext"
HUB_FILES = {"train": "wikitext-2-raw-v1/train-00000-of-00001.parquet",
             "validation": "wikitext-2-raw-v1/validation-00000-of-00001.parquet",
             "test": "wikitext-2-raw-v1/test-00000-of-00001.parquet"}


def sentences(raw_text: str) -> list[str]:
    """Paragraph lines split into sentences; headings (`` = Title = ``) and blank lines dropped,
    WikiText's ``@-@``-style markup undone."""
    out = []
    for line in raw_text.split("\n"):
        line = line.strip()
        if not line or line.startswith("="):
            continue
        for a, b in MARKUP:
            line = line.replace(a, b)
        out += [s.strip() for s in SENTENCE_END.split(line) if s.strip()]
    return out


def fetch_split(split: str) -> list[str]:
    """Sentences of a WikiText-2 raw split downloaded from the Hugging Face hub (needs pyarrow)."""
    try:
        from huggingface_hub import hf_hub_download  # only for a split that is not shipped
        import pyarrow.parquet as pq
    except ImportError:
        raise HsError(f"WikiText-2 {split} comes from the hub and needs pyarrow (pip install pyarrow); or give the "
                      f"raw file: hs dump --corpus-file wiki.{split}.raw --corpus-format wikitext") from None
    try:
        path = hf_hub_download(HUB_REPO, HUB_FILES[split], repo_type="dataset")
    except Exception as exc:  # offline, blocked, or renamed upstream
        raise HsError(f"cannot download WikiText-2 {split} from the hub ({type(exc).__name__}); give the raw file "
                      f"instead: hs dump --corpus-file wiki.{split}.raw --corpus-format wikitext") from None
    lines = pq.read_table(path, columns=["text"]).column("text").to_pylist()
    return sentences("\n".join(lines))
