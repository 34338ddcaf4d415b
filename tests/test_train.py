"""The training engine: metrics.json and model.pt as specified, best-validation selection (the
returned model is the kept one), evaluation in eval mode, a new data order every epoch,
reproducibility, checkpoints and resuming, divergence, train-only augmentation."""

from __future__ import annotations

import json
import math
import os
import stat

import pytest
import torch

import mnist_lib.train as train_mod
from conftest import N_TEST, N_TRAIN, N_VAL, strip_timing
from mnist_lib.config import TrainConfig
from mnist_lib.data import DataSplits, load_data
from mnist_lib.errors import MnistLibError
from mnist_lib.files import write_json, write_torch
from mnist_lib.models import build_model, count_parameters
from mnist_lib.train import (CHECKPOINT, METRICS, MODEL, evaluate, load_checkpoint, load_model, predict,
                             select_device, train)

HISTORY_KEYS = {"epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc",
                "train_seconds", "seconds"}


class Killed(BaseException):
    """Stands in for SIGKILL in-process: nothing after it runs."""


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_root):
    config = TrainConfig(data_dir=str(tiny_root), download=False, val_size=N_VAL, epochs=3, batch_size=32,
                         lr=0.02, progress=False, threads=1, seed=3)
    out = tmp_path_factory.mktemp("run")
    result = train(config, out)
    return config, out, result


# --------------------------------------------------------------------------- device

def test_device_auto_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert select_device("auto") == torch.device("cpu")
    assert select_device("cpu") == torch.device("cpu")
    with pytest.raises(MnistLibError, match="device 'cuda' is not available here"):
        select_device("cuda")
    with pytest.raises(MnistLibError, match="device 'mps' is not available here"):
        select_device("mps")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert select_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert select_device("auto") == torch.device("cuda")


def test_auto_device_here_is_what_the_machine_has(finished_run):
    _, _, result = finished_run
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert result.metrics["environment"]["device"].split(":")[0] == expected


# --------------------------------------------------------------------------- the run folder

def test_metrics_json_has_the_specified_fields(finished_run):
    config, out, result = finished_run
    metrics = json.loads((out / METRICS).read_text())
    assert metrics == result.metrics
    assert {"config", "environment", "params", "history", "final"} <= set(metrics)
    assert metrics["config"] == config.to_dict()
    env = metrics["environment"]
    assert env["torch"] == torch.__version__ and env["seed"] == 3
    assert env["device"] == str(select_device("auto"))
    assert metrics["params"] == 61_706
    assert [e["epoch"] for e in metrics["history"]] == [1, 2, 3]
    for entry in metrics["history"]:
        assert set(entry) == HISTORY_KEYS
        assert all(isinstance(v, (int, float)) and math.isfinite(v) for v in entry.values())
        assert 0 <= entry["test_acc"] <= 100 and entry["lr"] == 0.02
        assert 0 < entry["train_seconds"] <= entry["seconds"]
    assert metrics["sizes"] == {"train": N_TRAIN - N_VAL, "val": N_VAL, "test": N_TEST}


def test_final_is_the_kept_best_validation_epoch(finished_run):
    _, out, result = finished_run
    metrics = result.metrics
    best = max(metrics["history"], key=lambda e: (e["val_acc"], -e["val_loss"]))
    assert {k: v for k, v in metrics["final"].items() if not k.startswith("train_eval")} == best
    assert metrics["selected_epoch"] == best["epoch"]
    model = load_model(out / MODEL, TrainConfig()).to(result.data.test.images.device)
    loss, acc = evaluate(model, result.data.test)
    assert acc == metrics["final"]["test_acc"]
    assert loss == pytest.approx(metrics["final"]["test_loss"], rel=1e-5)
    # the kept model on the clean training images: the train-test gap's first term
    assert evaluate(model, result.data.train)[1] == metrics["final"]["train_eval_acc"]


