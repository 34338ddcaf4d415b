"""`python -m mnist_lib bench`: how fast the engine trains, against the course's per-sample pipeline
and the framework's floor.

Per model, side by side in one run, on the same images:

* per-sample: the course template's way. The training images are written as course-format PNGs
  (`{ID}_{Label}.png`, via `write_course_tar`) and extracted to a temporary folder; a `Dataset`
  opens and decodes one PNG with PIL per `__getitem__`, applies `ToTensor()` + `Normalize`,
  and a `DataLoader(batch_size=64, shuffle=True)` collates the batches.
* fast: the project's engine (`mnist_lib.train.train`) on the same recipe (the course's, batch
  64): each split decoded once into one uint8 tensor, a batch is an index into it, normalized as
  it is made. fast / per-sample is the reported speed-up.
* study: the engine with the study's settings (the `tuned` preset as it is now, or ``study``).
* bare compute: the floor under the study row: the same model, memory format, batch size,
  loss, gradient clipping and optimizer, stepping over one batch tensor reused, with no data
  handling, no augmentation, no schedule and no bookkeeping. study / bare compute is the
  engine's overhead ratio.

Each (row, model) is timed `repeats` times, interleaved so that a noisy machine slows all alike,
and the median is reported. The clock counts training only (evaluation is not timed). Also
measured: the epochs, images and training seconds the `fast` preset needs to reach 99% mean test
accuracy over `seeds` seeds, and the peak memory (max RSS) of a fresh process running a
full-MNIST `train`.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

import mnist_lib
from mnist_lib.config import TrainConfig
from mnist_lib.registry import MODELS
from mnist_lib.bench_results import targets_met
from mnist_lib.course import CoursePngDataset, course_transform, write_course_pngs
from mnist_lib.data import DataSplits, Split, load_data, load_split, split_train_val
from mnist_lib.errors import MnistLibError
from mnist_lib.models import build_model
from mnist_lib.train import (apply_memory_format, cpu_name, evaluate, make_optimizer, seed_everything,
                             select_device, train)

PIPELINES = ("per-sample", "fast", "study", "bare compute")
TARGET_ACCURACY = 99.0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def per_sample_run(model_name: str, loader: DataLoader, config: TrainConfig, test: Split,
                   device: torch.device) -> tuple[float, float]:
    """Train a fresh model for config.epochs epochs the course way; (training seconds, test accuracy)."""
    seed_everything(config.seed)
    model = build_model(model_name).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)  # the course's
    model.train()
    _sync(device)
    start = time.perf_counter()
    for _ in range(config.epochs):
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            optimizer.zero_grad()
            loss = F.cross_entropy(model(images), labels)
            loss.backward()
            optimizer.step()
    _sync(device)
    seconds = time.perf_counter() - start
    return seconds, evaluate(model, test, config.eval_batch_size)[1]


def fast_run(config: TrainConfig, data: DataSplits) -> tuple[float, float]:
    """Train with the engine; (training seconds, as the engine clocks them, and test accuracy)."""
    result = train(config, data=data)
    history = result.metrics["history"]
    return sum(entry["train_seconds"] for entry in history), history[-1]["test_acc"]


def bare_compute_run(config: TrainConfig, train_split: Split, device: torch.device) -> float:
    """Seconds for ``config.epochs`` epochs' worth of training steps (``len(train_split)`` images
    each) on one batch reused: the model, memory format, loss, clipping and optimizer of the
    engine, without its data handling, augmentation, schedule or bookkeeping."""
    seed_everything(config.seed)
    model = apply_memory_format(build_model(config.model, config.batchnorm, config.dropout).to(device),
                                config, device)
    optimizer = make_optimizer(model, config)
    batch = train_split[:config.batch_size]
    x, y = batch.images, batch.labels  # normalized once, outside the clock
    n, bs = len(train_split), len(y)
    steps = -(-n // bs)

    def step() -> None:
        loss = F.cross_entropy(model(x), y, label_smoothing=config.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip, foreach=True)
        optimizer.step()

    model.train()
    for _ in range(2):  # warm-up: first-call allocations and kernel selection are not the floor
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps * config.epochs):
        step()
    _sync(device)
    # scaled to exactly n images per epoch (the engine's last batch is a partial one)
    return (time.perf_counter() - start) * n / (steps * bs)


def time_to_accuracy(data: DataSplits, device: str, threads: int | None, seeds: int = 5,
                     target: float = TARGET_ACCURACY, preset: str = "fast") -> dict[str, Any]:
    """Train LeNet-5 with ``preset`` for ``seeds`` seeds; the first epoch whose mean test accuracy
    over the seeds reaches ``target`` percent, the images seen by then, and the training seconds
    (evaluation not counted; the median over seeds) until then."""
    config = TrainConfig.from_preset(preset, model="lenet5", device=device, threads=threads, progress=False)
    histories = [train(config.replace(seed=seed), data=data).metrics["history"] for seed in range(seeds)]
    accs = [[entry["test_acc"] for entry in history] for history in histories]
    seconds = [[entry["train_seconds"] for entry in history] for history in histories]
    mean_by_epoch = [statistics.fmean(run[e] for run in accs) for e in range(config.epochs)]
    epoch = next((e + 1 for e, acc in enumerate(mean_by_epoch) if acc >= target), None)
    clock = statistics.median(sum(run[:epoch]) for run in seconds) if epoch else None
    return {
        "preset": preset, "model": "lenet5", "target_accuracy": target, "train_images": len(data.train),
        "seeds": seeds, "epochs": config.epochs, "batch_size": config.batch_size,
        "reached": epoch is not None, "epoch": epoch, "seconds": clock,
        "images": epoch * len(data.train) if epoch else None,
        "mean_test_acc_by_epoch": mean_by_epoch,
        "test_acc_by_epoch": accs,  # per seed
        "train_seconds_by_epoch": seconds,  # per seed
    }


# Runs in a fresh interpreter, so the max RSS is this run's alone: `train ...` through the CLI, or
# "baseline": what any training process holds before data (torch imported, an optimizer made).
# Linux: VmHWM is this process's own peak. getrusage's ru_maxrss is not: it carries the parent's
# peak over through fork + exec, so a small run started by a big process would report the parent.
_MEMORY_SCRIPT = """
import json, resource, sys, torch
if sys.argv[1:] == ["baseline"]:
    code = 0
    torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=0.1)
