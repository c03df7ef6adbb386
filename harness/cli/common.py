"""What every ``bench`` command group shares: the consoles and the error exit.

In its own module so that command groups never import :mod:`harness.cli.main` (which attaches them):
``python -m harness.cli.main`` would otherwise import the CLI twice, once as ``__main__``.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


def fail(message: str, code: int = 2) -> None:
    """Print ``message`` literally (option syntax has brackets rich would eat) and exit."""
    err_console.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(code)