def test_training_learns(finished_run):
    _, _, result = finished_run
    assert result.metrics["final"]["test_acc"] > 50  # chance is 10%
    assert result.metrics["history"][-1]["train_loss"] < result.metrics["history"][0]["train_loss"]


def test_model_pt_is_a_state_dict(finished_run):
    _, out, result = finished_run
    state = torch.load(out / MODEL, weights_only=True)
    assert isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values())
    assert set(state) == set(build_model("lenet5").state_dict())
    for key, value in result.model.state_dict().items():
        assert torch.equal(state[key], value.cpu())


def test_selection_follows_validation_not_test(tiny_config, tmp_path, monkeypatch):
    """Scripted validation numbers: epoch 2 ties epoch 1 on accuracy with a lower loss and
    beats epoch 3; the kept model must be epoch 2's weights."""
    real = train_mod.evaluate
    scripted = iter([(0.5, 90.0), (0.3, 90.0), (0.1, 80.0)])
    weights = []

    def fake_evaluate(model, split, batch_size=2000):
        if len(split) == N_VAL:
            weights.append({k: v.detach().clone() for k, v in model.state_dict().items()})
            return next(scripted)
        return real(model, split, batch_size)

    monkeypatch.setattr(train_mod, "evaluate", fake_evaluate)
    result = train(tiny_config(epochs=3), tmp_path)
    assert result.metrics["selected_epoch"] == 2
    assert {k: v for k, v in result.metrics["final"].items() if not k.startswith("train_eval")} == result.metrics["history"][1]
    saved = torch.load(tmp_path / MODEL, weights_only=True)
    assert all(torch.equal(saved[k], weights[1][k]) for k in saved)
    assert not all(torch.equal(saved[k], weights[2][k]) for k in saved)


def test_without_validation_the_last_epoch_is_kept(tiny_config):
    result = train(tiny_config(val_size=0, epochs=2))
    assert result.metrics["selected_epoch"] == 2
    assert result.metrics["final"]["val_acc"] is None and result.metrics["final"]["val_loss"] is None
    assert result.metrics["sizes"]["train"] == N_TRAIN


def test_all_three_models_train(tiny_config):
    for name, params in (("custom_mlp", 61_338), ("lenet5_regularized", 61_750)):
        result = train(tiny_config(model=name, epochs=1))
        assert result.metrics["params"] == params == count_parameters(result.model)
        assert math.isfinite(result.metrics["final"]["test_loss"])


def test_predict_matches_evaluate(finished_run):
    _, _, result = finished_run
    predictions = predict(result.model, result.data.test)
    accuracy = 100.0 * (predictions == result.data.test.labels.cpu()).float().mean().item()
    assert accuracy == pytest.approx(evaluate(result.model, result.data.test)[1])


# --------------------------------------------------------------------------- the kept model, evaluated (real MNIST)

@pytest.fixture(scope="module")
def real_regularized(real_data_dir):
    """LeNet5_Regularized (BatchNorm + Dropout) trained for 3 epochs on 300 real MNIST images,
    validated on 200 and tested on 300: about a second. At this lr and seed its validation accuracy
    peaks before the last epoch, so the kept model is not the last epoch's."""
    data = load_data("mnist", real_data_dir, "idx", val_size=200, limit=300, download=False)
    data = DataSplits(data.train, data.val, data.test[:300], data.dataset, data.mean, data.std)
    config = TrainConfig(model="lenet5_regularized", data_dir=str(real_data_dir), download=False, val_size=200,
                         limit=300, epochs=3, batch_size=32, lr=0.2, seed=2, progress=False, threads=1, device="cpu")
    return train(config, data=data)


