"""Every declared asset: the metrics' files and each registered restorer's weights.

Kept apart from the cache so that the cache never imports what declares into it.
"""

from __future__ import annotations

from harness.assets.cache import ASSETS, Asset


def load_all_declarations() -> dict[str, Asset]:
    """Import every restorer and metric module so that their assets are declared."""
    from harness.api.restorer import RESTORERS
    from harness.assets import metric_weights  # noqa: F401  (declares metric assets)

    for name in RESTORERS.names():
        try:
            RESTORERS.get(name)
        except ImportError:
            continue
    return dict(ASSETS)
