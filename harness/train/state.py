"""The training state a checkpoint carries (:mod:`harness.api.checkpoints`), saved and restored
so that a killed-and-resumed run continues bit-for-bit: model, EMA, optimiser, scheduler, scaler,
every RNG state, the iteration and the seconds so far; plus what the loop keeps across resumes
(the MLflow run it logs to, the early-stopping count).

Checkpoints written before the ``mlflow`` and ``early_stop`` entries existed resume too: a
missing entry means a new MLflow run and an early-stopping count from zero.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.api.checkpoints import read_checkpoint
from harness.api.restorer import Restorer
from harness.io.results import FileLock
from harness.train.recipe import Recipe


def rng_state() -> dict[str, Any]:
    """Every RNG the loop draws from (torch CPU and CUDA, numpy, python), in plain types."""
    state = {"torch": torch.get_rng_state(), "numpy": json.dumps(_np_state()),
             "python": json.dumps(random.getstate())}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _np_state() -> list[Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return [kind, keys.tolist(), pos, has_gauss, cached]


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = json.loads(state["numpy"])
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    python = json.loads(state["python"])
    random.setstate((python[0], tuple(python[1]), python[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def autocast_dtype(recipe: Recipe, device: torch.device) -> torch.dtype | None:
    """Mixed precision is a CUDA option (``auto`` = bf16 there); the CPU trains in float32."""
    if device.type != "cuda" or recipe.amp == "off":
        return None
    return torch.float16 if recipe.amp == "fp16" else torch.bfloat16


@dataclass
class LoopState:
    """What the loop updates: the optimisation state, where it starts, the last validation,
    and what it keeps across resumes."""

    modules: dict[str, torch.nn.Module]
    optimizer: Any
    scheduler: Any
    scaler: Any
    ema: dict[str, Any] | None
    dtype: torch.dtype | None
    start: int = 0
    #: the last iteration done (``start`` until the loop steps)
    iteration: int = 0
    elapsed_before: float = 0.0
    validation: dict[str, float] = field(default_factory=dict)
    #: the MLflow parent run's record (``run_id``, ``tracking_uri``, ``experiment_id``), once known
    mlflow: dict[str, Any] | None = None
    #: the early-stopping count as the checkpoint stores it (:meth:`EarlyStopper.state`)
    early_stop: dict[str, Any] | None = None

    def inference_weights(self, restorer: Restorer) -> dict[str, dict[str, torch.Tensor]]:
        """What validation evaluates and what ships: the EMA when on, else the model."""
        if self.ema is not None:
            return {n: a.module.state_dict() for n, a in self.ema.items()}
        return restorer.state_dict()


def training_state(state: LoopState, step: int, total_iters: int, seconds: float,
                   identity: str) -> dict[str, Any]:
    """The checkpoint's ``training`` entry at iteration ``step`` (plain types and tensors only:
    checkpoints are read with ``weights_only=True``)."""
    training = {"optimizer": state.optimizer.state_dict(), "scheduler": state.scheduler.state_dict(),
                "scaler": state.scaler.state_dict(), "rng": rng_state(), "iteration": step,
                "total_iters": total_iters, "seconds": seconds,
                "ema_full": {n: a.state_dict() for n, a in state.ema.items()} if state.ema else None,
                "identity": identity}
    if state.mlflow:
        training["mlflow"] = dict(state.mlflow)
    if state.early_stop is not None:
        training["early_stop"] = dict(state.early_stop)
    return training


def restore_training(out: Path, restorer: Restorer, state: LoopState, identity: str) -> None:
    """Load the checkpoint at ``out`` into ``restorer`` and ``state``; ValueError for a file
    without training state or one trained with another recipe (``identity`` differs)."""
    checkpoint = read_checkpoint(out)
    training = checkpoint.training
    if training is None:
        raise ValueError(f"{out} holds no training state (an exported checkpoint); it cannot "
                         f"be resumed. Start a new training with --init or another --out")
    if training["identity"] != identity:
        raise ValueError(f"--resume: {out} was trained with another recipe:\n  checkpoint: "
                         f"{training['identity']}\n  this command: {identity}\nuse the same "
                         f"options or another --out")
    restorer.load_state_dict(checkpoint.model)
    state.optimizer.load_state_dict(training["optimizer"])
    state.scheduler.load_state_dict(training["scheduler"])
    state.scaler.load_state_dict(training["scaler"])
    if state.ema is not None and training.get("ema_full"):
        for name, average in state.ema.items():
            average.load_state_dict(training["ema_full"][name])
    set_rng_state(training["rng"])
    state.start = state.iteration = int(training["iteration"])
    state.elapsed_before = float(training.get("seconds", 0.0))
    state.validation = dict(checkpoint.provenance.get("last_validation", {}))
    state.mlflow = training.get("mlflow") or None
    state.early_stop = training.get("early_stop") or None


def checkpoint_lock(out: Path) -> FileLock:
    """The lock of a training's checkpoint, ``.<name>.lock`` beside it (as ``bench run`` locks
    its run folder): released by the kernel when the holder dies, so never stale."""
    return FileLock(out.with_name(f".{out.name}.lock"),
                    f"{out} is being trained by another bench train ({{holder}}); wait for it to "
                    "finish (then --resume to continue it) or choose another --out")
