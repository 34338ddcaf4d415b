"""`python -m mnist_lib bench`: how fast the engine trains, against the course's per-sample pipeline and
the framework's floor (`PIPELINES`), how soon it reaches 99% and its peak memory; and the results: the
targets met, the printed table and summary, and `bench.json` (a CPU run at the top level, a GPU run under its key)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

import mnist_lib
from mnist_lib.config import TrainConfig, number
from mnist_lib.course import CoursePngDataset, course_transform, write_course_pngs
from mnist_lib.data import DataSplits, Split, load_data
from mnist_lib.errors import MnistLibError
from mnist_lib.files import ensure_writable_dir, read_json, write_json
from mnist_lib.models import build_model
from mnist_lib.registry import MODELS
from mnist_lib.train import (apply_memory_format, environment, evaluate, make_optimizer, seed_everything,
                             select_device, train, train_step)

# The rows (timed by `per_sample_run`, the engine's `train`, `bare_compute_run`); the recipe each trains: the
# course's ("fast") or the study's.
PIPELINES = ("per-sample", "fast", "study", "bare compute")
RECIPE = {"per-sample": "fast", "fast": "fast", "study": "study", "bare compute": "study"}
# The targets (a speed-up must reach its goal, the rest stay at or under it), with how the summary shows them.
TARGETS = {"lenet5_speedup": (6.0, "LeNet-5 speed-up over per-sample", "{:.1f}x".format),
           "custom_mlp_speedup": (10.0, "CustomMLP speed-up over per-sample", "{:.1f}x".format),
           "time_to_99_seconds": (5.0, "time to 99%", "{:.1f} s".format),
           "peak_memory_bytes": (1 << 30, "peak memory", lambda n: f"{n / 2**20:.0f} MiB"),
           "epochs_to_99": (2, "epochs to 99%", "{:.0f}".format),
           "floor_ratio": (1.10, "engine / bare compute (worst model)", "{:.2f}".format)}
SECTIONS = ("gpu",)  # runs on another machine, kept in the same bench.json under their own key


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def per_sample_run(config: TrainConfig, loader: DataLoader, test: Split, device: torch.device) -> tuple[float, float]:
    """Train a fresh ``config.model`` the course template's way: ``loader`` opens and decodes one PNG
    with PIL per image (ToTensor + Normalize), the course's plain SGD; (training seconds, test accuracy)."""
    seed_everything(config.seed)
    model = build_model(config.model).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
    _sync(device)
    start = time.perf_counter()
    for _ in range(config.epochs):
        for images, labels in loader:
            train_step(model, optimizer, images.to(device), labels.to(device), config)
    _sync(device)
    seconds = time.perf_counter() - start
    return seconds, evaluate(model, test, config.eval_batch_size)[1]


def bare_compute_run(config: TrainConfig, train_split: Split, device: torch.device) -> float:
    """Seconds for ``config.epochs`` epochs' worth of the engine's training steps (``len(train_split)``
    images each) on one batch reused: its model, memory format and `train_step` (loss, clipping,
    optimizer), without its data handling, augmentation, schedule or bookkeeping."""
    seed_everything(config.seed)
    model = apply_memory_format(build_model(config.model, config.batchnorm, config.dropout).to(device), config, device)
    optimizer = make_optimizer(model, config)
    batch = train_split[:config.batch_size]
    x, y = batch.images, batch.labels  # normalized once (a property), outside the clock
    n, bs = len(train_split), len(y)
    steps = math.ceil(n / bs)
    for _ in range(2):  # warm-up: first-call allocations and kernel selection are not the floor
        train_step(model, optimizer, x, y, config)
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps * config.epochs):
        train_step(model, optimizer, x, y, config)
    _sync(device)
    # scaled to exactly n images per epoch (the engine's last batch is a partial one)
    return (time.perf_counter() - start) * n / (steps * bs)


