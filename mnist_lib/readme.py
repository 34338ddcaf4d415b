"""`python -m mnist_lib readme`: refill README.md's results and benchmark blocks from the saved
JSON of the committed run (report/summary.json, report/bench.json). Nothing is typed by hand."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from mnist_lib.bench import format_summary
from mnist_lib.errors import MnistLibError
from mnist_lib.files import read_json, write_atomic
from mnist_lib.models import build_model, count_parameters
from mnist_lib.pipeline import REPO
from mnist_lib.registry import HEADLINE, MODELS
from mnist_lib.tables import comparisons_frame, markdown_table, results_frame, seconds_text, targets_frame


def readme_results(summary: Mapping[str, Any]) -> str:
    """The README's results: the headline table, the ablation's verdicts and a link to the report."""
    keys = [*HEADLINE, "lenet5_batchnorm", "best_variant"]
    parts = ["MNIST, tuned recipe; test accuracy of the kept (best-validation) model, mean ± std over seeds "
             "(`report/summary.json`):", "",
             markdown_table(results_frame(summary, "mnist", keys).drop(columns=["recipe"], errors="ignore")), "",
             markdown_table(targets_frame(summary)), "",
             "Does regularization help? Each row against its baseline: the difference in test accuracy "
             "(points) with its 95% confidence interval, Welch's p-value, Holm's adjusted p-value over the rows "
             "tested against the same baseline, and the verdict at the 5% level after Holm:", "",
             markdown_table(comparisons_frame(summary)), ""]
    env = summary.get("environment")
    if env and env.get("wall_seconds"):
        sittings = f" in {env['sittings']} sittings" if env.get("sittings", 1) > 1 else ""
        parts.append(f"The study's {env['runs']} runs trained on {env['device_name']} (`{env['device_type']}`, torch "
                     f"{env['torch']}){sittings} in {seconds_text(env['wall_seconds'])} of wall time.")
    parts.append("The full write-up: [report/report.pdf](report/report.pdf) ([HTML](report/report.html)).")
    return "\n".join(parts)


def readme_models() -> str:
    """The README's opening table: the writeup's models, parameters counted from the modules, its claims."""
    claims = {"lenet5": '"exceeding 98%"', "custom_mlp": "95%", "lenet5_regularized": '"improves generalization"'}
    rows = [{"model": MODELS[name], "parameters": f"{count_parameters(build_model(name)):,}",
             "writeup's claim": claims[name]} for name in MODELS]
    return markdown_table(pd.DataFrame(rows))


def readme_bench(bench: Mapping[str, Any]) -> str:
    """The README's benchmark table, from report/bench.json, with the machine it came from."""
    env, settings = bench["environment"], bench["settings"]
    frame = pd.DataFrame([{"pipeline": r["pipeline"], "model": r["model"], "batch": r["batch_size"],
                           "s / epoch (median)": f"{r['seconds_per_epoch']:.2f}",
                           "images / s": f"{r['images_per_s']:,.0f}", "speed-up": f"{r['speedup']:.1f}x"}
                          for r in bench["results"]])
    machine = (f"{env['device_name']}, {env['cpu_count']} cores, {env['threads']} torch thread(s), "
               f"torch {env['torch']}; load average {env['load_average_before'][0]:.1f} before")
    return "\n".join([f"Measured by `python -m mnist_lib bench` on {machine}; {settings['images_per_epoch']:,} "
                      f"images per epoch, median of {settings['repeats']} runs (`report/bench.json`):", "",
                      markdown_table(frame), "", "```", format_summary(dict(bench)), "```"])


def update_readme(readme: str | Path, summary_path: str | Path | None, bench_path: str | Path | None) -> list[str]:
    """Refill the README's `<!-- NAME:begin -->` ... `<!-- NAME:end -->` blocks from the saved JSON; their names."""
    readme = Path(readme)
    text = readme.read_text()
    made = {"models": readme_models()}
    if summary_path and Path(summary_path).is_file():
        made["results"] = readme_results(read_json(summary_path))
    if bench_path and Path(bench_path).is_file():
        made["bench"] = readme_bench(read_json(bench_path))
    for name, body in made.items():
        pattern = re.compile(rf"(<!-- {name}:begin -->\n)(?:.*?\n)?(<!-- {name}:end -->)", re.S)
        if not pattern.search(text):
            raise MnistLibError(f"{readme} has no <!-- {name}:begin --> ... <!-- {name}:end --> block to fill")
        text = pattern.sub(lambda m: m.group(1) + body.rstrip("\n") + "\n" + m.group(2), text)
    write_atomic(readme, text)
    return list(made)


def add_command(subparsers) -> None:
    p = subparsers.add_parser("readme", help="refill README.md's results and benchmark tables from report/*.json")
    p.add_argument("--readme", default=str(REPO / "README.md"))
    p.add_argument("--summary", default=str(REPO / "report" / "summary.json"))
    p.add_argument("--bench", default=str(REPO / "report" / "bench.json"))
    p.set_defaults(func=cmd_readme)


def cmd_readme(args: argparse.Namespace) -> int:
    print(f"{args.readme}: refilled {', '.join(update_readme(args.readme, args.summary, args.bench))}")
    return 0


