"""What every published-network baseline shares: one network, one checkpoint from the asset cache.

A baseline network module declares its weights as a :class:`harness.assets.cache.Asset` (canonical URL
+ sha256), builds its architecture from the paper, and subclasses :class:`PretrainedNetwork`,
which loads the checkpoint the same way for all of them:

1. :func:`harness.assets.cache.fetch` returns the cached file after checking its sha256 (absent →
   ``AssetMissingError`` naming the source and ``bench assets import``; wrong bytes →
   ``AssetCorruptError``), so nothing is unpickled before it has been verified;
2. ``torch.load(..., map_location="cpu", weights_only=True)``: tensors only, no code;
3. the subclass's :meth:`~PretrainedNetwork.filter_checkpoint` maps the publisher's keys onto the
   module (timm's ``checkpoint_filter_fn``), then ``load_state_dict(strict=True)``: a checkpoint
   that does not fit the architecture is an error, never a half-initialised network.

This module is private helper code, not a restorer: it registers nothing.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from harness.api.restorer import Restorer
from harness.assets import Asset, fetch
from harness.io.safe_load import load_torch_file


def read_checkpoint(asset: Asset, file_name: str) -> dict[str, torch.Tensor]:
    """The verified state dict of one asset file (raises the asset errors, see module doc)."""
    path = fetch(asset.name, file_name)
    try:
        state = load_torch_file(path, what=f"weights of asset {asset.name!r}")
    except Exception as exc:  # a verified file that still fails to unpickle is a declaration bug
        raise ValueError(f"{path} passed its sha256 check but torch.load failed: "
                         f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a state dict of tensors, got {type(state).__name__}")
    return dict(state)


def weights_record(asset: Asset, file_name: str) -> dict[str, str]:
    """The ``{file, sha256, uri}`` entry that results.json and MLflow record for a weights file."""
    spec = asset.file(file_name)
    return {"file": f"{asset.name}/{spec.name}", "sha256": spec.sha256, "uri": spec.url}


class PretrainedNetwork(Restorer):
    """A restorer that is one published network with one checkpoint file.

    Subclasses set ``asset`` and ``input_range``, implement :meth:`build_network` and
    :meth:`weights_file`, call :meth:`_init_network` at the end of ``__init__`` and use
    ``self.net`` in ``_restore``. The network is built (randomly initialised) at construction so
    that ``info()`` can count parameters; it is usable only after :meth:`load`.
    """

    #: The weights declaration (one module-level ``register_asset(...)`` per network family).
    asset: ClassVar[Asset]

    net: nn.Module

    @abstractmethod
    def build_network(self) -> nn.Module:
        """The architecture for the configured variant, randomly initialised."""

    @classmethod
    def weights_summary(cls) -> str:
        return f"ships the published weights (asset {cls.asset.name}; downloaded or imported)"

    def weights_file(self) -> str:
        """Name of the asset file for the configured variant (default: the asset's only file)."""
        return self.asset.file().name

    def filter_checkpoint(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Map the published checkpoint's keys onto :attr:`net` (identity by default)."""
        return state

    def _init_network(self) -> None:
        self.net = self.build_network()
        self.weights = [weights_record(self.asset, self.weights_file())]
        self._loaded = False

    def check_assets(self) -> None:
        fetch(self.asset.name, self.weights_file())

    def load(self, device: torch.device) -> None:
        file_name = self.weights_file()
        state = self.filter_checkpoint(read_checkpoint(self.asset, file_name))
        try:
            self.net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ValueError(f"{self.name}: {self.asset.name}/{file_name} does not fit "
                             f"{type(self.net).__name__}: {exc}") from exc
        self._loaded = True
        super().load(device)

    def restore(self, lq: torch.Tensor, meta: dict[str, Any] | None = None) -> torch.Tensor:
        if not getattr(self, "_loaded", False):
            raise RuntimeError(f"{self.name}: call load(device) before restore(); the network "
                               f"has no weights yet")
        return super().restore(lq, meta)
