"""Moved to :mod:`harness.api.metric` (the plugin API); this old path still works and warns.

Import from :mod:`harness.api` instead: ``from harness.api import ...``.
"""

import sys
import warnings

from harness.api import metric as _moved

warnings.warn("harness.metric_api has moved to harness.api.metric; import from harness.api "
              "(this path will be removed)", FutureWarning, stacklevel=2)
sys.modules[__name__] = _moved