def time_to_accuracy(data: DataSplits, device: str, threads: int | None, seeds: int = 5,
                     target: float = 99.0, preset: str = "fast") -> dict[str, Any]:
    """Train LeNet-5 with ``preset`` for ``seeds`` seeds; the first epoch whose mean test accuracy
    over the seeds reaches ``target`` percent, the images seen by then, and the training seconds
    (evaluation not counted; the median over seeds) until then."""
    config = TrainConfig.from_preset(preset, model="lenet5", device=device, threads=threads, progress=False)
    histories = [train(config.replace(seed=seed), data=data).metrics["history"] for seed in range(seeds)]
    accs = [[entry["test_acc"] for entry in history] for history in histories]
    seconds = [[entry["train_seconds"] for entry in history] for history in histories]
    mean_by_epoch = [statistics.fmean(run[e] for run in accs) for e in range(config.epochs)]
    epoch = next((e + 1 for e, acc in enumerate(mean_by_epoch) if acc >= target), None)
    return {"preset": preset, "model": "lenet5", "target_accuracy": target, "train_images": len(data.train),
            "seeds": seeds, "epochs": config.epochs, "batch_size": config.batch_size, "reached": epoch is not None,
            "epoch": epoch, "seconds": statistics.median(sum(run[:epoch]) for run in seconds) if epoch else None,
            "images": epoch * len(data.train) if epoch else None, "mean_test_acc_by_epoch": mean_by_epoch,
            "test_acc_by_epoch": accs, "train_seconds_by_epoch": seconds}  # the last two: per seed


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
    package_parent = str(Path(mnist_lib.__file__).resolve().parents[1])  # this mnist_lib, installed or not
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")]))}
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
    for flag, value in (("--data-dir", data_dir), ("--threads", threads), ("--limit", limit)):
        args += [flag, str(value)] if value else []
    with tempfile.TemporaryDirectory(prefix="mnist-bench-memory-") as tmp:
        run = _max_rss(["train", "--out", tmp, *args])
    baseline = _max_rss(["baseline"])
    return {"command": "python -m mnist_lib train " + " ".join(args), "limit": limit,
            "max_rss_bytes": run["max_rss_bytes"], "max_rss_mib": run["max_rss_bytes"] / 2**20,
            "baseline_rss_bytes": baseline["max_rss_bytes"], "baseline_rss_mib": baseline["max_rss_bytes"] / 2**20,
            "measure": run["measure"], "cuda_peak_bytes": run["cuda_peak_bytes"]}


def _time_pipelines(models: Sequence[str], repeats: int, configs: dict[str, TrainConfig], data: DataSplits,
                    progress: bool) -> list[dict[str, Any]]:
    """One row per (model, pipeline): the median seconds per epoch of ``repeats`` runs (only training on the
    clock; interleaved, so that a noisy machine slows every row alike), the speed-up over per-sample, the ratio
    to the bare compute floor, the median test accuracy."""
    course = configs["fast"]
    device = select_device(course.device)
    timed = dataclasses.replace(data, val=data.val[:0])  # the engine evaluates no validation split
    results = {(p, m): [] for m in models for p in PIPELINES}
    with tempfile.TemporaryDirectory(prefix="mnist-bench-") as tmp:
        # The same training images (uint8), written the course way.
        folder = write_course_pngs(data.train.stored.cpu(), data.train.labels.cpu(), Path(tmp))
        loader = DataLoader(CoursePngDataset(folder, course_transform("mnist")), batch_size=course.batch_size,
                            shuffle=True)
        jobs = [(m, p) for _ in range(repeats) for m in models for p in PIPELINES]
        for model_name, pipeline in tqdm(jobs, desc="bench", unit="run", disable=not progress):
            config, acc = configs[RECIPE[pipeline]].replace(model=model_name), None
            if pipeline == "per-sample":
                seconds, acc = per_sample_run(config, loader, data.test, device)
            elif pipeline == "bare compute":
                seconds = bare_compute_run(config, data.train, device)
            else:  # the engine: each split one uint8 tensor, a batch an index into it, normalized as it is made
                history = train(config, data=timed).metrics["history"]
                seconds, acc = sum(entry["train_seconds"] for entry in history), history[-1]["test_acc"]
            results[(pipeline, model_name)].append((seconds / course.epochs, acc))
    rows = []
    for model_name in models:
        median = {p: statistics.median(s for s, _ in results[(p, model_name)]) for p in PIPELINES}
        for pipeline in PIPELINES:
            seconds, accs = zip(*results[(pipeline, model_name)])
            rows.append({"pipeline": pipeline, "model": model_name,
                         "batch_size": configs[RECIPE[pipeline]].batch_size, "seconds_per_epoch": median[pipeline],
                         "images_per_s": len(data.train) / median[pipeline],
                         "speedup": median["per-sample"] / median[pipeline],
                         "vs_floor": median[pipeline] / median["bare compute"],
                         "test_acc": None if pipeline == "bare compute" else statistics.median(accs),
                         "seconds_per_epoch_runs": list(seconds)})
    return rows


