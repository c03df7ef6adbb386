"""The ``Restorer`` interface every method implements, and the restorer registry.

A restorer maps a degraded batch ``(B,3,H,W)`` float in [0,1] to a restored batch of the same
shape on its device. Networks that need a size multiple declare ``pad_multiple``; the base class
reflect-pads and crops back (Restormer's test scripts), so metrics always see the original size.

New restorers are one module with one decorated class::

    @register_restorer("zero-dce", "zerodce")
    class ZeroDCE(Restorer):
        description = "Zero-DCE curve estimation (low-light)"
        degradations = ("lowlight",)
        def load(self, device): ...
        def _restore(self, lq): ...

and one line in ``restorers/__init__.py`` (built-ins) or an entry point in the group
``restorebench.restorers`` (plugins).
"""

from __future__ import annotations

import hashlib
import inspect
import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F

from harness.api.registries import RESTORERS

if TYPE_CHECKING:
    from harness.api.task import Task


@dataclass
class RestorerInfo:
    """What a results file and MLflow record about a restorer (``Restorer.info()``)."""

    name: str
    description: str
    paper: str = ""
    parameters: int = 0
    weights: list[dict[str, str]] = field(default_factory=list)  # [{file, sha256, uri}]
    licence: str = ""
    input_range: str = "RGB float [0,1]"
    degradations: tuple[str, ...] = ()
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["degradations"] = list(self.degradations)
        return d



def check_output(name: str, out: Any, *shapes: tuple[int, ...]) -> None:
    """Refuse a restorer output that would be scored wrongly instead of clamped into a number:
    not a float tensor (a uint8 image in 0..255 clamped to [0,1] is garbage), not one of the
    expected ``shapes`` (a larger output would be cropped silently), or holding inf/NaN (inf
    would be clamped to 1).

    Raises:
        ValueError: naming the restorer and what it returned.
    """
    if not isinstance(out, torch.Tensor):
        raise ValueError(f"{name} returned {type(out).__name__}, not a tensor")
    if not out.is_floating_point():
        raise ValueError(f"{name} returned dtype {str(out.dtype).replace('torch.', '')}; a "
                         f"restorer returns float values in [0, 1]")
    if tuple(out.shape) not in shapes:
        raise ValueError(f"{name} returned shape {tuple(out.shape)} for input "
                         f"{' or '.join(str(s) for s in dict.fromkeys(shapes))}")
    # A sum is non-finite when any value is (inf and NaN propagate), and allocates one number;
    # ``torch.isfinite(out).all()`` allocated |out| and three masks (2.06 MB at 256²: more than
    # identity's own output and clamp), which every CPU peak-memory figure then included. Only a
    # non-finite sum (a bad value, or finite values so large that they overflow) pays for the mask.
    if out.numel() and not bool(torch.isfinite(out.sum())):
        bad = int((~torch.isfinite(out)).sum())
        if bad:
            raise ValueError(f"{name} produced {bad} non-finite value(s) (inf/NaN) of {out.numel()}")