def test_evaluate_puts_the_model_in_eval_mode(real_regularized):
    """A model left in training mode (Dropout on, BatchNorm on batch statistics) evaluates as in
    eval mode: the same numbers twice, the recorded ones, and BatchNorm's running statistics
    untouched."""
    result = real_regularized
    model = result.model
    assert isinstance(model.bn1, torch.nn.BatchNorm2d) and model.dropout.p > 0
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    model.train()
    first = evaluate(model, result.data.test)
    model.train()
    second = evaluate(model, result.data.test)
    assert first == second
    assert first[1] == result.metrics["final"]["test_acc"]
    assert first[0] == pytest.approx(result.metrics["final"]["test_loss"], rel=1e-6)
    for name, value in model.named_buffers():
        assert torch.equal(value, buffers[name]), f"evaluate changed {name}"
    model.train()
    predictions = predict(model, result.data.test)
    assert 100.0 * (predictions == result.data.test.labels).float().mean().item() == pytest.approx(first[1])
    assert all(torch.equal(v, buffers[k]) for k, v in model.named_buffers())
    model.eval()


def test_train_returns_the_kept_best_validation_model(real_regularized):
    """The returned model is the kept epoch's (best validation accuracy, then lower validation
    loss), not the last one's: it reproduces that epoch's validation numbers, and the final
    train_eval_acc is its accuracy on the clean training images."""
    result = real_regularized
    metrics, history = result.metrics, result.metrics["history"]
    val_acc = [e["val_acc"] for e in history]
    best = max(history, key=lambda e: (e["val_acc"], -e["val_loss"]))
    assert metrics["selected_epoch"] == best["epoch"]
    assert history[metrics["selected_epoch"] - 1]["val_acc"] == max(val_acc)
    loss, acc = evaluate(result.model, result.data.val)
    assert acc == history[metrics["selected_epoch"] - 1]["val_acc"]
    assert loss == pytest.approx(history[metrics["selected_epoch"] - 1]["val_loss"], rel=1e-6)
    assert evaluate(result.model, result.data.train)[1] == metrics["final"]["train_eval_acc"]
    assert metrics["final"]["test_acc"] == history[metrics["selected_epoch"] - 1]["test_acc"]


def test_training_order_is_reshuffled_every_epoch(tiny_config, monkeypatch):
    """Each epoch draws a new order of the same training images."""
    real = train_mod.batches
    epochs = []

    def spy(split, batch_size, generator=None):
        if generator is None:  # evaluation: in order
            yield from real(split, batch_size)
            return
        epochs.append([])
        for x, y in real(split, batch_size, generator):
            epochs[-1].append(x.flatten(1).sum(1))
            yield x, y

    monkeypatch.setattr(train_mod, "batches", spy)
    result = train(tiny_config(epochs=3))
    orders = [torch.cat(e) for e in epochs]
    stored = result.data.train.images.flatten(1).sum(1)
    assert len(orders) == 3
    for order in orders:
        assert torch.equal(order.sort().values, stored.sort().values)  # each epoch: every image once
        assert not torch.equal(order, stored)  # shuffled
    assert not torch.equal(orders[0], orders[1]) and not torch.equal(orders[1], orders[2])


# --------------------------------------------------------------------------- reproducibility

@pytest.mark.slow
def test_same_seed_same_history(tiny_config):
    config = tiny_config(model="lenet5_regularized", augment=True, schedule="onecycle")
    first, second = train(config), train(config)
    assert strip_timing(first.metrics["history"]) == strip_timing(second.metrics["history"])
    other = train(config.replace(seed=1))
    assert strip_timing(other.metrics["history"]) != strip_timing(first.metrics["history"])


def test_validation_split_does_not_depend_on_the_training_seed(tiny_config):
    a, b = train(tiny_config(epochs=1, seed=0)), train(tiny_config(epochs=1, seed=5))
    assert torch.equal(a.data.val.images, b.data.val.images)
    assert torch.equal(a.data.train.labels, b.data.train.labels)


# --------------------------------------------------------------------------- augmentation

