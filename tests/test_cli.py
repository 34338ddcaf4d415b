"""`python -m mnist_lib`: params, train, evaluate, export-tar; bad input as one `error:` line
with exit status 2; resuming a killed run; a real-data smoke test where MNIST_DATA_DIR is set."""

from __future__ import annotations

import json
import re
import struct
import subprocess

import numpy as np
import pytest
import torch

from conftest import (N_TRAIN, N_VAL, assert_one_line_error, cli_command, cli_env, kill_at_first_checkpoint, run_cli,
                      run_cli_process, strip_timing, write_mnist_root, REPO)
from mnist_lib.config import TrainConfig
from mnist_lib.data import IDX_FILES, load_split
from mnist_lib.models import build_model
from mnist_lib.train import CHECKPOINT, METRICS, MODEL, load_checkpoint, train
from test_data import GOOD, make_tar, png_bytes

TRAIN_IMAGES, TRAIN_LABELS = IDX_FILES[True]
TEST_IMAGES, TEST_LABELS = IDX_FILES[False]


def tiny_args(data_dir, out, *extra):
    return ["train", "--out", str(out), "--data-dir", str(data_dir), "--no-download", "--val-size", str(N_VAL),
            "--epochs", "1", "--batch-size", "32", "--lr", "0.02", "--threads", "1", "--device", "cpu", "--quiet",
            *map(str, extra)]


# --------------------------------------------------------------------------- params

def test_params_prints_each_models_total_and_arithmetic():
    from mnist_lib.models import build_model, count_parameters, parameter_frame
    from mnist_lib.registry import MODELS

    result = run_cli("params")
    assert result.code == 0, result.err
    for name, display in MODELS.items():  # the counts of the modules themselves (test_models pins the writeup's)
        assert f"Total parameters for {display}: {count_parameters(build_model(name)):,}" in result.out
        for arithmetic in parameter_frame(build_model(name)).arithmetic[:-1]:
            assert arithmetic in result.out


def test_params_for_one_model():
    result = run_cli("params", "--model", "custom_mlp")
    assert result.code == 0
    from mnist_lib.models import build_model, count_parameters

    assert f"{count_parameters(build_model('custom_mlp')):,}" in result.out and "LeNet-5" not in result.out


# --------------------------------------------------------------------------- train, evaluate, export-tar

def test_train_then_evaluate_reports_the_recorded_accuracy(tiny_root, tmp_path):
    out = tmp_path / "run"
    result = run_cli(*tiny_args(tiny_root, out, "--epochs", "2", "--seed", "4"))
    assert result.code == 0, result.err
    metrics = json.loads((out / METRICS).read_text())
    final = metrics["final"]
    assert f"test accuracy {final['test_acc']:.2f}%" in result.out
    assert metrics["config"]["epochs"] == 2 and metrics["config"]["seed"] == 4 and metrics["config"]["progress"] is False
    assert sorted(p.name for p in out.iterdir()) == [CHECKPOINT, METRICS, MODEL]

    evaluated = run_cli("evaluate", out)
    assert evaluated.code == 0, evaluated.err
    printed = float(re.search(r"test accuracy ([\d.]+)% \(([\d.]+)\)", evaluated.out).group(2))
    assert printed == pytest.approx(final["test_acc"], abs=1e-9)
    assert "-> match" in evaluated.out

    # it really re-evaluates model.pt: other weights give another accuracy and exit status 1
    torch.manual_seed(0)
    torch.save(build_model("lenet5").state_dict(), out / MODEL)
    different = run_cli("evaluate", out)
    assert different.code == 1 and "DIFFERENT" in different.out


def test_preset_and_options(tiny_root, tmp_path):
    result = run_cli(*tiny_args(tiny_root, tmp_path / "run", "--preset", "tuned", "--model", "custom_mlp",
                                "--no-nesterov"))
    assert result.code == 0, result.err
    config = json.loads((tmp_path / "run" / METRICS).read_text())["config"]
    assert (config["schedule"], config["batch_size"], config["lr"]) == ("onecycle", 32, 0.02)  # options win
    assert (config["model"], config["nesterov"], config["weight_decay"]) == ("custom_mlp", False, 5e-4)


