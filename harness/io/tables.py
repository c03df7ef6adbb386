"""Table cells that carry user text (restorer labels, task names, paths, error messages) safely
into markdown and CSV files.

A label is whatever the user typed (``-r 'x=<script>...'``, a folder name), and reports are opened
in markdown renderers and spreadsheets:

* :func:`markdown_cell`: HTML's ``& < >`` become entities (no tag survives into a rendered
  page), and the markdown that could do harm (``| \\ [ ]``) is backslash-escaped, so a cell
  cannot end the table or open a link or an image (``[x](javascript:...)``, ``![](tracker)``).
  Emphasis (``* _``) and code spans (`````) stay: metric names are snake_case, messages quote
  commands in backticks, and neither changes what a cell does, only how it looks.
* :func:`csv_cell`: a text cell that starts with ``= + - @`` (or a tab / carriage return) is a
  formula to Excel, LibreOffice and Google Sheets (``=HYPERLINK(...)``, ``=cmd|...``); it gets a
  leading apostrophe (OWASP "CSV injection"), which spreadsheets read as "this is text".
  Numbers are left alone (``-0.5`` stays a number).
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

_MARKDOWN_SPECIAL = re.compile(r"([\\\[\]|])")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def markdown_cell(text: Any) -> str:
    """``text`` as literal markdown on one line (see the module docstring)."""
    escaped = html.escape(str(text), quote=False)
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", escaped)
    return escaped.replace("\r", " ").replace("\n", " ")


def csv_cell(value: Any) -> Any:
    """``value`` unchanged unless it is text a spreadsheet would run as a formula, which gets a
    leading ``'``."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def write_csv(frame: Any, path: str | Path, **kwargs: Any) -> None:
    """``frame.to_csv(path, **kwargs)`` with every text cell (and column name) passed through
    :func:`csv_cell`."""
    from pandas.api.types import is_numeric_dtype

    safe = frame.copy()
    safe.columns = [csv_cell(c) for c in safe.columns]
    for column in safe.columns:
        if not is_numeric_dtype(safe[column]):  # object or string dtype (pandas >= 3: "str")
            safe[column] = safe[column].map(csv_cell)
    if not is_numeric_dtype(safe.index):
        safe.index = safe.index.map(csv_cell)
    safe.to_csv(path, **kwargs)
