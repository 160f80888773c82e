"""The ``hs`` command group: thin commands over hsstore and analysis, one module a kind of command.

Each command imports what it runs inside its body, so ``hs --help`` (and a command's own --help)
does not load numpy's heavier users, zarr, numba or torch.
"""
from __future__ import annotations

import os
import sys

import click

from hsstore.errors import HsError, os_error
from hsstore.version import __version__

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
            click.echo(f"hs: error: {exc}", err=True)
            sys.exit(exc.exit_status)
        except BrokenPipeError:  # the reader went away (hs info | head -1): stop quietly, as Unix tools do
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the final flush cannot fail
            sys.exit(0)
        except OSError as exc:
            click.echo(f"hs: error: {os_error(exc)}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("hs: interrupted; rerun the same command to resume", err=True)
            sys.exit(130)


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

if __name__ == "__main__":
    hs()
