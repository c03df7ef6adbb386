"""``bench assets list|import|verify``: the offline asset cache."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from harness.cli.common import console, err_console, fail

app = typer.Typer(
    rich_markup_mode=None, help="The offline asset cache (weights, metric parameters).", no_args_is_help=True)


@app.command("list")
def assets_list() -> None:
    """Every declared asset file, its state in the cache and its canonical source."""
    from harness.assets.cache import bench_home, status
    from harness.assets.declarations import load_all_declarations

    table = Table(title=f"assets in {bench_home()}")
    for column in ("asset", "file", "status", "source"):
        table.add_column(column)
    for item in status(load_all_declarations()):
        colour = {"ok": "green", "missing": "yellow", "corrupt": "red"}[item.status]
        table.add_row(escape(item.asset), escape(item.file), f"[{colour}]{item.status}[/]",
                      escape(item.source))
    console.print(table)


@app.command("import")
def assets_import(folder: Annotated[Path, typer.Argument(help="Folder to search (recursively).")]
                  ) -> None:
    """Copy declared files found in FOLDER (matched by their full sha256) into the cache."""
    from harness.assets.cache import import_dir
    from harness.assets.declarations import load_all_declarations

    try:
        report = import_dir(folder, load_all_declarations())
    except NotADirectoryError as exc:
        fail(str(exc))
    for item in report.imported:
        console.print(f"[green]imported[/] {escape(item.asset)}/{escape(item.file)}  ← {escape(item.source)}")
    for item in report.present:
        console.print(f"already verified {escape(item.asset)}/{escape(item.file)} (kept)")
    for asset, file in report.prefix_only:
        err_console.print(f"[yellow]not importable[/] {escape(asset)}/{escape(file)}: only a sha256 "
                          f"prefix is declared; bench fetches it from its source when online")
    from harness.metrics.suite import pyiqa_cache_dir, pyiqa_named_files

    skipped = pyiqa_named_files(folder)
    for path in skipped:
        err_console.print(f"[yellow]not imported[/] {escape(str(path))}: named like a pyiqa weight "
                          f"file, but pyiqa publishes no sha256 to verify it against; if you "
                          f"trust it, copy it to {escape(str(pyiqa_cache_dir() / path.name))} "
                          f"yourself (loaded weights-only; docs/security.md)")
    console.print(f"{len(report.imported)} file(s) imported into the cache"
                  + (f", {len(report.present)} already there" if report.present else ""))


@app.command("verify")
def assets_verify() -> None:
    """Re-hash every cached file (stamps are not trusted here); exit 1 if any is corrupt."""
    from harness.assets.cache import status
    from harness.assets.declarations import load_all_declarations

    corrupt = 0
    for item in status(load_all_declarations(), rehash=True):
        if item.status == "corrupt":
            corrupt += 1
            err_console.print(f"[red]corrupt[/] {escape(str(item.path))}  (sha256 differs from the "
                              f"declared one; delete it and re-import or re-download from "
                              f"{escape(item.source)})")
        elif item.status == "ok":
            console.print(f"[green]ok[/] {escape(item.asset)}/{escape(item.file)}  (sha256 re-hashed)")
        else:
            console.print(f"[yellow]missing[/] {escape(item.asset)}/{escape(item.file)}  "
                          f"(source: {escape(item.source)})")
    if corrupt:
        raise typer.Exit(1)