def test_export_tar_round_trips(tiny_root, tmp_path):
    result = run_cli("export-tar", "--out", tmp_path / "tars", "--data-dir", tiny_root)
    assert result.code == 0, result.err
    assert f"{N_TRAIN:,} PNGs" in result.out
    for train_split in (True, False):
        idx = load_split("mnist", tiny_root, "idx", train_split, download=False)
        tar = load_split("mnist", tmp_path / "tars", "tar", train_split)
        assert torch.equal(idx[0], tar[0]) and torch.equal(idx[1], tar[1])


# --------------------------------------------------------------------------- bad input

def _damage(tmp_path, tiny_root, how):
    """A data dir broken in one way; returns (data_dir, extra CLI args)."""
    import shutil

    root = tmp_path / "data"
    if how == "empty":
        root.mkdir()
        return root, []
    if how == "missing":
        return tmp_path / "nowhere", []
    if how.startswith("tar-"):
        root.mkdir()
        make_tar(root / "test.tar", {"test/00000_1.png": GOOD})
        members = {"train/00000_1.png": GOOD}
        if how == "tar-name":
            members["train/cat.png"] = GOOD
        elif how == "tar-size":
            members["train/00001_5.png"] = png_bytes(np.zeros((28, 20), np.uint8))
        elif how == "tar-empty":
            members = {}
        if how == "tar-not-a-tar":
            (root / "train.tar").write_text("hello\n" * 200)
        else:
            make_tar(root / "train.tar", members)
        return root, ["--format", "tar"]
    shutil.copytree(tiny_root, root)
    raw = root / "MNIST" / "raw"
    if how == "truncated":
        data = (raw / TRAIN_IMAGES).read_bytes()
        (raw / TRAIN_IMAGES).write_bytes(data[: len(data) // 2])
    elif how == "magic":
        data = (raw / TEST_IMAGES).read_bytes()
        (raw / TEST_IMAGES).write_bytes(struct.pack(">I", 0x00000801) + data[4:])
    elif how == "counts":
        data = (raw / TEST_LABELS).read_bytes()
        (raw / TEST_LABELS).write_bytes(data[:4] + struct.pack(">I", 150) + data[8:8 + 150])
    elif how == "label":
        data = bytearray((raw / TRAIN_LABELS).read_bytes())
        data[8 + 3] = 11
        (raw / TRAIN_LABELS).write_bytes(bytes(data))
    return root, []


@pytest.mark.parametrize("how, needles", [
    ("missing", ["no mnist data in", "nowhere", "MNIST_DATA_DIR"]),
    ("empty", ["no mnist data in", "MNIST_DATA_DIR", "download"]),
    ("truncated", [TRAIN_IMAGES, "truncated"]),
    ("magic", [TEST_IMAGES, "magic number 0x00000801, expected 0x00000803"]),
    ("counts", ["holds 200 images but", "150 labels"]),
    ("label", [TRAIN_LABELS, "label 11 at index 3 is outside 0-9"]),
    ("tar-name", ["train.tar", "'train/cat.png' is not named {ID}_{Label}.png"]),
    ("tar-size", ["train.tar", "'train/00001_5.png' is 20x28", "28x28 8-bit grayscale"]),
    ("tar-empty", ["train.tar holds no {ID}_{Label}.png images"]),
    ("tar-not-a-tar", ["train.tar is not a readable tar archive"]),
])
def test_bad_data_is_one_error_line(tmp_path, tiny_root, how, needles):
    data_dir, extra = _damage(tmp_path, tiny_root, how)
    result = run_cli(*tiny_args(data_dir, tmp_path / "out", *extra))
    assert_one_line_error(result, *needles)
    assert not (tmp_path / "out" / METRICS).exists()


@pytest.mark.parametrize("extra, needles", [
    (["--model", "vgg16"], ["model 'vgg16' is unknown", "lenet5"]),
    (["--dataset", "cifar10"], ["dataset 'cifar10' is unknown"]),
    (["--epochs", "0"], ["epochs must be a positive integer, got 0"]),
    (["--epochs", "-2"], ["epochs must be a positive integer, got -2"]),
    (["--batch-size", "0"], ["batch_size must be a positive integer, got 0"]),
    (["--lr", "0"], ["lr must be positive, got 0.0"]),
    (["--lr", "-0.5"], ["lr must be positive, got -0.5"]),
    (["--limit", "501"], ["limit 501 is larger than the 500 training images"]),
    (["--epochs", "two"], ["argument --epochs: invalid int value: 'two'"]),
    (["--preset", "turbo"], ["argument --preset: invalid choice: 'turbo'"]),
])
def test_bad_options_are_one_error_line(tiny_root, tmp_path, extra, needles):
    assert_one_line_error(run_cli(*tiny_args(tiny_root, tmp_path / "out", *extra)), *needles)


def test_output_dir_not_writable(tiny_root, tmp_path):
    (tmp_path / "file").write_text("not a folder")
    result = run_cli(*tiny_args(tiny_root, tmp_path / "file" / "run"))
    assert_one_line_error(result, "output dir", "file/run is not writable")


def test_divergence_is_an_error_naming_epoch_and_step(tiny_root, tmp_path):
    result = run_cli(*tiny_args(tiny_root, tmp_path / "out", "--lr", "1000"))
    line = assert_one_line_error(result, "training diverged")
    assert re.search(r"at epoch 1, step \d+", line)
    assert not (tmp_path / "out" / METRICS).exists() and not (tmp_path / "out" / MODEL).exists()


def test_failing_runs_leave_a_finished_run_untouched(tiny_root, tmp_path):
    out = tmp_path / "run"
    assert run_cli(*tiny_args(tiny_root, out)).code == 0
    before = {name: (out / name).read_bytes() for name in (METRICS, MODEL, CHECKPOINT)}

    assert_one_line_error(run_cli(*tiny_args(tiny_root, out)), "already holds a finished run", "--overwrite")
    assert_one_line_error(run_cli(*tiny_args(tiny_root, out, "--model", "custom_mlp")), "already holds a finished run")
    for extra in (["--lr", "1000"], ["--limit", "100000"], ["--epochs", "0"], ["--data-dir", tmp_path / "nowhere"],
                  ["--model", "nope"]):
        assert_one_line_error(run_cli(*tiny_args(tiny_root, out, "--overwrite", *extra)))
    assert {name: (out / name).read_bytes() for name in (METRICS, MODEL, CHECKPOINT)} == before


def test_bad_checkpoint_is_one_error_line(tiny_root, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / CHECKPOINT).write_bytes(b"\x80\x02not really a checkpoint")
    assert_one_line_error(run_cli(*tiny_args(tiny_root, out, "--resume")), "checkpoint.pt is not a readable checkpoint")
    (out / CHECKPOINT).unlink()
    assert_one_line_error(run_cli(*tiny_args(tiny_root, out, "--resume")), "nothing to resume")


def test_evaluate_bad_run_dirs(tiny_root, tmp_path):
    assert_one_line_error(run_cli("evaluate", tmp_path / "nothing"), "metrics.json does not exist")
    out = tmp_path / "run"
    assert run_cli(*tiny_args(tiny_root, out)).code == 0
    (out / MODEL).write_bytes(b"garbage")
    assert_one_line_error(run_cli("evaluate", out), "model.pt is not a readable model file")
    torch.save(build_model("custom_mlp").state_dict(), out / MODEL)
    assert_one_line_error(run_cli("evaluate", out), "does not hold weights of model 'lenet5'")


def test_export_tar_without_data(tmp_path):
    assert_one_line_error(run_cli("export-tar", "--out", tmp_path / "tars", "--data-dir", tmp_path), "MNIST_DATA_DIR")


def test_a_multi_line_message_still_prints_one_line(monkeypatch):
    import mnist_lib.cli as cli
    from mnist_lib.errors import MnistLibError

    def broken(args):
        raise MnistLibError("first part:\n  - second part\n")

    monkeypatch.setattr(cli, "cmd_params", broken)
    assert assert_one_line_error(run_cli("params"), "first part: - second part") == "error: first part: - second part"


@pytest.mark.slow
def test_bad_input_in_a_real_process(tmp_path):
    """The same contract end to end: status 2, one stderr line, no traceback."""
    result = run_cli_process("train", "--out", tmp_path / "out", "--data-dir", tmp_path / "nowhere",
                             "--no-download", "--quiet")
    assert_one_line_error(result, "MNIST_DATA_DIR")
    assert result.stdout == ""
    result = run_cli_process("train", "--out", tmp_path / "out", "--batch-size", "-1")
    assert_one_line_error(result, "batch_size must be a positive integer, got -1")


# --------------------------------------------------------------------------- a killed run, resumed

@pytest.mark.slow
def test_resume_continues_a_killed_process(tiny_root, tmp_path):
    out = tmp_path / "run"
    options = dict(model="lenet5_regularized", augment=True, schedule="onecycle", epochs=5, batch_size=16,
                   lr=0.02, seed=2)
    args = tiny_args(tiny_root, out, "--model", "lenet5_regularized", "--augment", "--schedule", "onecycle",
                     "--epochs", "5", "--batch-size", "16", "--lr", "0.02", "--seed", "2")  # later options win
    process = subprocess.Popen(cli_command(*args), env=cli_env(), cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    kill_at_first_checkpoint(process, out / CHECKPOINT)
    assert not (out / METRICS).exists() and not (out / MODEL).exists()
    killed_at = load_checkpoint(out / CHECKPOINT)["epoch"]
    assert 1 <= killed_at < 5

    resumed = run_cli(*args, "--resume")
    assert resumed.code == 0, resumed.err
    metrics = json.loads((out / METRICS).read_text())
    unbroken = train(TrainConfig(data_dir=str(tiny_root), download=False, val_size=N_VAL, progress=False,
                                 threads=1, device="cpu", **options))
    assert [e["epoch"] for e in metrics["history"]] == [1, 2, 3, 4, 5]
    assert strip_timing(metrics["history"]) == strip_timing(unbroken.metrics["history"])
    assert {k: v for k, v in metrics["final"].items() if k not in ("train_seconds", "seconds")} == \
        strip_timing([unbroken.metrics["final"]])[0]


# --------------------------------------------------------------------------- real MNIST

def _real_subset(real_data_dir, root, n_train, n_test):
    raw = real_data_dir / "MNIST" / "raw"

    def read(name, n, header):
        return np.fromfile(raw / name, dtype=np.uint8, offset=header, count=n * (784 if header == 16 else 1))

    train = (read(TRAIN_IMAGES, n_train, 16).reshape(-1, 28, 28), read(TRAIN_LABELS, n_train, 8))
    test = (read(TEST_IMAGES, n_test, 16).reshape(-1, 28, 28), read(TEST_LABELS, n_test, 8))
    return write_mnist_root(root, train, test)


@pytest.mark.slow
def test_real_mnist_smoke(real_data_dir, tmp_path):
    """LeNet-5, one epoch on 3,000 real images through the CLI: well above chance; and the
    course tar format, exported by the CLI from the same images, gives identical numbers."""
    subset = _real_subset(real_data_dir, tmp_path / "subset", 5000, 1000)
    recipe = ["--model", "lenet5", "--epochs", "1", "--limit", "3000", "--val-size", "1000", "--optimizer", "adamw",
              "--lr", "0.003", "--batch-size", "32", "--threads", "1", "--device", "cpu", "--quiet", "--no-download"]
    idx_run = run_cli_process("train", "--out", tmp_path / "idx_run", "--data-dir", subset, *recipe)
    assert idx_run.returncode == 0, idx_run.stderr
    metrics = json.loads((tmp_path / "idx_run" / METRICS).read_text())
    assert metrics["sizes"] == {"train": 3000, "val": 1000, "test": 1000}
    assert metrics["final"]["test_acc"] > 80, metrics["final"]

    # in this process from here on (a second interpreter start costs seconds); one thread, like the run above
    exported = run_cli("export-tar", "--out", tmp_path / "tars", "--data-dir", subset)
    assert exported.code == 0, exported.err
    tar_run = run_cli("train", "--out", tmp_path / "tar_run", "--data-dir", tmp_path / "tars", "--format", "tar", *recipe)
    assert tar_run.code == 0, tar_run.err
    tar_metrics = json.loads((tmp_path / "tar_run" / METRICS).read_text())
    assert strip_timing(tar_metrics["history"]) == strip_timing(metrics["history"])
    assert tar_metrics["sizes"] == metrics["sizes"] and tar_metrics["params"] == metrics["params"] == 61_706

    evaluated = run_cli("evaluate", tmp_path / "idx_run")
    assert evaluated.code == 0 and "-> match" in evaluated.out
    assert f"test accuracy {metrics['final']['test_acc']:.2f}%" in evaluated.out
