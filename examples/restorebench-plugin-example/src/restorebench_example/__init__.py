"""An example restorebench plugin: a restorer (:mod:`.restorer`), a task (:mod:`.task`) and a
metric (:mod:`.metric`), registered through entry points in ``pyproject.toml``.

Everything restorebench-specific is imported from one module, :mod:`harness.api`.
"""
