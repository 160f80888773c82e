"""Named sets of corpora to dump (``hs dump --preset NAME``) and evaluate (``hs eval --preset NAME``).

A preset declares its tasks by family, its reference corpora, the templates its templated variants
use and which tasks they wrap; ``hs dump --help``, ``hs eval --help``, docs/study.md and the code all
read these declarations. The grid ``hs eval --preset`` runs lives in ``analysis/runners/study.py``; the
dump's sources of a preset are made in ``hsstore/dump/sources.py``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from hsstore.errors import HsError

from .templates import empty_name, parse_template, variant_name


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    families: dict[str, tuple[str, ...]]  # family -> evaluation tasks, in dump order
    references: tuple[str, ...] = ()       # corpora used as @REF, dumped but not evaluated
    templates: dict[str, tuple[str, ...]] = field(default_factory=dict)  # template -> tasks it wraps
    left_out: dict[str, str] = field(default_factory=dict)  # task -> why the preset leaves it out
    # protocol options its grid runs with, unless hs eval is given them: a grid of many evaluations
    # takes the fast classification probe and fewer k-means seeds
    options: dict = field(default_factory=lambda: {"seeds": 3, "classification": "probe"})

    @property
    def tasks(self) -> tuple[str, ...]:
        """Evaluation tasks, family by family."""
        return tuple(t for tasks in self.families.values() for t in tasks)

    @property
    def dump_order(self) -> tuple[str, ...]:
        """Plain corpora in the order ``hs dump --preset`` writes them: the first family, the references, the rest."""
        groups = list(self.families.values())
        return (*groups[0], *self.references, *(t for g in groups[1:] for t in g))

    def corpora(self) -> list[str]:
        """Every corpus name the preset's dump writes (plain, then each template's variant and its empty rows)."""
        names = list(self.dump_order)
        for spec, tasks in self.templates.items():
            template = parse_template(spec)
            for task in tasks:
                names += [variant_name(task, template), empty_name(variant_name(task, template))]
        return names


STS = ("sts12", "sts13", "sts14", "sts15", "sts16", "stsb", "sickr", "sts17")
PRESETS = {
    "study": Preset(
        name="study",
        description="the reference study (Stankevicius & Lukosevicius 2024): 8 STS, 6 short-text clustering and "
                    "12 classification tasks, WikiText-2, and PromptBERT-templated STS (docs/study.md)",
        families={
            "sts": STS,
            # classification before clustering: `hs eval --preset` runs families in this order, cheapest first
            "classification": ("cr", "mpqa", "trec", "mrpc", "sicke", "amazon-counterfactual", "banking77", "mr",
                               "subj", "emotion", "tweet-sentiment", "sst2"),
            "clustering": ("tweet", "agnews", "searchsnippets", "googlenews-ts", "stackoverflow", "biomedical"),
        },
        references=("wikitext2",),
        templates={"promptbert": STS},
        left_out={"imdb": "50k long reviews (~15M tokens, ~80 GB at 7 layers of the demo model): too big for a laptop disk",
                  "sst5": "shares SST's sentences with sst2; left out with IMDB to keep 12 classification tasks"},
    ),
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise HsError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return PRESETS[name]


def preset_help() -> str:
    """One line per preset for ``--help``."""
    return "; ".join(f"{p.name}: {p.description}" for p in PRESETS.values())
