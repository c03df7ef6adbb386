"""The ``bench train`` checkpoint format: weights, training state and provenance in one file.

A checkpoint is a ``torch.save`` dict that ``torch.load(weights_only=True)`` can read (tensors,
dicts, lists and plain values only; no pickled code):

=================  =======================================================================
``format``         ``"restorebench-checkpoint"``, ``version`` 1
``restorer``       registered name; ``config``: the restorer's options when it was trained
``model``          ``{network name: state_dict}`` (:meth:`Restorer.train_modules`)
``ema``            the exponential moving average of ``model``, or ``None``
``weights_sha256`` sha256 over the inference weights (EMA when present), key by key: a
                   file cannot hold its own file hash, so it holds this, and
                   :func:`read_checkpoint` recomputes it (a corrupted or edited tensor fails)
``training``       ``optimizer``, ``scheduler``, ``scaler``, ``rng`` (torch CPU/CUDA, numpy,
                   python), ``iteration``, ``total_iters``: enough to resume bit-for-bit
``provenance``     ``command`` (argv), ``train_set`` spec, ``train_seed``, ``val_task``,
                   ``git_hash``, ``created``, ``recipe`` (the loop's hyper-parameters),
                   ``last_validation`` (metric → value)
=================  =======================================================================

Next to ``CKPT.pt`` the trainer writes ``CKPT.pt.json``: the provenance plus the file's own
sha256, for people and for tools that should not unpickle anything. ``bench run -r
'NAME[checkpoint=CKPT.pt]'`` loads the weights and logs the file sha256, ``weights_sha256`` and
the provenance as run params. :func:`export_weights` strips the training state (what ships).

A checkpoint describes itself: ``checkpoint=PATH`` alone is enough to evaluate it, because
:func:`checkpoint_options` reads the options that fix the networks' shapes (the class's
``checkpoint_options``, e.g. UnfoldLDM's ``config``, ``prior``, ``stages``) from the file and the
planner fills them in; an option the user gives that disagrees with the file is refused with both
values. They are read from the checkpoint itself, never from the ``.json`` sidecar (a sidecar can
be edited or belong to another file).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from harness.io.hashing import file_sha256
from harness.io.safe_load import load_torch_file

FORMAT = "restorebench-checkpoint"
VERSION = 1


def weights_digest(weights: dict[str, dict[str, torch.Tensor]]) -> str:
    """sha256 over (network, key, dtype, shape, bytes) in sorted order; device-independent."""
    digest = hashlib.sha256()
    for network in sorted(weights):
        for key in sorted(weights[network]):
            tensor = weights[network][key].detach().cpu().contiguous().reshape(-1)  # 0-dim too
            shape = tuple(weights[network][key].shape)
            digest.update(f"{network}/{key}|{tensor.dtype}|{shape}|".encode())
            digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


@dataclass
class Checkpoint:
    """A read checkpoint; ``path`` and ``sha256`` are the file's."""

    path: Path
    sha256: str
    restorer: str
    config: dict[str, Any]
    model: dict[str, dict[str, torch.Tensor]]
    ema: dict[str, dict[str, torch.Tensor]] | None
    weights_sha256: str
    training: dict[str, Any] | None
    provenance: dict[str, Any]

    def inference_weights(self) -> dict[str, dict[str, torch.Tensor]]:
        """EMA weights when the run kept an average (what is evaluated), else the raw ones."""
        return self.ema if self.ema is not None else self.model

    def weights_record(self) -> dict[str, Any]:
        """The ``Restorer.weights`` entry: file, sha256, uri and what made it."""
        return {"file": str(self.path), "sha256": self.sha256, "uri": self.path.resolve().as_uri(),
                "weights_sha256": self.weights_sha256,
                "provenance": json.dumps(self.provenance, sort_keys=True, default=str)}


