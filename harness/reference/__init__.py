"""The project's reference results (``results/reference/``) and ``bench reproduce``.

Every offline restorer × every benchmark preset whose data are present, one cell at a time:

* :mod:`~harness.reference.scope`: which restorers and tasks are in (``scope.json``: the reasoned
  exclusions, the task families, the drift subset) and which tasks this machine can run;
* :mod:`~harness.reference.cells`: one cell = one in-process ``run_benchmark`` call, turned into a
  cell file with its provenance (the one place that reads timing fields from ``results.json``);
* :mod:`~harness.reference.store`: the folder: per-cell files, merged deterministically into
  ``reference.jsonl`` (one row per restorer × task × metric);
* :mod:`~harness.reference.tolerance`: the per-metric tolerances, declared once;
* :mod:`~harness.reference.regenerate`: ``bench reproduce --all`` (resumable, cheap cells first);
* :mod:`~harness.reference.drift`: the small fixed subset the test suite re-runs;
* :mod:`~harness.reference.render`: markdown leaderboards per family and the README section;
* :mod:`~harness.reference.viewer`: the reference as a ``results.json``-shaped payload for
  ``bench report results/reference``.

Nothing here names a concrete restorer or task: those live in ``results/reference/scope.json``.
"""
