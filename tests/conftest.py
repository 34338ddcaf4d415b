"""Shared fixtures: a tiny learnable synthetic MNIST in torchvision's IDX layout, the real
MNIST (only where MNIST_DATA_DIR is set, as CI does), and helpers to run the CLI."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from mnist_lib.data import IDX_FILES

REPO = Path(__file__).resolve().parents[1]

# The machine is small and shared: one intra-op thread is faster than two fighting, and it
# makes in-process runs match CLI runs started with `--threads 1`.
torch.set_num_threads(1)

N_TRAIN, N_TEST, N_VAL = 600, 200, 100


def pytest_configure(config):
    # torchvision 0.29 warns on every PNG encode/decode; the course-format tests do thousands
    config.addinivalue_line("filterwarnings",
                            "ignore:The image decoding and encoding capabilities of TorchVision:DeprecationWarning")
TIMING = ("train_seconds", "seconds")


def synthetic_mnist(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noisy dark images with one bright 8x5 block whose position is set by the label
    (two rows of five places, jittered by a pixel): learnable in a couple of epochs."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 10).astype(np.uint8)
    rng.shuffle(labels)
    images = rng.integers(0, 40, size=(n, 28, 28)).astype(np.uint8)
    for i, c in enumerate(labels):
        row = 3 + (c // 5) * 12 + rng.integers(-1, 2)
        col = 1 + (c % 5) * 5 + rng.integers(0, 2)
        images[i, row:row + 8, col:col + 5] = 200 + rng.integers(0, 56)
    return images, labels


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a uint8 array as an uncompressed IDX file."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    with open(path, "wb") as f:
        f.write(struct.pack(">I", 0x0800 | array.ndim))
        f.write(struct.pack(f">{array.ndim}I", *array.shape))
        f.write(array.tobytes())


def write_mnist_root(root: Path, train: tuple[np.ndarray, np.ndarray],
                     test: tuple[np.ndarray, np.ndarray]) -> Path:
    """Write the four IDX files as torchvision expects them: <root>/MNIST/raw/*-ubyte."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for is_train, (images, labels) in ((True, train), (False, test)):
        image_name, label_name = IDX_FILES[is_train]
        write_idx(raw / image_name, images)
        write_idx(raw / label_name, labels)
    return root


@pytest.fixture(scope="session")
def synthetic_arrays() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {"train": synthetic_mnist(N_TRAIN, 1), "test": synthetic_mnist(N_TEST, 2)}


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory, synthetic_arrays) -> Path:
    """A read-only-by-convention synthetic MNIST root (600 train, 200 test images)."""
    return write_mnist_root(tmp_path_factory.mktemp("tiny_mnist"), synthetic_arrays["train"], synthetic_arrays["test"])


@pytest.fixture
def tiny_copy(tmp_path, tiny_root) -> Path:
    """A private copy of the synthetic root that a test may damage."""
    root = tmp_path / "data"
    shutil.copytree(tiny_root, root)
    return root


@pytest.fixture
def raw_dir(tiny_copy) -> Path:
    return tiny_copy / "MNIST" / "raw"


@pytest.fixture
def tiny_config(tiny_root):
    """Build a TrainConfig for the synthetic data: small, quiet, offline, one CPU thread (CPU
    runs are bitwise reproducible; GPU kernels need not be)."""
    from mnist_lib.config import TrainConfig

    def make(**overrides):
        values = dict(data_dir=str(tiny_root), download=False, val_size=N_VAL, epochs=2, batch_size=32,
                      lr=0.02, progress=False, threads=1, device="cpu")
        values.update(overrides)
        return TrainConfig.from_dict(values)

    return make


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The real MNIST root from MNIST_DATA_DIR; the tests that need it run only where it is set."""
    value = os.environ.get("MNIST_DATA_DIR")
    if not value:
        pytest.skip("MNIST_DATA_DIR is not set (CI sets it to the real MNIST)")
    root = Path(value).resolve()
    raw = root / "MNIST" / "raw"
    missing = [n for pair in IDX_FILES.values() for n in pair if not (raw / n).is_file()]
    assert not missing, f"MNIST_DATA_DIR={value} is set but {raw} lacks {missing}"
    return root


def strip_timing(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in entry.items() if k not in TIMING} for entry in history]


@dataclass
class CliResult:
    code: int
    out: str
    err: str


def run_cli(*args: str) -> CliResult:
    """`python -m mnist_lib ARGS` in this process (fast): exit status, stdout, stderr."""
    from mnist_lib.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse exits
            code = exc.code
    return CliResult(code, out.getvalue(), err.getvalue())


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["OMP_NUM_THREADS"] = "1"
    return env


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "mnist_lib", *map(str, args)]


def run_cli_process(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m mnist_lib ARGS` as a real process."""
    return subprocess.run(cli_command(*args), env=cli_env(), cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def assert_one_line_error(result, *needles: str) -> str:
    """Exit status 2, exactly one `error: ...` line on stderr naming the needles, no traceback."""
    code = result.code if isinstance(result, CliResult) else result.returncode
    err = result.err if isinstance(result, CliResult) else result.stderr
    out = result.out if isinstance(result, CliResult) else result.stdout
    assert code == 2, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err + out
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def kill_at_first_checkpoint(process, checkpoint, timeout=240):
    """SIGKILL ``process`` as soon as ``checkpoint`` (a run's checkpoint.pt) appears: a run killed
    mid-training, for the resume tests."""
    import time

    try:
        deadline = time.monotonic() + timeout
        while not checkpoint.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, f"no {checkpoint.name} within {timeout} s"
            time.sleep(0.002)
        process.kill()
        process.communicate()
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == -9, "the run finished before it could be killed"
