"""Moved to :mod:`harness.api.options` (the plugin API); this old path still works and warns.

Import from :mod:`harness.api` instead: ``from harness.api import ...``.
"""

import sys
import warnings

from harness.api import options as _moved

warnings.warn("harness.options has moved to harness.api.options; import from harness.api "
              "(this path will be removed)", FutureWarning, stacklevel=2)
sys.modules[__name__] = _moved
