"""The report pipeline: run every notebook with papermill (executed copies are the record),
then export the report notebook to one self-contained HTML file and a PDF (nbconvert, xelatex).

    python -m mnist_lib report [--quick] [--plan] [--runs-dir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from tqdm.auto import tqdm

from mnist_lib.errors import MnistLibError
from mnist_lib.export import check_report_tools, export_report
from mnist_lib.plan import BEST, QUICK, QUICK_VAL, STUDY, Step, describe, estimate_seconds
from mnist_lib.registry import HEADLINE, VARIANTS
from mnist_lib.tables import seconds_text

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
KERNEL = "python3"

# --------------------------------------------------------------------------- the pipeline

# Loggers of the machinery around a notebook run: a kernel dying on a failed cell makes them
# print tracebacks (e.g. tornado's "Uncaught exception in ZMQStream callback" and zmq's "Socket
# operation on non-socket", a shutdown race) that are not the notebook's error.
NOISY_LOGGERS = ("papermill", "nbclient", "jupyter_client", "traitlets", "tornado", "tornado.general",
                 "tornado.application", "asyncio", "zmq")


def _quiet_kernel_manager(stderr):
    """jupyter_client's AsyncKernelManager, but the kernel process writes its own stderr (which
    it inherits otherwise: ipykernel's shutdown tracebacks land on the terminal) into ``stderr``."""
    from jupyter_client.manager import AsyncKernelManager

    class QuietKernelManager(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd, **kw):
            kw["stderr"] = stderr
            return await super()._async_launch_kernel(kernel_cmd, **kw)

    return QuietKernelManager


@contextlib.contextmanager
def _quiet_execution():
    """During a notebook run: the noisy loggers off, and whatever the machinery writes to this
    process's stderr (warnings, ignored exceptions at shutdown) dropped. The notebook's own
    error still comes out as the exception raised, so nothing the user needs is lost. Yields the
    file the kernel process's stderr goes to."""
    loggers = [logging.getLogger(name) for name in NOISY_LOGGERS]
    levels = [logger.level for logger in loggers]
    with tempfile.TemporaryFile("w+") as kernel_stderr, contextlib.redirect_stderr(io.StringIO()):
        for logger in loggers:
            logger.setLevel(logging.CRITICAL + 1)
        try:
            yield kernel_stderr
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)