class Restorer(ABC):
    """Base class of every restorer.

    Subclasses implement :meth:`_restore` and, when they hold weights, :meth:`load`. Constructor
    keyword arguments are the restorer's config; they are captured automatically (diffusers'
    ``register_to_config`` idea) and logged as MLflow params, so a subclass only has to accept them.
    """

    #: One line for ``bench list restorers``.
    description: ClassVar[str] = ""
    #: Degradations the method is meant for ("lowlight", "noise", "blur", "haze", "rain", ...).
    degradations: ClassVar[tuple[str, ...]] = ()
    paper: ClassVar[str] = ""
    licence: ClassVar[str] = ""
    #: Networks that need H and W to be multiples of this are padded (reflect) and cropped back;
    #: an instance may set it from its config (e.g. a scale factor).
    pad_multiple: int = 1
    #: What ``_restore`` expects, for ``info()`` (e.g. values slightly outside [0,1] tolerated).
    input_range: ClassVar[str] = "RGB float [0,1]"
    #: Test-time optimisation needs autograd: ``restore`` then runs outside inference mode.
    needs_grad: ClassVar[bool] = False
    #: Methods with a training procedure set this and implement the training hooks below
    #: (:meth:`setup_training`, :meth:`training_step`; ``bench train`` drives them).
    trainable: ClassVar[bool] = False
    #: Options that fix the shapes of the networks a ``bench train`` checkpoint holds: with
    #: ``checkpoint=PATH`` the planner takes them from the file, so the path alone is enough.
    checkpoint_options: ClassVar[tuple[str, ...]] = ()
    #: What the runner does before timing the first image: ``"crop"`` restores a 64×64 crop
    #: (CUDA kernels, cuDNN autotune, lazy allocations); ``"none"`` skips it (test-time
    #: optimisation methods, whose restore is minutes of work); ``"custom"`` calls
    #: :meth:`warm_up`, which the class overrides with something cheap (e.g. one sampler step).
    warmup: ClassVar[str] = "crop"
    #: The restorer returns its input unchanged: its scores are the degraded input's, the
    #: baseline ``bench study`` draws gains over (declared by the class, so no harness code has
    #: to know a restorer's name).
    is_input_passthrough: ClassVar[bool] = False
    #: The registered name (set by the registry decorator).
    name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        original_init = cls.__dict__.get("__init__")
        if original_init is None:
            return
        signature = inspect.signature(original_init)

        def init(self: Restorer, *args: Any, **kw: Any) -> None:
            bound = signature.bind(self, *args, **kw)
            bound.apply_defaults()
            config = {k: v for k, v in bound.arguments.items() if k not in ("self", "kwargs")}
            config.update(bound.arguments.get("kwargs", {}))
            self._config = {**getattr(self, "_config", {}), **config}
            original_init(self, *args, **kw)

        init.__doc__ = original_init.__doc__
        init.__signature__ = signature  # type: ignore[attr-defined]
        init.__wrapped__ = original_init  # type: ignore[attr-defined]  (options read its hints)
        cls.__init__ = init  # type: ignore[method-assign]

    def __init__(self) -> None:
        self.device = torch.device("cpu")
        self.weights: list[dict[str, str]] = []

    # Lifecycle ----------------------------------------------------------------------------------
    def check_assets(self) -> None:
        """Raise ``AssetMissingError``/``AssetCorruptError`` now if :meth:`load` would.

        The runner calls it for every restorer of a run before the first one is loaded, so a
        missing weights file stops the run in seconds instead of after the other methods ran.
        Restorers with weights override it (cheaply: verify files, build nothing)."""
        return None

    def load(self, device: torch.device) -> None:
        """Load weights and move to ``device``; called once by the runner before warm-up."""
        self.device = device
        for module in self.modules():
            module.to(device).eval()

    def modules(self) -> list[torch.nn.Module]:
        """The networks this restorer holds (for ``.to(device)`` and parameter counts)."""
        return [v for v in vars(self).values() if isinstance(v, torch.nn.Module)]

    @property
    def config(self) -> dict[str, Any]:
        return dict(getattr(self, "_config", {}))

    # Inference ----------------------------------------------------------------------------------
    def restore(self, lq: torch.Tensor, meta: dict[str, Any] | None = None) -> torch.Tensor:
        """Restore ``lq`` (B,3,H,W) in [0,1]; returns the same shape, clamped to [0,1].

        ``meta`` carries what the task knows about the degradation (e.g. ``sigma`` for AWGN
        tasks); non-blind methods may use it and must say so in their params. The runner also
        puts the image's randomness there: ``meta["generator"]``, a CPU ``torch.Generator``
        seeded from (run seed, task, sample id), and ``meta["seed"]``, that seed (recorded in
        the sample record). Stochastic methods draw from it (or seed their own device generator
        from ``meta["seed"]``) so that a run is reproducible image by image, in any order, on
        any number of workers, and after ``--resume``. Runs under
        ``torch.inference_mode`` unless the class sets ``needs_grad`` (posterior samplers that
        differentiate through a decoder at test time, e.g. LD-RPS).
        """
        with torch.inference_mode(not self.needs_grad):
            return self._padded_restore(lq, meta)

    def _padded_restore(self, lq: torch.Tensor, meta: dict[str, Any] | None) -> torch.Tensor:
        if lq.ndim != 4 or lq.shape[1] != 3:
            raise ValueError(f"{self.name}: expected a (B,3,H,W) tensor, got {tuple(lq.shape)}")
        height, width = lq.shape[-2:]
        m = self.pad_multiple
        pad_h, pad_w = (-height) % m, (-width) % m
        x = lq
        if pad_h or pad_w:
            mode = "reflect" if pad_h < height and pad_w < width else "replicate"
            x = F.pad(lq, (0, pad_w, 0, pad_h), mode=mode)
        out = self._restore(x, meta or {})
        check_output(self.name, out, tuple(x.shape), tuple(lq.shape))
        return out[..., :height, :width].clamp(0.0, 1.0)

    def warm_up(self, lq: torch.Tensor, meta: dict[str, Any]) -> None:
        """Run once before the first timed image (``warmup = "crop"`` or ``"custom"``)."""
        self.restore(lq, meta)

    # Training (``trainable`` restorers; driven by harness.train.trainer / ``bench train``) -----------
    def setup_training(self, device: torch.device) -> None:
        """Build the networks for training (random init, or the config's ``init`` checkpoint),
        move them to ``device`` and put them in train mode. Called instead of :meth:`load`."""
        raise NotImplementedError(f"restorer {self.name!r} is not trainable")

    def train_modules(self) -> dict[str, torch.nn.Module]:
        """The networks that are optimised, averaged (EMA) and saved in checkpoints, by name."""
        return {k: v for k, v in vars(self).items() if isinstance(v, torch.nn.Module)}

    def parameter_groups(self) -> list[dict[str, Any]]:
        """AdamW parameter groups; default: every parameter of :meth:`train_modules` that
        requires grad. A phase that freezes a part (UnfoldLDM Phase II) returns fewer."""
        params = [p for m in self.train_modules().values() for p in m.parameters() if p.requires_grad]
        return [{"params": params}]

    def training_step(self, lq: torch.Tensor, gt: torch.Tensor, step: int,
                      total_steps: int) -> dict[str, torch.Tensor]:
        """Forward one batch and return the losses; ``"loss"`` is what is back-propagated,
        the other entries are logged. The loop owns backward, clipping, optimiser and EMA."""
        raise NotImplementedError(f"restorer {self.name!r} is not trainable")

    def state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        return {name: module.state_dict() for name, module in self.train_modules().items()}

    def load_state_dict(self, state: dict[str, dict[str, torch.Tensor]]) -> None:
        modules = self.train_modules()
        unknown = sorted(set(state) - set(modules))
        missing = sorted(set(modules) - set(state))
        if unknown or missing:
            raise ValueError(f"{self.name}: checkpoint holds networks {sorted(state)}, this "
                             f"restorer has {sorted(modules)} (unknown {unknown}, missing {missing})")
        for name, module in modules.items():
            module.load_state_dict(state[name], strict=True)

    def load_checkpoint(self, path: str | Path) -> None:
        """Load a ``bench train`` checkpoint (EMA weights when it has them) and record its
        file, sha256 and provenance in :attr:`weights`, so ``info()`` and MLflow carry them."""
        from harness.api.checkpoints import read_checkpoint

        checkpoint = read_checkpoint(Path(path))
        if checkpoint.restorer != self.name:
            raise ValueError(f"{path} is a checkpoint of {checkpoint.restorer!r}, not {self.name!r}")
        self.load_state_dict(checkpoint.inference_weights())
        self.weights = [*self.weights, checkpoint.weights_record()]

    @abstractmethod
    def _restore(self, lq: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
        """The method itself, on a padded batch."""

    # Description --------------------------------------------------------------------------------
    def info(self) -> RestorerInfo:
        params = sum(p.numel() for m in self.modules() for p in m.parameters())
        return RestorerInfo(name=self.name, description=self.description, paper=self.paper,
                            parameters=params, weights=list(self.weights), licence=self.licence,
                            degradations=tuple(self.degradations), config=self.config,
                            input_range=self.input_range)

    # Options per task (the planner's hooks; class-level: nothing is built) ----------------------
    @classmethod
    def options_for_task(cls, options: dict[str, Any], task: Task) -> dict[str, Any]:
        """The options this restorer runs ``task`` with, given the user's ``options``.

        Default: ``options`` unchanged. A method that chooses something per task (e.g. a
        checkpoint by the task's declared ``degradation``) returns the options with the choice
        written in; the planner then runs that (restorer, task) pair under its own spec, whose
        label, id, params and records carry the chosen options, and pairs that resolve to the
        same options share one spec (one load). Must be deterministic (resume keys on the result)
        and cheap (no weights are read), and must not raise for a task it does not handle."""
        return options

    @classmethod
    def resolve_checkpoint(cls, value: str) -> Path | None:
        """The file a ``checkpoint=`` value names, for :attr:`checkpoint_options` (the planner
        reads how the file was trained) and for loading. Default: the value as a path. A class
        with named checkpoints maps its names to files here, and returns None for a value that
        names no file until :meth:`options_for_task` resolves it; an unknown name raises
        ``ValueError`` (before any model loads)."""
        return Path(value).expanduser()

    @classmethod
    def weights_summary(cls) -> str:
        """One line for ``bench list restorers``: which weights come with the method and which
        must be given. Trainable methods need a ``bench train`` checkpoint unless they ship one
        (they override this); a method with declared weight assets says so in its override."""
        if cls.trainable:
            return "none shipped: give checkpoint=PATH (from bench train)"
        return "none needed"

    def config_hash(self) -> str:
        blob = json.dumps({"name": self.name, "config": self.config,
                           "weights": [w.get("sha256") for w in self.weights]},
                          sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]




def register_restorer(name: str, *aliases: str):
    """Class decorator: register a :class:`Restorer` under ``name`` and ``aliases``."""

    def wrap(cls: type[Restorer]) -> type[Restorer]:
        cls.name = name
        return RESTORERS.register(name, *aliases, target=cls)

    return wrap


def build_restorer(name: str, **kwargs: Any) -> Restorer:
    """Instantiate a registered restorer; unknown kwargs get a clear error naming valid ones."""
    cls = RESTORERS.get(name)
    signature = inspect.signature(cls.__init__)
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    valid = [p for p in signature.parameters if p not in ("self", "args", "kwargs")]
    unknown = [k for k in kwargs if k not in valid]
    if unknown and not accepts_any:
        raise ValueError(f"restorer {cls.name!r} has no option(s) {unknown}; valid: {valid}")
    return cls(**kwargs)
