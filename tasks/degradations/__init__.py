"""Synthetic degradations: seeded, recorded operators with a 1-5 severity scale.

``build_degradation("noise+blur+lowlight", 3)(image, generator) -> (degraded, params)``.
See :mod:`.base` for the operator contract and ``docs/degradations.md`` for every model and its
parameter ranges.
"""

from tasks.degradations.base import SEVERITIES, Degradation, check_severity
from tasks.degradations.compose import (
    FAMILY_DEFAULTS,
    NAMED_MIXTURES,
    OPERATORS,
    Compose,
    build_degradation,
    canonical_spec,
)

__all__ = ["FAMILY_DEFAULTS", "NAMED_MIXTURES", "OPERATORS", "SEVERITIES", "Compose", "Degradation",
           "build_degradation", "canonical_spec", "check_severity"]