def _last_line(stream) -> str:
    stream.flush()
    stream.seek(0)
    lines = [line.strip() for line in stream.read().splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def run_notebook(name: str, output: Path, parameters: Mapping[str, Any], label: str | None = None) -> float:
    """Execute notebooks/<name>.ipynb with papermill into ``output``; seconds taken. A failing
    cell becomes one MnistLibError line naming the notebook, the cell and the executed copy;
    nothing else reaches stderr (see _quiet_execution)."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    source = NOTEBOOKS / f"{name}.ipynb"
    if not source.is_file():
        raise MnistLibError(f"{source} does not exist: the report command runs from a checkout of the repository")
    output.parent.mkdir(parents=True, exist_ok=True)
    label = label or output.name
    start = time.perf_counter()
    with _quiet_execution() as kernel_stderr:
        try:
            papermill.execute_notebook(str(source), str(output), parameters=dict(parameters), kernel_name=KERNEL,
                                       cwd=str(REPO), progress_bar=False, log_output=False,
                                       kernel_manager_class=_quiet_kernel_manager(kernel_stderr),
                                       extra_arguments=["--IPKernelApp.log_level=CRITICAL"])  # no start-up chatter
        except PapermillExecutionError as exc:
            first = next((line.strip() for line in exc.source.splitlines() if line.strip() and not line.startswith("#")),
                         "")
            evalue = " ".join(str(exc.evalue).split())
            error = MnistLibError(f"notebook {source.name} ({label}) failed in cell [{exec_count(exc)}] `{first[:60]}`: "
                                  f"{exc.ename}: {evalue} (executed copy: {output})")
        except Exception as exc:  # kernel died, timed out, could not start
            detail = _last_line(kernel_stderr)
            error = MnistLibError(f"notebook {source.name} ({label}) could not run: {type(exc).__name__}: "
                                  f"{' '.join(str(exc).split())[:200]}" + (f" (kernel: {detail})" if detail else ""))
        else:
            error = None
    _relative_paths(output)
    if error is not None:
        raise error  # outside the quiet block, and without the papermill traceback chained
    return time.perf_counter() - start


def _relative_paths(executed: Path) -> None:
    """papermill records the absolute input and output paths in the executed copy's metadata:
    make them repository-relative, so the committed record names no folder of the machine."""
    if not executed.is_file():
        return
    nb = json.loads(executed.read_text())
    record = nb.get("metadata", {}).get("papermill", {})
    for key in ("input_path", "output_path"):
        if record.get(key):
            record[key] = _rel(Path(record[key]))
    executed.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def exec_count(exc) -> str:
    return str(exc.exec_count) if exc.exec_count is not None else f"#{exc.cell_index}"


@dataclass
class Outputs:
    """Where one pipeline run writes: the full run's committed folders, or a quick run's own."""
    runs: Path
    images: Path
    executed: Path
    report: Path

    @classmethod
    def default(cls, quick: bool, runs: str | Path | None = None) -> "Outputs":
        if quick:
            base = Path(runs) if runs else REPO / "runs" / "quick"
            return cls(base, base / "images", base / "executed", base / "report")
        return cls(Path(runs) if runs else REPO / "runs", REPO / "images", REPO / "notebooks" / "executed",
                   REPO / "report")


def _rel(path: Path) -> str:
    """A path as the notebooks get it: relative to the repository when inside it, so no
    executed notebook records the absolute folder of the machine that ran it."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def step_parameters(step: "Step", variant: str | None, outputs: Outputs, device: str, data_dir: str | None,
                    retrain: bool, quick: bool) -> tuple[str, dict[str, Any]]:
    """(notebook, papermill parameters) of a plan step; ``variant`` resolves a BEST step."""

    runs = outputs.runs / step.group if step.group else outputs.runs
    figures = outputs.images if step.figures else runs / "figures" / step.name
    params: dict[str, Any] = dict(seeds=list(step.seeds), epochs=step.epochs, dataset=step.dataset, device=device,
                                  runs_dir=_rel(runs), images_dir=_rel(figures), retrain=retrain)
    if step.limit is not None:
        params["limit"] = step.limit
    if step.lr is not None:
        params["lr"] = step.lr
    if quick:
        params["val_size"] = QUICK_VAL
    if step.dataset == "mnist" and data_dir:
        params["data_dir"] = data_dir  # Fashion-MNIST: the loader's own default (staged in ./data)
    if step.notebook == "ablation":
        return "ablation", dict(params, variants=list(step.variants), recipes=[step.recipe])
    variant = variant or step.variants[0]
    return VARIANTS[variant].model, dict(params, model=variant, recipe=step.recipe)


def _execute(notebook: str, output: str, parameters: dict[str, Any], threads: int | None) -> float:
    """One plan step in a worker process (one torch thread each when several run side by side)."""
    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)  # the kernel inherits it: torch's thread count
    return run_notebook(notebook, Path(output), parameters, label=Path(output).name)


def _expected_runs(steps: Sequence["Step"], outputs: Outputs, best: str | None) -> list[Path]:
    from mnist_lib.experiments import run_dir  # imports torch: not at the CLI's start

    paths = []
    for s in steps:
        for v in s.variants:
            for seed in s.seeds:
                if v != BEST or best:
                    runs = outputs.runs / s.group if s.group else outputs.runs
                    paths.append(run_dir(runs, s.dataset, s.recipe, best if v == BEST else v, seed) / "metrics.json")
    return paths


