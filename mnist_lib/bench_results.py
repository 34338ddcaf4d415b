"""The benchmark's results: which targets a run met, the table and summary it prints, and
`bench.json` (a CPU run at the top level, a GPU run under its own key)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mnist_lib.errors import MnistLibError
from mnist_lib.files import ensure_writable_dir, write_json

# The targets; the JSON records whether this run met each.
TARGETS = {"lenet5_speedup": 6.0, "custom_mlp_speedup": 10.0, "time_to_99_seconds": 5.0, "peak_memory_bytes": 1 << 30,
           "epochs_to_99": 2, "floor_ratio": 1.10}


def targets_met(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each target with the measured value and whether it was met (None: not measured)."""
    t99, mem = report["time_to_99"], report["memory"]
    floor = report.get("floor_ratio", {})
    measured = {"lenet5_speedup": report["speedup"].get("lenet5"),
                "custom_mlp_speedup": report["speedup"].get("custom_mlp"),
                "time_to_99_seconds": (t99["seconds"] if t99["reached"] else float("inf")) if t99 else None,
                "peak_memory_bytes": mem["max_rss_bytes"] if mem else None,
                "epochs_to_99": (t99["epoch"] if t99["reached"] else float("inf")) if t99 else None,
                "floor_ratio": max(floor.values()) if floor else None}  # the worst model must meet it
    out = {}
    for name, goal in TARGETS.items():
        value = measured[name]
        met = None if value is None else (value >= goal if name.endswith("speedup") else value <= goal)
        out[name] = {"target": goal, "measured": None if value in (None, float("inf")) else value, "met": met}
    return out


def format_table(report: dict[str, Any]) -> str:
    import pandas as pd

    frame = pd.DataFrame(report["results"]).drop(columns="seconds_per_epoch_runs")
    frame["pipeline"] = frame["pipeline"].str.replace(" ", "_")  # one word per column when printed
    return frame.to_string(index=False, na_rep="-", formatters={
        "seconds_per_epoch": "{:.3f}".format, "images_per_s": "{:,.0f}".format,
        "speedup": "{:.1f}x".format, "vs_floor": "{:.2f}".format,
        "test_acc": "{:.2f}".format})


def format_summary(report: dict[str, Any]) -> str:
    lines = []
    settings = report["settings"]
    if "study" in settings:
        s = settings["study"]
        lines.append(f"study: batch {s['batch_size']}, lr {s['lr']}, augmentation "
                     f"{s['augment_mode'] if s['augment'] else 'none'}, memory format {s['memory_format']}")
    t99 = report["time_to_99"]
    if t99:
        # a bench.json from before the fast preset has one seed and no image count: still readable
        seeds, accs = t99.get("seeds", 1), t99.get("mean_test_acc_by_epoch", t99["test_acc_by_epoch"])
        if t99["reached"]:
            images = f"{t99['images']:,}" if t99.get("images") else f"{t99['epoch'] * t99['train_images']:,}"
            lines.append(f"to {t99['target_accuracy']}% mean test accuracy over {seeds} seed(s) (LeNet-5, "
                         f"{t99['preset']} preset): epoch {t99['epoch']}, {images} training images, "
                         f"{t99['seconds']:.1f} s of training (median over seeds)")
        else:
            lines.append(f"{t99['target_accuracy']}% mean test accuracy: not reached in {len(accs)} epochs "
                         f"({t99['preset']} preset, best mean {max(accs):.2f}%)")
    if report["memory"]:
        memory = report["memory"]
        lines.append(f"peak memory (max RSS) of `{memory['command']}`: {memory['max_rss_mib']:.0f} MiB (of which "
                     f"{memory['baseline_rss_mib']:.0f} MiB is torch imported + an optimizer, before any data)")
    shown = {"lenet5_speedup": ("LeNet-5 speed-up over per-sample", ">=", "{:.1f}x"),
             "custom_mlp_speedup": ("CustomMLP speed-up over per-sample", ">=", "{:.1f}x"),
             "time_to_99_seconds": ("time to 99%", "<=", "{:.1f} s"),
             "peak_memory_bytes": ("peak memory", "<=", "{:.0f} MiB"),
             "epochs_to_99": ("epochs to 99%", "<=", "{:.0f}"),
             "floor_ratio": ("engine / bare compute (worst model)", "<=", "{:.2f}")}
    for name, target in report["targets"].items():
        if target["met"] is None or name not in shown:  # unmeasured, or a target this version no longer sets
            continue
        label, relation, fmt = shown[name]
        scale = 2**20 if name == "peak_memory_bytes" else 1
        measured = "not reached" if target["measured"] is None else fmt.format(target["measured"] / scale)
        lines.append(f"target {label} {relation} {fmt.format(target['target'] / scale)}: {measured}, "
                     f"{'met' if target['met'] else 'NOT met'}")
    return "\n".join(lines)


SECTIONS = ("gpu",)  # runs on another machine, kept in the same bench.json under their own key


def write_report(report: dict[str, Any], out: str | os.PathLike, section: str | None = None) -> Path:
    """Write the results to ``out``. With ``section`` (a GPU run), under that key of the file, the
    rest kept; without it, as the file's top level, its sections kept."""
    out = Path(out)
    ensure_writable_dir(out.parent)
    try:
        existing = json.loads(out.read_text()) if out.is_file() else {}
    except json.JSONDecodeError:
        raise MnistLibError(f"{out} is not valid JSON: move it away, or write to another --out") from None
    if section is not None:
        write_json(out, {**existing, section: report})
    else:
        write_json(out, {**report, **{k: existing[k] for k in SECTIONS if k in existing}})
    return out


def study_wall(summary_path: str | os.PathLike) -> dict[str, Any]:
    """The study's environment and wall time from its report/summary.json, for the bench's record."""
    path = Path(summary_path)
    try:
        summary = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        raise MnistLibError(f"{path} is not a readable summary.json: run `python -m mnist_lib report` first") from None
    return {**summary.get("environment", {}), "workers": summary.get("workers")}
