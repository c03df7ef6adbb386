"""Built-in tasks. Importing this package registers every preset (the modules are light: the
data are read only when a task is used). External tasks plug in through the
``restorebench.tasks`` entry-point group."""

from tasks import awgn, demo, folder, synthetic  # noqa: F401  (register presets)