else:
    from mnist_lib.cli import main
    code = main(sys.argv[1:])
try:
    status = open("/proc/self/status").read().split()
    peak, how = int(status[status.index("VmHWM:") + 1]) * 1024, "VmHWM"
except (OSError, ValueError):
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak, how = rss * (1 if sys.platform == "darwin" else 1024), "ru_maxrss"
print(json.dumps({"code": code, "max_rss_bytes": peak, "measure": how,
                  "cuda_peak_bytes": torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None}))
"""


def _max_rss(args: list[str]) -> dict[str, Any]:
    env = dict(os.environ)  # make this mnist_lib importable whether or not it is installed
    package_parent = str(Path(mnist_lib.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([package_parent] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    proc = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, *args], env=env, capture_output=True, text=True)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise MnistLibError(f"the memory measurement's run failed (exit {proc.returncode}): "
                            f"{(proc.stderr.strip().splitlines() or ['no output'])[-1]}")
    report = json.loads(lines[-1])
    if report["code"] != 0:
        raise MnistLibError(f"the memory measurement's train run exited with status {report['code']}")
    return report


def peak_memory(data_dir: str | None, device: str, threads: int | None, limit: int | None) -> dict[str, Any]:
    """Max RSS of a subprocess running `python -m mnist_lib train` (tuned preset, one epoch: the
    memory peak comes in the first epoch) on the full training set (or ``limit`` images), and of
    one that only imports torch and makes an optimizer (the floor under any training run)."""
    args = ["--preset", "tuned", "--model", "lenet5", "--epochs", "1", "--quiet", "--device", device]
    args += ["--data-dir", data_dir] if data_dir else []
    args += ["--threads", str(threads)] if threads else []
    args += ["--limit", str(limit)] if limit else []
    with tempfile.TemporaryDirectory(prefix="mnist-bench-memory-") as tmp:
        run = _max_rss(["train", "--out", tmp, *args])
    baseline = _max_rss(["baseline"])
    return {"command": "python -m mnist_lib train " + " ".join(args), "limit": limit,
            "max_rss_bytes": run["max_rss_bytes"], "max_rss_mib": run["max_rss_bytes"] / 2**20,
            "baseline_rss_bytes": baseline["max_rss_bytes"], "baseline_rss_mib": baseline["max_rss_bytes"] / 2**20,
            "measure": run["measure"], "cuda_peak_bytes": run["cuda_peak_bytes"]}


def _check_args(models: Sequence[str], repeats: int, epochs: int, batch_size: int, limit: int | None,
                threads: int | None) -> None:
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        raise MnistLibError(f"model(s) {', '.join(unknown) or '(none)'} unknown: choose from {', '.join(MODELS)}")
    for name, value in (("repeats", repeats), ("epochs", epochs), ("batch_size", batch_size),
                        ("limit", limit), ("threads", threads)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise MnistLibError(f"{name} must be a positive integer, got {value!r}")


def _time_pipelines(models: Sequence[str], repeats: int, configs: dict[str, TrainConfig], data: DataSplits,
                    data_dir: str | None, progress: bool) -> dict[tuple[str, str], dict[str, list]]:
    """Seconds per epoch (and test accuracy) of every (pipeline, model), ``repeats`` times,
    interleaved so that a noisy machine slows every row alike."""
    course, study = configs["fast"], configs["study"]
    device = select_device(course.device)
    timed = DataSplits(data.train, data.val[:0], data.test, data.dataset, data.mean, data.std)  # only training is timed
    results: dict[tuple[str, str], dict[str, list]] = {}
    with tempfile.TemporaryDirectory(prefix="mnist-bench-") as tmp:
        # The same training images as uint8, written the course way.
        images, labels = load_split("mnist", data_dir, "idx", True)
        train_idx, _ = split_train_val(len(labels), course.val_size, 0)
        train_idx = train_idx[:course.limit] if course.limit else train_idx
        folder = write_course_pngs(images[train_idx], labels[train_idx], Path(tmp))
        loader = DataLoader(CoursePngDataset(folder, course_transform("mnist")), batch_size=course.batch_size, shuffle=True)
        jobs = [(m, p) for _ in range(repeats) for m in models for p in PIPELINES]
        for model_name, pipeline in tqdm(jobs, desc="bench", unit="run", disable=not progress):
            acc = None
            if pipeline == "per-sample":
                seconds, acc = per_sample_run(model_name, loader, course, data.test, device)
            elif pipeline == "bare compute":
                seconds = bare_compute_run(study.replace(model=model_name), data.train, device)
            else:
                seconds, acc = fast_run(configs[pipeline].replace(model=model_name), timed)
            entry = results.setdefault((pipeline, model_name), {"seconds": [], "test_acc": []})
            entry["seconds"].append(seconds / course.epochs)
            entry["test_acc"].append(acc)
    return results


def _rows(results: dict[tuple[str, str], dict[str, list]], models: Sequence[str], configs: dict[str, TrainConfig],
          images: int) -> list[dict[str, Any]]:
    rows = []
    for model_name in models:
        median = {p: statistics.median(results[(p, model_name)]["seconds"]) for p in PIPELINES}
        for pipeline in PIPELINES:
            accs = [a for a in results[(pipeline, model_name)]["test_acc"] if a is not None]
            rows.append({"pipeline": pipeline, "model": model_name,
                         "batch_size": configs["study" if pipeline == "bare compute" else pipeline].batch_size
                         if pipeline != "per-sample" else configs["fast"].batch_size,
                         "seconds_per_epoch": median[pipeline], "images_per_s": images / median[pipeline],
                         "speedup": median["per-sample"] / median[pipeline],
                         "vs_floor": median[pipeline] / median["bare compute"],
                         "test_acc": statistics.median(accs) if accs else None,
                         "seconds_per_epoch_runs": results[(pipeline, model_name)]["seconds"]})
    return rows


def _environment(device: torch.device, load_before: tuple[float, ...]) -> dict[str, Any]:
    return {"torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform(),
            "device": str(device), "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
            "load_average_before": list(load_before)}


def run_bench(models: Sequence[str] = tuple(MODELS), repeats: int = 3, epochs: int = 1, batch_size: int = 64,
              limit: int | None = None, data_dir: str | None = None, device: str = "auto",
              threads: int | None = 1, time_to_99: bool = True, memory: bool = True,
              progress: bool = True, study: dict[str, Any] | None = None, seeds: int = 5) -> dict[str, Any]:
    """Run the benchmark and return its results (what bench.json holds).

    ``threads`` (torch intra-op threads, every row; None: torch's choice) defaults to 1: on a
    small shared machine two threads fighting other work for two cores ran 10-30x slower, which
    makes timings meaningless; unloaded, two threads made LeNet-5's fast path ~1.5x faster.
    ``study``: the study's settings over the `tuned` preset (None: the tuned preset as it is)."""
    _check_args(models, repeats, epochs, batch_size, limit, threads)
    common = dict(epochs=epochs, device=device, threads=threads, limit=limit, progress=False)
    configs = {"fast": TrainConfig.from_dict(dict(batch_size=batch_size, **common)),  # the course recipe otherwise
               "study": TrainConfig.from_preset("tuned", **{**(study or {}), **common})}
    torch_device = select_device(device)
    if threads is not None:
        torch.set_num_threads(threads)  # every row runs under the same setting
    load_before = os.getloadavg()
    data = load_data("mnist", data_dir, "idx", limit=limit).to(torch_device)  # every row trains on these images
    rows = _rows(_time_pipelines(models, repeats, configs, data, data_dir, progress), models, configs, len(data.train))
    keys = ("batch_size", "optimizer", "lr", "momentum", "nesterov", "weight_decay", "schedule", "label_smoothing",
            "grad_clip", "augment", "augment_mode", "augment_degrees", "augment_shift", "memory_format")
    report: dict[str, Any] = {
        "settings": {"models": list(models), "repeats": repeats, "epochs": epochs, "batch_size": batch_size,
                     "limit": limit, "images_per_epoch": len(data.train), "recipe": "course (SGD lr 0.01, momentum 0.9)",
                     "study": {k: getattr(configs["study"], k) for k in keys}},
        "environment": _environment(torch_device, load_before),
        "results": rows,
        "speedup": {r["model"]: r["speedup"] for r in rows if r["pipeline"] == "fast"},
        "floor_ratio": {r["model"]: r["vs_floor"] for r in rows if r["pipeline"] == "study"},  # study / bare compute
        "time_to_99": time_to_accuracy(data, device, threads, seeds) if time_to_99 else None,
        "memory": peak_memory(data_dir, device, threads, limit) if memory else None,
    }
    report["environment"]["load_average_after"] = list(os.getloadavg())
    report["targets"] = targets_met(report)
    return report
