"""Moved to :mod:`harness.api.task` (the plugin API); this old path still works and warns.

Import from :mod:`harness.api` instead: ``from harness.api import ...``.
"""

import sys
import warnings

from harness.api import task as _moved

warnings.warn("harness.task has moved to harness.api.task; import from harness.api "
              "(this path will be removed)", FutureWarning, stacklevel=2)
sys.modules[__name__] = _moved