class _Progress:
    """One overall progress bar of finished runs (their metrics.json, written last), refreshed by
    a thread every two seconds; on stdout, since stderr is kept for the one `error:` line."""

    def __init__(self, steps: Sequence[Step], outputs: Outputs):
        self.steps, self.outputs, self.best = steps, outputs, None
        self.bar = tqdm(total=sum(s.runs for s in steps), desc="study: runs done", unit="run", dynamic_ncols=True,
                        file=sys.stdout)
        self.stop = threading.Event()
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        while not self.stop.wait(2.0):
            self.update()

    def update(self) -> None:
        self.bar.n = sum(p.exists() for p in _expected_runs(self.steps, self.outputs, self.best))
        self.bar.refresh()

    def close(self) -> None:
        self.stop.set()
        self.update()
        self.bar.close()


def _best_variant(step: Step, outputs: Outputs) -> str | None:
    """The variant a BEST step trains: the best MNIST variant by validation accuracy, unless it
    already has a row of its own (then None: the step is skipped)."""
    from mnist_lib.experiments import summarize  # imports torch: not at the CLI's start

    variant = summarize(outputs.runs).get("mnist", {}).get("best_variant", {}).get("variant")
    return None if variant is None or variant in HEADLINE else variant


def run_plan(steps: Sequence[Step], outputs: Outputs, device: str = "auto", data_dir: str | None = None,
             retrain: bool = False, quick: bool = False, workers: int = 2, log=print) -> dict[str, float]:
    """Execute the plan's steps, ``workers`` notebooks side by side (one torch thread each), each
    step once every step in its ``after`` has finished. Returns each step's seconds."""
    progress = _Progress(steps, outputs)
    timings: dict[str, float] = {}
    pending, running, done = list(steps), {}, set()
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            while pending or running:
                for s in [s for s in pending if set(s.after) <= done][: workers - len(running)]:
                    pending.remove(s)
                    variant = _best_variant(s, outputs) if BEST in s.variants else None
                    if BEST in s.variants and variant is None:
                        progress.bar.total -= s.runs
                        done.add(s.name)
                        log(f"skip {s.name}: the best MNIST variant has its own row")
                        continue
                    progress.best = variant or progress.best
                    notebook, params = step_parameters(s, variant, outputs, device, data_dir, retrain, quick)
                    out = outputs.executed / f"{s.name}.ipynb"
                    tqdm.write(f"start {s.name}: {notebook}.ipynb -> {_rel(out)}", file=sys.stdout)
                    running[pool.submit(_execute, notebook, str(out), params, 1 if workers > 1 else None)] = s
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    s = running.pop(future)
                    timings[s.name] = future.result()  # a failed step raises its one-line error here
                    done.add(s.name)
                    tqdm.write(f"done  {s.name} in {seconds_text(timings[s.name])}", file=sys.stdout)
    finally:
        progress.close()
    return timings


def pipeline(quick: bool = False, outputs: Outputs | None = None, device: str = "auto", data_dir: str | None = None,
             fashion: bool = True, retrain: bool = False, workers: int = 2, report_only: bool = False,
             train_only: bool = False, log=print) -> dict[str, Any]:
    """Run the plan (STUDY, or QUICK), write report/summary.json, run the comparison and report
    notebooks, export the report. Returns the paths and timings. ``report_only``: train nothing;
    summarize the finished runs (their records are enough). ``train_only``: stop after
    summary.json (a machine without LaTeX; render later with ``report_only``)."""
    from mnist_lib.experiments import write_summary  # imports torch: not at the CLI's start

    if report_only and train_only:
        raise MnistLibError("--report-only and --train-only exclude each other: pass one")
    if not train_only:
        check_report_tools()
    outputs = outputs or Outputs.default(quick)
    outputs = Outputs(*(Path(p).resolve() for p in (outputs.runs, outputs.images, outputs.executed, outputs.report)))
    steps = [s for s in (QUICK if quick else STUDY) if fashion or s.dataset == "mnist"]
    log(describe(steps, workers), flush=True)
    start = time.perf_counter()
    summary_path = outputs.report / "summary.json"
    timings = {} if report_only else run_plan(steps, outputs, device, data_dir, retrain, quick, workers, log)
    recorded = [dict(asdict(s), estimate_seconds=round(estimate_seconds(s), 1)) for s in steps]
    summary = write_summary(outputs.runs, summary_path, workers=workers, plan=recorded)
    took = seconds_text(summary["environment"]["wall_seconds"] or 0)
    if train_only:
        log(f"wrote {_rel(summary_path)}: the study's runs took {took}; render the report with --report-only")
        return {"summary": summary_path, "timings": timings, "outputs": outputs}
    params = dict(runs_dir=_rel(outputs.runs), images_dir=_rel(outputs.images), summary_path=_rel(summary_path))
    for name, extra in (("comparison", {}), ("report", {"strict": not quick})):
        out = outputs.executed / f"{name}.ipynb"
        log(f"{name}.ipynb -> {_rel(out)}", flush=True)
        timings[name] = run_notebook(name, out, {**params, **extra})
    html, pdf = export_report(outputs.executed / "report.ipynb", outputs.report)
    total = time.perf_counter() - start
    log(f"wrote {_rel(html)} and {_rel(pdf)}: the study's runs took {took}; this command {seconds_text(total)}")
    return {"html": html, "pdf": pdf, "summary": summary_path, "seconds": total, "timings": timings, "outputs": outputs}


