"""What every ``bench`` command shares: the consoles, the error exit, the errors that exit
with one line, and ``--limit``.

In its own module so that command groups never import :mod:`harness.cli.main` (which attaches them):
``python -m harness.cli.main`` would otherwise import the CLI twice, once as ``__main__``.
"""

from __future__ import annotations

import sys
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from harness.api.registry import UnknownNameError

console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``message`` literally (option syntax has brackets rich would eat) and exit."""
    err_console.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(code)


#: The user's to fix, so a command prints their message on one line (exit 2) instead of a
#: traceback. The harness's own errors subclass these: DataMissingError and AssetMissingError are
#: FileNotFoundErrors, RunLockedError a FileExistsError, AssetCorruptError, OptionError,
#: ImageReadError and RunReadError ValueErrors; ImportError is a missing optional package.
USER_ERRORS: tuple[type[Exception], ...] = (UnknownNameError, FileNotFoundError, FileExistsError,
                                            ValueError, ImportError)

#: Errors of modules a command may not have loaded: ``(module, class)``, looked up only if that
#: module is imported (it cannot have raised otherwise), so an error exit never imports torch.
_LAZY_USER_ERRORS = (("harness.run.executor", "ExecutorError"),)


def user_errors(*extra: type[Exception]) -> tuple[type[Exception], ...]:
    """The exception classes a command turns into a one-line error, for ``except``; ``extra``
    adds a command's own (``bench train``: ``FloatingPointError`` for a diverged loss)."""
    lazy = tuple(getattr(sys.modules[module], name) for module, name in _LAZY_USER_ERRORS
                 if module in sys.modules)
    return USER_ERRORS + lazy + extra


def check_limit(limit: int | None) -> int | None:
    """``--limit N`` counts samples, so N >= 1: checked while the options are parsed, before
    anything loads (``--limit 0`` used to exit quietly here and fail in the planner)."""
    if limit is not None and limit < 1:
        fail(f"--limit {limit}: give a number of samples >= 1, or leave --limit out to use them all")
    return limit


Limit = Annotated[int | None, typer.Option(
    callback=check_limit, help="Evaluate only the first N samples of each task (N >= 1).")]


def check_threads(threads: int | None) -> int | None:
    """``--threads N`` counts torch's intra-op threads, so N >= 1 (checked while parsing)."""
    if threads is not None and threads < 1:
        fail(f"--threads {threads}: give 1 or more, or leave --threads out to use the CPUs this "
             "process may use")
    return threads


Threads = Annotated[int | None, typer.Option(
    callback=check_threads, help="torch CPU threads (default: OMP_NUM_THREADS if set, else the CPUs "
    "this process may use: its affinity and cgroup quota). Recorded with every result; latency "
    "is only comparable at the same thread count.")]
