"""Moved to :mod:`harness.api.restorer` (the plugin API); this old path still works and warns.

Import from :mod:`harness.api` instead: ``from harness.api import ...``.
"""

import sys
import warnings

from harness.api import restorer as _moved

warnings.warn("harness.restorer has moved to harness.api.restorer; import from harness.api "
              "(this path will be removed)", FutureWarning, stacklevel=2)
sys.modules[__name__] = _moved