def _atomic_save(payload: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        torch.save(payload, fh)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


def write_checkpoint(path: Path, *, restorer: str, config: dict[str, Any],
                     model: dict[str, dict[str, torch.Tensor]],
                     ema: dict[str, dict[str, torch.Tensor]] | None,
                     training: dict[str, Any] | None, provenance: dict[str, Any]) -> str:
    """Write atomically (a kill mid-write leaves the previous file intact); returns the file's
    sha256, also written with the provenance to ``<path>.json``."""
    path = Path(path)
    cpu = lambda w: {n: {k: v.detach().cpu() for k, v in s.items()} for n, s in w.items()}  # noqa: E731
    model, ema = cpu(model), cpu(ema) if ema is not None else None
    payload = {"format": FORMAT, "version": VERSION, "restorer": restorer,
               "config": json.loads(json.dumps(config, default=str)), "model": model, "ema": ema,
               "weights_sha256": weights_digest(ema if ema is not None else model),
               "training": training, "provenance": json.loads(json.dumps(provenance, default=str))}
    _atomic_save(payload, path)
    sha = file_sha256(path)
    sidecar = {"file": path.name, "sha256": sha, "restorer": restorer, "config": payload["config"],
               "weights_sha256": payload["weights_sha256"], "has_training_state": training is not None,
               "iteration": (training or {}).get("iteration"), "provenance": payload["provenance"]}
    tmp = path.with_name(f".{path.name}.json.tmp{os.getpid()}")
    tmp.write_text(json.dumps(sidecar, indent=2), encoding="utf-8")
    tmp.replace(path.with_name(path.name + ".json"))
    return sha


def _load_payload(path: Path, *, mmap: bool = False) -> dict[str, Any]:
    """The checkpoint dict, read with ``weights_only=True`` (an untrusted file runs no code);
    ``mmap`` leaves the tensors on disk (reading the header of a large file costs nothing)."""
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist; train one with `bench train "
                                f"... --out {path}` or give the path of an existing .pt file")
    payload = load_torch_file(path, what="checkpoint", mmap=mmap)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a restorebench checkpoint (no format={FORMAT!r}); "
                         f"checkpoints come from `bench train`")
    if payload.get("version") != VERSION:
        raise ValueError(f"{path}: checkpoint version {payload.get('version')} is not supported "
                         f"(this restorebench reads version {VERSION})")
    return payload


def checkpoint_options(path: str | Path, restorer: str, keys: tuple[str, ...],
                       given: dict[str, Any]) -> dict[str, Any]:
    """The options among ``keys`` that the checkpoint at ``path`` was trained with, to build
    ``restorer`` so that its networks match the file (see the module docstring).

    Raises ``ValueError`` when the file is of another restorer, or when an option in ``given``
    (what the user wrote) disagrees with the file, naming both values."""
    path = Path(path).expanduser()
    payload = _load_payload(path, mmap=True)
    if payload.get("restorer") != restorer:
        raise ValueError(f"{path} is a checkpoint of {payload.get('restorer')!r}, not {restorer!r}; "
                         f"use -r '{payload.get('restorer')}[checkpoint={path}]'")
    trained = payload.get("config") or {}
    conflicts = [f"{k}={given[k]!r} (checkpoint: {k}={trained[k]!r})" for k in keys
                 if k in given and k in trained and given[k] != trained[k]]
    if conflicts:
        raise ValueError(f"restorer {restorer!r}: {', '.join(conflicts)} disagree(s) with "
                         f"checkpoint {path}, which was trained with them; leave the option out "
                         f"(the checkpoint sets it) or give a checkpoint trained that way")
    return {k: trained[k] for k in keys if k in trained}


def read_checkpoint(path: Path) -> Checkpoint:
    """Read and verify a checkpoint; a clear error for a missing, foreign or damaged file."""
    path = Path(path).expanduser()
    payload = _load_payload(path)
    weights = payload["ema"] if payload.get("ema") is not None else payload["model"]
    actual = weights_digest(weights)
    if actual != payload["weights_sha256"]:
        raise ValueError(f"{path}: its weights do not match the sha256 recorded in it "
                         f"({actual[:12]} != {payload['weights_sha256'][:12]}); the file is damaged")
    return Checkpoint(path=path, sha256=file_sha256(path), restorer=payload["restorer"],
                      config=payload.get("config", {}), model=payload["model"],
                      ema=payload.get("ema"), weights_sha256=payload["weights_sha256"],
                      training=payload.get("training"), provenance=payload.get("provenance", {}))


def export_weights(source: Path, target: Path) -> str:
    """Copy a checkpoint without its training state (optimiser, RNG): the file that ships.
    Only the inference weights are kept (EMA when present, stored as ``model``)."""
    checkpoint = read_checkpoint(source)
    provenance = {**checkpoint.provenance, "exported_from": {"file": source.name,
                                                             "sha256": checkpoint.sha256}}
    return write_checkpoint(Path(target), restorer=checkpoint.restorer, config=checkpoint.config,
                            model=checkpoint.inference_weights(), ema=None, training=None,
                            provenance=provenance)