def run_bench(models: Sequence[str] = tuple(MODELS), repeats: int = 3, epochs: int = 1, batch_size: int = 64,
              limit: int | None = None, data_dir: str | None = None, device: str = "auto", threads: int | None = 1,
              time_to_99: bool = True, memory: bool = True, progress: bool = True) -> dict[str, Any]:
    """The benchmark's results (what bench.json holds). ``threads`` (torch intra-op threads, every row; None:
    torch's choice) defaults to 1: on a small shared machine two threads fighting other work for two cores ran
    10-30x slower, which makes timings meaningless; unloaded, two threads made LeNet-5's fast path ~1.5x faster."""
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        raise MnistLibError(f"model(s) {', '.join(unknown) or '(none)'} unknown: choose from {', '.join(MODELS)}")
    number("repeats", repeats, int, "positive")
    # TrainConfig checks epochs, batch_size, limit, threads and device
    common = dict(epochs=epochs, device=device, threads=threads, limit=limit, progress=False)
    configs = {"fast": TrainConfig.from_dict(dict(batch_size=batch_size, **common)),  # the course recipe otherwise
               "study": TrainConfig.from_preset("tuned", **common)}  # the study's settings
    torch_device = select_device(device)
    if threads is not None:
        torch.set_num_threads(threads)  # every row runs under the same setting
    load_before = os.getloadavg()
    data = load_data("mnist", data_dir, "idx", limit=limit).to(torch_device)  # every row trains on these images
    rows = _time_pipelines(models, repeats, configs, data, progress)
    keys = ("batch_size", "optimizer", "lr", "momentum", "nesterov", "weight_decay", "schedule", "label_smoothing",
            "grad_clip", "augment", "augment_mode", "augment_degrees", "augment_shift", "memory_format")
    report: dict[str, Any] = {
        "settings": {"models": list(models), "repeats": repeats, "epochs": epochs, "batch_size": batch_size,
                     "limit": limit, "images_per_epoch": len(data.train),
                     "recipe": "course (SGD lr 0.01, momentum 0.9)",
                     "study": {k: getattr(configs["study"], k) for k in keys}},
        "environment": {**environment(torch_device, configs["fast"]), "cpu_count": os.cpu_count(),
                        "load_average_before": list(load_before)},
        "results": rows,
        "speedup": {r["model"]: r["speedup"] for r in rows if r["pipeline"] == "fast"},
        "floor_ratio": {r["model"]: r["vs_floor"] for r in rows if r["pipeline"] == "study"},  # study / bare compute
        "time_to_99": time_to_accuracy(data, device, threads) if time_to_99 else None,
        "memory": peak_memory(data_dir, device, threads, limit) if memory else None,
    }
    report["environment"]["load_average_after"] = list(os.getloadavg())
    report["targets"] = targets_met(report)
    return report


# --------------------------------------------------------------------------- the results