@pytest.mark.parametrize("mode, function", [("shift", "shift_batch"), ("affine", "augment_batch")])
def test_augmentation_touches_training_batches_only(tiny_config, tiny_root, monkeypatch, mode, function):
    """Each mode's augmentation sees every training image once per epoch and nothing else; the
    validation and test images stay as loaded, so re-evaluating the kept model gives the recorded
    test numbers."""
    real = getattr(train_mod, function)
    seen = []

    def spy(images, *args, **kwargs):
        seen.append(images.detach().clone())
        return real(images, *args, **kwargs)

    monkeypatch.setattr(train_mod, function, spy)
    result = train(tiny_config(augment=True, augment_mode=mode, epochs=2))
    train_rows = {tuple(x.flatten()[::9].tolist()) for x in result.data.train.images}
    augmented = torch.cat(seen)
    assert len(augmented) == 2 * len(result.data.train)  # every training image, every epoch
    assert all(tuple(x.flatten()[::9].tolist()) in train_rows for x in augmented)  # and nothing else
    fresh = load_data("mnist", tiny_root, "idx", N_VAL, download=False)
    assert torch.equal(result.data.val.images, fresh.val.images)
    assert torch.equal(result.data.test.images, fresh.test.images)
    loss, acc = evaluate(result.model, result.data.test)
    assert acc == result.metrics["final"]["test_acc"]
    assert loss == pytest.approx(result.metrics["final"]["test_loss"], rel=1e-6)

    seen.clear()
    train(tiny_config(augment=False, epochs=1))
    assert seen == []


def test_the_default_augmentation_is_whole_pixel_shifts(tiny_config, monkeypatch):
    called = []
    monkeypatch.setattr(train_mod, "augment_batch", lambda *a, **k: called.append("affine"))
    real = train_mod.shift_batch
    monkeypatch.setattr(train_mod, "shift_batch", lambda *a, **k: called.append("shift") or real(*a, **k))
    config = tiny_config(augment=True, epochs=1)
    assert config.augment_mode == "shift"
    train(config)
    assert called and set(called) == {"shift"}


def test_augmentation_changes_training(tiny_config):
    plain, augmented = train(tiny_config(epochs=1)), train(tiny_config(epochs=1, augment=True))
    assert plain.metrics["history"][0]["train_loss"] != augmented.metrics["history"][0]["train_loss"]


# --------------------------------------------------------------------------- checkpoints and resume

def test_checkpoint_after_every_epoch(tiny_config, tmp_path, monkeypatch):
    real = train_mod.write_torch
    written = []

    def spy(path, obj):
        real(path, obj)
        if os.path.basename(path) == CHECKPOINT:
            written.append(obj["epoch"])
            assert load_checkpoint(path)["epoch"] == obj["epoch"]  # on disk and loadable right away
            assert not (tmp_path / METRICS).exists()

    monkeypatch.setattr(train_mod, "write_torch", spy)
    train(tiny_config(epochs=3), tmp_path)
    assert written == [1, 2, 3]
    checkpoint = load_checkpoint(tmp_path / CHECKPOINT)
    assert checkpoint["epoch"] == 3 and len(checkpoint["history"]) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT, METRICS, MODEL]  # no temp files left


def _kill_after_epoch(monkeypatch, epoch):
    real = train_mod.write_torch

    def write_then_die(path, obj):
        real(path, obj)
        if os.path.basename(path) == CHECKPOINT and obj["epoch"] == epoch:
            raise Killed()

    monkeypatch.setattr(train_mod, "write_torch", write_then_die)


