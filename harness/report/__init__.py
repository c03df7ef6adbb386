"""Reports over finished runs: leaderboards (rich, markdown, CSV, LaTeX), paired comparisons and a
self-contained HTML report.

Everything here reads run folders through one reader, :func:`harness.report.load.read_run`, and
never recomputes a metric: a report is a view of ``results.json`` and ``samples.jsonl`` (plus the
previews the runner saved), so it can be rebuilt on a laptop from folders copied off a cluster.

Modules: :mod:`~harness.report.load` (the reader; each metric's direction and group come from
:mod:`harness.metrics.directions`), :mod:`~.leaderboard`, :mod:`~.paired`, :mod:`~.figures`,
:mod:`~.html`. The ``bench report`` and ``bench compare`` commands are in
:mod:`harness.cli.report`.
"""