def targets_met(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each target with the measured value and whether it was met (None: not measured)."""
    t99, mem, floor = report["time_to_99"], report["memory"], report.get("floor_ratio", {})
    measured = {"lenet5_speedup": report["speedup"].get("lenet5"),
                "custom_mlp_speedup": report["speedup"].get("custom_mlp"),
                "time_to_99_seconds": (t99["seconds"] if t99["reached"] else float("inf")) if t99 else None,
                "peak_memory_bytes": mem["max_rss_bytes"] if mem else None,
                "epochs_to_99": (t99["epoch"] if t99["reached"] else float("inf")) if t99 else None,
                "floor_ratio": max(floor.values()) if floor else None}  # the worst model must meet it
    out = {}
    for name, (goal, _, _) in TARGETS.items():
        value = measured[name]
        met = None if value is None else (value >= goal if name.endswith("speedup") else value <= goal)
        out[name] = {"target": goal, "measured": None if value in (None, float("inf")) else value, "met": met}
    return out


def format_table(report: dict[str, Any]) -> str:
    """The results, one row per (pipeline, model), one word per cell."""
    frame = pd.DataFrame(report["results"]).drop(columns="seconds_per_epoch_runs")
    frame["pipeline"] = frame["pipeline"].str.replace(" ", "_")
    return frame.to_string(index=False, na_rep="-", formatters={
        "seconds_per_epoch": "{:.3f}".format, "images_per_s": "{:,.0f}".format,
        "speedup": "{:.1f}x".format, "vs_floor": "{:.2f}".format, "test_acc": "{:.2f}".format})


def format_summary(report: dict[str, Any]) -> str:
    """The study's settings, time to 99%, peak memory and the targets, in sentences."""
    s = report["settings"]["study"]
    lines = [f"study: batch {s['batch_size']}, lr {s['lr']}, augmentation "
             f"{s['augment_mode'] if s['augment'] else 'none'}, memory format {s['memory_format']}"]
    if t99 := report["time_to_99"]:
        if t99["reached"]:
            lines.append(f"to {t99['target_accuracy']}% mean test accuracy over {t99['seeds']} seed(s) (LeNet-5, "
                         f"{t99['preset']} preset): epoch {t99['epoch']}, {t99['images']:,} training images, "
                         f"{t99['seconds']:.1f} s of training (median over seeds)")
        else:
            lines.append(f"{t99['target_accuracy']}% mean test accuracy: not reached in {t99['epochs']} epochs "
                         f"({t99['preset']} preset, best mean {max(t99['mean_test_acc_by_epoch']):.2f}%)")
    if memory := report["memory"]:
        lines.append(f"peak memory (max RSS) of `{memory['command']}`: {memory['max_rss_mib']:.0f} MiB (of which "
                     f"{memory['baseline_rss_mib']:.0f} MiB is torch imported + an optimizer, before any data)")
    for name, target in report["targets"].items():
        if target["met"] is None or name not in TARGETS:  # unmeasured, or a target this version no longer sets
            continue
        _, label, fmt = TARGETS[name]
        measured = "not reached" if target["measured"] is None else fmt(target["measured"])
        lines.append(f"target {label} {'>=' if name.endswith('speedup') else '<='} "
                     f"{fmt(target['target'])}: {measured}, {'met' if target['met'] else 'NOT met'}")
    return "\n".join(lines)


def write_report(report: dict[str, Any], out: str | os.PathLike, section: str | None = None) -> Path:
    """Write the results to ``out``. With ``section`` (a GPU run), under that key of the file, the
    rest kept; without it, as the file's top level, its sections kept."""
    out = Path(out)
    ensure_writable_dir(out.parent)
    existing = read_json(out) if out.is_file() else {}
    kept = {k: existing[k] for k in SECTIONS if k in existing}
    write_json(out, {**existing, section: report} if section is not None else {**report, **kept})
    return out


def study_wall(summary_path: str | os.PathLike) -> dict[str, Any]:
    """The study's environment and wall time from its report/summary.json, for the bench's record."""
    path = Path(summary_path)
    try:
        summary = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        raise MnistLibError(f"{path} is not a readable summary.json: run `python -m mnist_lib report` first") from None
    return {**summary.get("environment", {}), "workers": summary.get("workers")}
