"""Built-in tasks. Importing this package registers every preset (the modules are light: the
data are read only when a task is used). External tasks plug in through the
``restorebench.tasks`` entry-point group."""

from tasks import (  # noqa: F401  (register presets)
    awgn,
    deblur,
    dehaze,
    demo,
    denoise_real,
    derain,
    folder,
    lowlight,
    synthetic,
    underwater,
)