# --------------------------------------------------------------------------- the CLI subcommand

def add_command(subparsers) -> None:
    """`python -m mnist_lib report`: registered by cli.build_parser."""
    p = subparsers.add_parser("report", help="run the study plan's notebooks with papermill, then export "
                                             "report/report.html and .pdf")
    p.add_argument("--quick", action="store_true",
                   help="the smoke run (plan.QUICK): every kind of step on 6,000 images for 3 epochs, everything under "
                        "runs/quick/ (committed outputs untouched)")
    p.add_argument("--plan", action="store_true", help="print the plan with each step's estimated cost, run nothing")
    p.add_argument("--runs-dir", help="where runs go (default: runs/, or runs/quick/ with --quick)")
    p.add_argument("--workers", type=int, default=None,
                   help="notebooks run side by side, one torch thread each (default: 2 on a CPU, 1 on a GPU)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default: auto)")
    p.add_argument("--data-dir", help="MNIST root (default: $MNIST_DATA_DIR, else ./data)")
    p.add_argument("--images-dir", help="figures folder (default: images/, or <runs-dir>/images with --quick)")
    p.add_argument("--executed-dir", help="executed notebooks (default: notebooks/executed/, or <runs-dir>/executed)")
    p.add_argument("--report-dir", help="report.html, report.pdf, summary.json (default: report/, or <runs-dir>/report)")
    p.add_argument("--no-fashion", action="store_true", help="skip the Fashion-MNIST steps")
    p.add_argument("--report-only", action="store_true",
                   help="train nothing: summarize the finished runs, run the comparison and report notebooks, export")
    p.add_argument("--train-only", action="store_true",
                   help="run the plan and write summary.json, nothing after (no LaTeX needed); render later with --report-only")
    p.add_argument("--retrain", action="store_true", help="train again even where a finished run of the same config exists")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    workers = args.workers
    if workers is None:
        import torch

        workers = 1 if torch.cuda.is_available() else 2
    if workers <= 0:
        raise MnistLibError(f"--workers must be a positive integer, got {workers}")
    if args.plan:
        steps = [s for s in (QUICK if args.quick else STUDY) if not args.no_fashion or s.dataset == "mnist"]
        print(describe(steps, workers))
        return 0
    outputs = Outputs.default(args.quick, args.runs_dir)
    if args.images_dir:
        outputs.images = Path(args.images_dir)
    if args.executed_dir:
        outputs.executed = Path(args.executed_dir)
    if args.report_dir:
        outputs.report = Path(args.report_dir)
    pipeline(quick=args.quick, outputs=outputs, device=args.device, data_dir=args.data_dir,
             fashion=not args.no_fashion, retrain=args.retrain, workers=workers, report_only=args.report_only,
             train_only=args.train_only)
    return 0