@pytest.mark.parametrize("overrides", [
    dict(),
    pytest.param(dict(model="lenet5_regularized", augment=True, schedule="onecycle", dropout=0.3), marks=pytest.mark.slow),
    pytest.param(dict(optimizer="adamw", lr=0.003, schedule="cosine", val_size=0), marks=pytest.mark.slow),
])
def test_resume_continues_an_interrupted_run(tiny_config, tmp_path, monkeypatch, overrides):
    config = tiny_config(epochs=3, **overrides)
    unbroken = train(config)
    with monkeypatch.context() as patch:
        _kill_after_epoch(patch, 1)
        with pytest.raises(Killed):
            train(config, tmp_path)
    assert not (tmp_path / METRICS).exists() and not (tmp_path / MODEL).exists()
    resumed = train(config, tmp_path, resume=True)
    assert strip_timing(resumed.metrics["history"]) == strip_timing(unbroken.metrics["history"])
    assert resumed.metrics["final"]["epoch"] == unbroken.metrics["final"]["epoch"]
    assert json.loads((tmp_path / METRICS).read_text())["history"] == resumed.metrics["history"]
    for key, value in unbroken.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value)


def test_resume_extends_a_run_without_a_schedule(tiny_config, tmp_path):
    unbroken = train(tiny_config(epochs=2))
    train(tiny_config(epochs=1), tmp_path)
    extended = train(tiny_config(epochs=2), tmp_path, resume=True)
    assert strip_timing(extended.metrics["history"]) == strip_timing(unbroken.metrics["history"])


def test_resume_refuses_to_stretch_a_schedule(tiny_config, tmp_path):
    train(tiny_config(epochs=1, schedule="onecycle"), tmp_path)
    with pytest.raises(MnistLibError, match="1-epoch run.*onecycle schedule depends on the number of epochs"):
        train(tiny_config(epochs=3, schedule="onecycle"), tmp_path, resume=True)


def test_resume_refuses_changed_settings(tiny_config, tmp_path):
    train(tiny_config(epochs=1), tmp_path)
    with pytest.raises(MnistLibError, match="saved with lr=0.02, not 0.1"):
        train(tiny_config(epochs=2, lr=0.1), tmp_path, resume=True)
    with pytest.raises(MnistLibError, match="saved with model='lenet5', not 'custom_mlp'"):
        train(tiny_config(epochs=2, model="custom_mlp"), tmp_path, resume=True)


