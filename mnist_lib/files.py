"""Atomic writes: a crash or a kill never leaves a half-written results file behind."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from mnist_lib.errors import MnistLibError


def _atomic(path: str | os.PathLike, write: Callable[[Any], None], mode: str) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; results should read like any other file
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX: readers see the old file or the new one
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike, obj: Any) -> None:
    _atomic(path, lambda f: f.write(json.dumps(obj, indent=2, allow_nan=False) + "\n"), "w")


def write_atomic_text(path: str | os.PathLike, text: str) -> None:
    _atomic(path, lambda f: f.write(text), "w")


def write_atomic_bytes(path: str | os.PathLike, data: bytes) -> None:
    _atomic(path, lambda f: f.write(data), "wb")


def write_torch(path: str | os.PathLike, obj: Any) -> None:
    import torch

    _atomic(path, lambda f: torch.save(obj, f), "wb")


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise MnistLibError(f"{path} does not exist: run the training first (or check the path)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MnistLibError(f"{path} is not valid JSON ({exc}): delete it and run again") from None


def ensure_writable_dir(path: str | os.PathLike, what: str = "output dir") -> Path:
    """Create the folder if needed and prove a file can be written there, before any work."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise MnistLibError(f"{what} {path} is not writable ({exc.strerror}): choose another folder") from None
    return path
