"""The one loader for files a user hands the harness: weights, injected states, parameter files.

Every such file is untrusted (``docs/security.md``). A pickle-based file (``torch.save``'s
``.pt``/``.pth``, a ``.pkl``) can name any Python callable and have the unpickler call it, so
loading one with plain :mod:`pickle` or ``torch.load(weights_only=False)`` runs whatever its
author wanted. Here:

* :func:`load_torch_file`: ``torch.load(weights_only=True)``: tensors, dicts, lists, tuples and
  plain values, plus an explicit allow-list of globals per call site; anything else is refused
  with :class:`UnsafeFileError`, which names the globals found and how to proceed.
* :func:`pickle_globals`: the ``GLOBAL`` / ``STACK_GLOBAL`` references of a pickle or a torch
  zip checkpoint, read with :mod:`pickletools` (opcodes only; nothing is unpickled). The YOLO
  detector scan (``downstream/yolo_env.py``) and the refusal messages use it.
* :func:`load_npz`: ``numpy.load(allow_pickle=False)`` (object arrays are pickles).
* :func:`load_mat`: ``scipy.io.loadmat``, which parses the MAT format and runs no code
  (MATLAB objects come back as opaque arrays).

Python's :mod:`pickle` is never called on a file from here.
"""

from __future__ import annotations

import io
import pickletools
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


class UnsafeFileError(ValueError):
    """A file would need code execution (or an unknown global) to load; the message says which
    globals it references and how to proceed."""


#: Opcodes that push a string the next STACK_GLOBAL may consume.
_STRING_OPS = frozenset({"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE",
                         "SHORT_BINSTRING", "BINSTRING", "STRING"})
_PUT_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_GET_OPS = frozenset({"GET", "BINGET", "LONG_BINGET"})


def _globals_of_stream(stream: io.BufferedIOBase | io.BytesIO) -> Iterator[tuple[str, str]]:
    """``(module, name)`` of each global one pickle in ``stream`` references, in order.

    STACK_GLOBAL takes its two names from the stack; they are tracked through the memo. A
    STACK_GLOBAL whose names are not plain strings yields ``("?", "?")`` (never allowed)."""
    recent: list[Any] = []  # values pushed, newest last (only strings matter)
    memo: dict[Any, Any] = {}
    for opcode, arg, _ in pickletools.genops(stream):
        name = opcode.name
        if name == "GLOBAL" or name == "INST":
            module, _, attr = str(arg).partition(" ")
            yield module, attr
            recent.append(None)
        elif name == "STACK_GLOBAL":
            pair = recent[-2:] if len(recent) >= 2 else [None, None]
            ok = all(isinstance(v, str) for v in pair)
            yield (pair[0], pair[1]) if ok else ("?", "?")
            recent.append(None)
        elif name in _STRING_OPS:
            recent.append(arg)
        elif name == "MEMOIZE":
            memo[len(memo)] = recent[-1] if recent else None
        elif name in _PUT_OPS:
            memo[arg] = recent[-1] if recent else None
        elif name in _GET_OPS:
            recent.append(memo.get(arg))
        elif name not in ("PROTO", "FRAME", "STOP", "MARK"):
            recent.append(None)
        del recent[:-4]


def pickle_globals(path: str | Path) -> list[tuple[str, str]]:
    """Every distinct ``(module, name)`` global the pickles of ``path`` reference, without
    unpickling: the ``*.pkl`` members of a torch zip checkpoint, or the leading pickles of a
    legacy ``torch.save`` / plain pickle file.

    Raises:
        UnsafeFileError: the file is neither (its opcodes cannot be read).
    """
    path = Path(path)
    found: dict[tuple[str, str], None] = {}
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                for member in archive.namelist():
                    if member.endswith(".pkl"):
                        with archive.open(member) as fh:
                            found.update(dict.fromkeys(_globals_of_stream(io.BytesIO(fh.read()))))
        else:
            with open(path, "rb") as fh:
                # legacy torch.save: magic, protocol, sys info, the object, storage keys; then raw
                # bytes. A plain pickle is one; stop at the first thing that is not a pickle.
                for index in range(5):
                    start = fh.tell()
                    try:
                        found.update(dict.fromkeys(_globals_of_stream(fh)))
                    except ValueError:
                        if index == 0:
                            raise
                        fh.seek(start)
                        break
    except (ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise UnsafeFileError(f"{path}: neither a torch checkpoint nor a pickle "
                              f"({type(exc).__name__}: {exc}); cannot check what it would load") from exc
    return list(found)


def describe_globals(names: Iterable[tuple[str, str]], limit: int = 8) -> str:
    """``os.system, builtins.eval, ...`` for messages."""
    items = [f"{m}.{n}" for m, n in names]
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def load_torch_file(path: str | Path, *, what: str,
                    allowed: Iterable[Any] = (), mmap: bool = False) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)``, with ``allowed`` objects (classes
    or functions) added to torch's weights-only allow-list for this call only.

    Args:
        path: the file.
        what: what the file is for, in words (``"LD-RPS injected state"``), for messages.
        allowed: extra globals the call site needs (usually none).
        mmap: leave the tensors on disk (reading the header of a large file costs nothing).

    Raises:
        FileNotFoundError: no such file.
        UnsafeFileError: the file references other globals (the message lists them) or is not a
            torch file at all.
    """
    import pickle  # only for the exception class torch raises; nothing is unpickled with it

    import torch

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    try:
        with torch.serialization.safe_globals(list(allowed)):
            # torch.serialization.load is torch.load; named so, it stays the real one while
            # harness.metrics.suite.weights_only_torch_load stands in for torch.load
            return torch.serialization.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        try:
            names = describe_globals(pickle_globals(path))
        except UnsafeFileError:
            names = "unreadable opcodes"
        raise UnsafeFileError(
            f"{what} {path} was refused: it is not plain tensors and containers (it references "
            f"{names}), and loading it could run code. restorebench loads such files with "
            f"torch.load(weights_only=True). If you made the file and trust it, re-save only "
            f"its tensors (e.g. torch.save(model.state_dict(), ...)) and pass that file "
            f"(docs/security.md)") from exc
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile) as exc:
        raise UnsafeFileError(f"{what} {path} is not a readable torch file "
                              f"({type(exc).__name__}: {exc})") from exc


def load_npz(path: str | Path, *, what: str) -> dict[str, Any]:
    """The arrays of an ``.npz`` (or ``.npy``, under the key ``"array"``), object arrays refused:
    ``numpy.load(allow_pickle=False)``."""
    import numpy as np

    path = Path(path).expanduser()
    try:
        if path.suffix.lower() == ".npy":
            return {"array": np.load(path, allow_pickle=False)}
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except ValueError as exc:
        raise UnsafeFileError(f"{what} {path} was refused: it holds pickled Python objects "
                              f"(object arrays), which could run code; save it with numeric "
                              f"arrays only ({exc})") from exc


def load_mat(path: str | Path, *, what: str, **kwargs: Any) -> dict[str, Any]:
    """``scipy.io.loadmat(path, **kwargs)``: the MAT format is parsed, no code runs."""
    import scipy.io

    path = Path(path).expanduser()
    try:
        return scipy.io.loadmat(path, **kwargs)
    except (ValueError, TypeError, OSError) as exc:
        raise UnsafeFileError(f"{what} {path} is not a readable MATLAB file "
                              f"({type(exc).__name__}: {exc})") from exc