def test_resume_refuses_a_changed_weight_decay(tiny_config, tmp_path):
    train(tiny_config(epochs=1), tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(MnistLibError, match=r"weight_decay=0\.0, not 0\.001"):
        train(tiny_config(epochs=2, weight_decay=1e-3), tmp_path, resume=True)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # the run is left as it was


def test_resume_refuses_another_models_checkpoint(tiny_config, tmp_path):
    train(tiny_config(epochs=1, model="custom_mlp"), tmp_path / "mlp")
    (tmp_path / "lenet").mkdir()
    (tmp_path / "lenet" / CHECKPOINT).write_bytes((tmp_path / "mlp" / CHECKPOINT).read_bytes())
    with pytest.raises(MnistLibError, match="saved with model='custom_mlp', not 'lenet5'"):
        train(tiny_config(epochs=2), tmp_path / "lenet", resume=True)


def test_resume_needs_a_checkpoint(tiny_config, tmp_path):
    with pytest.raises(MnistLibError, match="checkpoint.pt does not exist: nothing to resume"):
        train(tiny_config(), tmp_path, resume=True)
    with pytest.raises(MnistLibError, match="resume needs an output folder"):
        train(tiny_config(), None, resume=True)


@pytest.mark.parametrize("content", ["garbage", "truncated", "state_dict", "list"])
def test_bad_checkpoint_files_are_clear_errors(tiny_config, tmp_path, content):
    path = tmp_path / CHECKPOINT
    if content == "garbage":
        path.write_bytes(os.urandom(2048))
    elif content == "truncated":
        train(tiny_config(epochs=1), tmp_path)
        path.write_bytes(path.read_bytes()[:1000])
        (tmp_path / METRICS).unlink()
    elif content == "state_dict":
        torch.save(build_model("lenet5").state_dict(), path)
    else:
        torch.save([1, 2, 3], path)
    with pytest.raises(MnistLibError, match="checkpoint"):
        train(tiny_config(epochs=2), tmp_path, resume=True)


class _Payload:
    """Unpickling this runs code: a loader without weights_only would create the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_checkpoints_and_models_load_with_weights_only(tiny_config, tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"config": {}, "model_state": _Payload(marker), "epoch": 1}, tmp_path / CHECKPOINT)
    with pytest.raises(MnistLibError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / CHECKPOINT)
    torch.save({"conv1.weight": _Payload(marker)}, tmp_path / MODEL)
    with pytest.raises(MnistLibError, match="not a readable model file"):
        load_model(tmp_path / MODEL, TrainConfig())
    assert not marker.exists()


def test_load_model_refuses_other_weights(tmp_path):
    torch.save(build_model("custom_mlp").state_dict(), tmp_path / MODEL)
    with pytest.raises(MnistLibError, match="does not hold weights of model 'lenet5'"):
        load_model(tmp_path / MODEL, TrainConfig())
    with pytest.raises(MnistLibError, match="does not exist"):
        load_model(tmp_path / "nothing.pt", TrainConfig())


# --------------------------------------------------------------------------- failures leave nothing behind

def test_divergence_stops_naming_epoch_and_step(tiny_config, tmp_path):
    with pytest.raises(MnistLibError, match=r"training diverged: .* at epoch 1, step \d+; lower lr"):
        train(tiny_config(lr=1000.0), tmp_path)
    assert not (tmp_path / METRICS).exists() and not (tmp_path / MODEL).exists()


def test_divergence_on_the_last_step_of_an_epoch(tiny_config, tmp_path):
    """One step per epoch: its loss is fine, the update after it is not."""
    with pytest.raises(MnistLibError, match=r"training diverged: .*after epoch 1, step 1; lower lr"):
        train(tiny_config(lr=1e30, batch_size=1024, epochs=1), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_failing_run_leaves_a_finished_run_untouched(tiny_config, tmp_path):
    train(tiny_config(epochs=1), tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(MnistLibError, match="already holds a finished run"):
        train(tiny_config(epochs=1), tmp_path)
    with pytest.raises(MnistLibError, match="diverged"):
        train(tiny_config(epochs=1, lr=1000.0), tmp_path, overwrite=True)
    with pytest.raises(MnistLibError, match="limit"):
        train(tiny_config(epochs=1, limit=10_000), tmp_path, overwrite=True)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_overwrite_replaces_a_finished_run(tiny_config, tmp_path):
    train(tiny_config(epochs=1), tmp_path)
    result = train(tiny_config(epochs=1, seed=1), tmp_path, overwrite=True)
    assert json.loads((tmp_path / METRICS).read_text())["config"]["seed"] == 1 == result.metrics["config"]["seed"]


def test_output_dir_under_a_regular_file(tiny_config, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(MnistLibError, match="output dir .*file/run is not writable"):
        train(tiny_config(epochs=1), tmp_path / "file" / "run")


def test_atomic_json_write_keeps_the_old_file(tmp_path):
    path = tmp_path / METRICS
    write_json(path, {"a": 1})
    with pytest.raises(ValueError):
        write_json(path, {"a": float("nan")})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == [METRICS]


def test_atomic_torch_write_keeps_the_old_file(tmp_path):
    path = tmp_path / CHECKPOINT
    write_torch(path, {"epoch": 1, "w": torch.ones(3)})
    with pytest.raises(Exception):
        write_torch(path, {"epoch": 2, "w": torch.zeros(3), "bad": lambda: 0})  # fails mid-write: cannot pickle
    saved = torch.load(path, weights_only=True)
    assert saved["epoch"] == 1 and torch.equal(saved["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT]


def test_results_are_readable_like_ordinary_files(tmp_path):
    umask = os.umask(0o022)
    try:
        write_json(tmp_path / METRICS, {})
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / METRICS).stat().st_mode) == 0o644
