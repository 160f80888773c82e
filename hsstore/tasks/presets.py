"""Named sets of corpora to dump (``hs dump --preset NAME``) and evaluate (``hs eval --preset NAME``).

A preset declares its tasks by family, its reference corpora, and for each kind of model (an encoder
such as BERT, a decoder such as GPT-2 or Llama: ``ModelKind``) the templates its templated variants
use and which tasks they wrap, the read-out poolings and the token filters its grid varies. The dump
and the grid take the declaration of the store's kind of model (its identity says whether it is
causal); ``hs dump --help``, ``hs eval --help``, docs/study.md and the code all read these
declarations. The grid ``hs eval --preset`` runs lives in ``analysis/runners/study.py``; the dump's
sources of a preset are made in ``hsstore/dump/sources.py``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from hsstore.errors import HsError

from .templates import empty_name, parse_template, variant_name


@dataclass(frozen=True)
class ModelKind:
    """What a preset dumps and varies for one kind of model."""
    templates: dict[str, tuple[str, ...]] = field(default_factory=dict)  # template -> tasks it wraps
    pools: tuple[str, ...] = ()  # read-outs stage 1 varies beside mean pooling
    drops: tuple[str, ...] = ()  # token filters stage 1 varies
    sentence_only: str = "template"  # the filter that keeps a templated text's own tokens


# an encoder has a mask token for PromptBERT's read-out, [CLS] first and [SEP] last; a decoder has no mask
# token (PromptEOL reads the last template token), its natural read-out is the last token, and its
# tokenizer may add no special tokens at all (GPT-2, SmolLM2), so no filter of them is varied
ENCODER = ModelKind(pools=("max", "first"), drops=("special", "punct", "subword", "freq"),
                    sentence_only="special+template")
DECODER = ModelKind(pools=("max", "last"), drops=("punct", "subword", "freq"), sentence_only="template")


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    families: dict[str, tuple[str, ...]]  # family -> evaluation tasks, in dump order
    references: tuple[str, ...] = ()       # corpora used as @REF, dumped but not evaluated
    encoder: ModelKind = ENCODER
    decoder: ModelKind = DECODER
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

    def kind(self, causal: bool) -> ModelKind:
        """The declaration for a decoder (``causal``) or an encoder."""
        return self.decoder if causal else self.encoder

    def corpora(self, causal: bool, families: tuple[str, ...] | None = None) -> list[str]:
        """Every corpus name the preset's dump writes for that kind of model (plain, then each template's
        variant and its empty rows), or what the grid of some of its ``families`` reads."""
        chosen = {t for f, tasks in self.families.items() if families is None or f in families for t in tasks}
        names = [n for n in self.dump_order if n in chosen or n in self.references]
        for spec, tasks in self.kind(causal).templates.items():
            template = parse_template(spec)
            for task in (t for t in tasks if t in chosen):
                names += [variant_name(task, template), empty_name(variant_name(task, template))]
        return names

    def check_families(self, families: tuple[str, ...]) -> None:
        unknown = [f for f in families if f not in self.families]
        if unknown:
            raise HsError(f"preset {self.name} has no family {', '.join(unknown)}; its families are "
                          f"{', '.join(self.families)}")


STS = ("sts12", "sts13", "sts14", "sts15", "sts16", "stsb", "sickr", "sts17")
PRESETS = {
    "study": Preset(
        name="study",
        description="the reference study (Stankevicius & Lukosevicius 2024): 8 STS, 6 short-text clustering and "
                    "12 classification tasks, WikiText-2, and prompt-templated STS (PromptBERT for an encoder, "
                    "PromptEOL for a decoder; docs/study.md)",
        families={
            "sts": STS,
            # classification before clustering: `hs eval --preset` runs families in this order, cheapest first
            "classification": ("cr", "mpqa", "trec", "mrpc", "sicke", "amazon-counterfactual", "banking77", "mr",
                               "subj", "emotion", "tweet-sentiment", "sst2"),
            "clustering": ("tweet", "agnews", "searchsnippets", "googlenews-ts", "stackoverflow", "biomedical"),
        },
        references=("wikitext2",),
        encoder=replace(ENCODER, templates={"promptbert": STS}),
        decoder=replace(DECODER, templates={"prompteol": STS}),
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
