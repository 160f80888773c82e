"""The ``hs`` command group: thin commands over hsstore and analysis, one module a kind of command.

Each command imports what it runs inside its body, so ``hs --help`` (and a command's own --help)
does not load numpy's heavier users, zarr, numba or torch.
"""
from __future__ import annotations

import logging
import os
import sys

import click

from hsstore.errors import HsError, os_error
from hsstore.version import __version__

from .b2s_cmd import b2s_command
from .dump_cmd import dump, merge
from .eval_cmd import eval_command
from .report_cmd import report_command
from .steps_cmd import steps_command
from .store_cmds import export, info, show, verify
from .tasks_cmd import tasks
from .vectors_cmd import embed, encode, fit


class HsGroup(click.Group):
    """Prints an HsError, or an OSError from the disk, as one line (no traceback) and exits with the
    error's status: 2 for a usage error, 1 for missing or corrupt data and a failing disk."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except HsError as exc:
            _stop(f"hs: error: {exc}", exc.exit_status)
        except BrokenPipeError:  # the reader went away (hs info | head -1): stop quietly, as Unix tools do
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the final flush cannot fail
            sys.exit(0)
        except OSError as exc:
            _stop(f"hs: error: {os_error(exc)}", 1)
        except KeyboardInterrupt:
            _stop("hs: interrupted; rerun the same command to resume", 130)


def _stop(line: str, status: int) -> None:
    """End on one line. Zarr runs its I/O as asyncio tasks on a thread of its own: a read or write cut
    short by the error leaves some pending, and asyncio would log "Task was destroyed but it is
    pending!" for each as the interpreter exits; they are this error's, so they are not shown."""
    logging.getLogger("asyncio").setLevel(logging.CRITICAL + 1)
    click.echo(line, err=True)
    sys.exit(status)


@click.group(cls=HsGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="hs")
def hs():
    """Cached hidden states of transformers, and sentence embeddings made from them offline.

    \b
    Run the model once and store every layer of every token:
      hs dump --model minilm --task stsb --task sts12 --out runs/minilm
    Then recombine layers, pool tokens, post-process and evaluate on a CPU, without the model:
      hs eval runs/minilm --task stsb --layers last --pool mean
    Look inside a store:
      hs info runs/minilm;  hs show runs/minilm stsb 0
    Take a recipe out: its vectors, the recipe fitted once, new texts encoded with it:
      hs embed runs/minilm -t stsb -r 'layers=last' --out stsb.npy
      hs fit runs/minilm -r 'post=whiten@wikitext2' --out fitted/;  hs encode fitted/ --input my.txt --out my.npy
    """


for command in (dump, merge, tasks, info, show, export, verify, embed, fit, encode):
    hs.add_command(command)
hs.add_command(eval_command, "eval")
hs.add_command(steps_command, "steps")
hs.add_command(report_command, "report")
hs.add_command(b2s_command, "b2s")

if __name__ == "__main__":
    hs()
