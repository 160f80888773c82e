"""What a dump reads: ``CorpusSource`` (a corpus's name, texts and where they came from), made from
a benchmark task, a user's corpus or task file or a preset, each optionally wrapped in prompt templates."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from hsstore.tasks import get_task
from hsstore.tasks.presets import get_preset
from hsstore.tasks.templates import empty_name, parse_template, variant_name


@dataclass
class CorpusSource:
    name: str
    texts: list[str]
    source: dict
    template: object = None  # a templates.Template: dump the texts wrapped in it
    empty: bool = False      # with a template: the template-only rows for denoising (templates.py)
    task_lines: list[str] | None = None  # a user's task definition, stored with its corpus (tasks/usertask.py)
    roles: dict[str, list[str]] = field(default_factory=dict)  # texts by role: truncation is counted per role


def task_source(task_id: str) -> "CorpusSource":
    """The corpus of a benchmark task: its deduplicated texts, named by the task."""
    task = get_task(task_id)
    return CorpusSource(task.id, task.texts(), {"task": task.id, "dataset": task.dataset, "splits": list(task.splits)},
                        roles=task.roles())


def task_file_source(task) -> "CorpusSource":
    """The corpus of a user's task (a ``UserTask`` read from its file): its texts and its definition."""
    return CorpusSource(task.id, task.texts(), {"task": task.summary()}, task_lines=task.lines, roles=task.roles())


def with_templates(sources: list, specs: list[str]) -> list:
    """Each source once per template (``none`` = as it is), a template's variant followed by its empty one."""
    out = []
    for spec in specs or ["none"]:
        if spec == "none":
            out += sources
            continue
        template = parse_template(spec)
        for src in sources:
            name = variant_name(src.name, template)
            # a retrieval task's template is its queries': the documents stay as they are
            side = {"texts": src.roles["queries"], "source": {**src.source, "templated": "queries"}} \
                if "queries" in src.roles else {}
            variant = replace(src, name=name, template=template, task_lines=None, roles={}, **side)
            out.append(variant)
            out.append(replace(variant, name=empty_name(name), empty=True))
    return out


def preset_sources(name: str, causal: bool) -> list:
    """The dump's sources for a preset and a kind of model (a decoder, or an encoder): its plain
    corpora, then each template's variants."""
    preset = get_preset(name)
    sources = [task_source(t) for t in preset.dump_order]
    for spec, tasks in preset.kind(causal).templates.items():
        sources += with_templates([task_source(t) for t in tasks], [spec])
    return sources
