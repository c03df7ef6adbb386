"""Built-in tasks. Importing this package registers every preset (the modules are light: the
data are read only when a task is used). External tasks plug in through the
``restorebench.tasks`` entry-point group."""

from harness.api.task import TASKS  # noqa: E402
from tasks import (  # noqa: F401  (register presets)
    awgn,
    colorize,
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

#: `bench run` with no arguments: the embedded demo (scikit-image photos, no data root needed).
TASKS.set_defaults("demo")
