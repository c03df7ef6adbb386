"""Published numbers beside ours: ``results/reference/published.csv``, curated by hand.

One row per (restorer, task, metric) with the value, its source, flags (``published``, plus
``GPU/full data`` where the paper's model or data differ from what runs here) and a note on the
protocol. Nothing here is measured; the leaderboards show the value with ours − published, and
``docs/baselines.md`` explains any difference beyond 0.05 dB.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

PUBLISHED_FILE = "published.csv"
COLUMNS = ("restorer", "task", "metric", "value", "source", "flags", "note")


@dataclass(frozen=True)
class Published:
    restorer: str
    task: str
    metric: str
    value: float
    source: str
    flags: tuple[str, ...]
    note: str

    @property
    def comparable(self) -> bool:
        """A paper's different model or data (``GPU/full data``) is shown, not compared."""
        return "GPU/full data" not in self.flags


def read_published(folder: Path) -> list[Published]:
    """The curated rows; a malformed file is a one-line error naming the line."""
    path = Path(folder) / PUBLISHED_FILE
    if not path.is_file():
        return []
    rows = []
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise ValueError(f"{path}: columns must be {', '.join(COLUMNS)}")
        for line, row in enumerate(reader, start=2):
            try:
                value = float(row["value"])
            except ValueError:
                raise ValueError(f"{path} line {line}: value {row['value']!r} is not a number") from None
            rows.append(Published(row["restorer"], row["task"], row["metric"], value, row["source"],
                                  tuple(f.strip() for f in row["flags"].split(";") if f.strip()),
                                  row["note"]))
    return rows
