"""The identity restorer: returns its input. Its scores are the degraded input's scores, the
floor every method is compared with."""

from __future__ import annotations

from typing import Any

import torch

from harness.api.restorer import Restorer, register_restorer


@register_restorer("identity", "none", "input")
class Identity(Restorer):
    description = "Returns the degraded input unchanged (scores of the input itself)"
    degradations = ("any",)
    is_input_passthrough = True  # the study figures' default baseline

    def _restore(self, lq: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
        return lq.clone()
