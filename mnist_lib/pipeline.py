"""The report pipeline (`python -m mnist_lib report`): run every notebook with papermill (the executed
copies are the record), then export the report notebook to one self-contained HTML file and a PDF."""

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
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from tqdm.auto import tqdm

from mnist_lib.errors import MnistLibError
from mnist_lib.export import check_report_tools, export_report
from mnist_lib.files import read_json
from mnist_lib.plan import BEST, QUICK, QUICK_VAL, STUDY, Step, describe, estimate_seconds
from mnist_lib.registry import HEADLINE, VARIANTS
from mnist_lib.tables import seconds_text

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"


@contextlib.contextmanager
def _quiet_execution():
    """Logging off and this process's stderr dropped during a run (a dying kernel makes tornado, zmq and
    jupyter_client print tracebacks that are not the notebook's error). Yields a kernel manager class whose
    kernel's stderr (ipykernel's shutdown tracebacks, inherited otherwise) goes to a temporary file, its ``stderr``."""
    from jupyter_client.manager import AsyncKernelManager

    class QuietKernelManager(AsyncKernelManager):
        stderr = tempfile.TemporaryFile("w+")

        async def _async_launch_kernel(self, kernel_cmd, **kw):
            return await super()._async_launch_kernel(kernel_cmd, **{**kw, "stderr": self.stderr})

    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with QuietKernelManager.stderr, contextlib.redirect_stderr(io.StringIO()):
            yield QuietKernelManager
    finally:
        logging.disable(previous)


def run_notebook(name: str, output: Path, parameters: Mapping[str, Any]) -> float:
    """Execute notebooks/<name>.ipynb with papermill into ``output``; seconds taken. A failing cell becomes one
    MnistLibError line naming the notebook, the cell and the executed copy; nothing else reaches stderr."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    source = NOTEBOOKS / f"{name}.ipynb"
    if not source.is_file():
        raise MnistLibError(f"{source} does not exist: the report command runs from a checkout of the repository")
    output.parent.mkdir(parents=True, exist_ok=True)
    notebook = f"notebook {source.name} ({output.name})"
    start = time.perf_counter()
    error = None
    with _quiet_execution() as manager:
        try:
            papermill.execute_notebook(str(source), str(output), parameters=dict(parameters), kernel_name="python3",
                                       cwd=str(REPO), progress_bar=False, log_output=False,
                                       kernel_manager_class=manager,
                                       extra_arguments=["--IPKernelApp.log_level=CRITICAL"])  # no start-up chatter
        except PapermillExecutionError as exc:
            code = [line.strip() for line in exc.source.splitlines() if line.strip() and not line.startswith("#")]
            cell = exc.exec_count if exc.exec_count is not None else f"#{exc.cell_index}"
            error = MnistLibError(f"{notebook} failed in cell [{cell}] `{code[0][:60] if code else ''}`: {exc.ename}: "
                                  f"{' '.join(str(exc.evalue).split())} (executed copy: {output})")
        except Exception as exc:  # kernel died, timed out, could not start
            manager.stderr.seek(0)
            said = [line.strip() for line in manager.stderr.read().splitlines() if line.strip()]
            error = MnistLibError(f"{notebook} could not run: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
                                  + (f" (kernel: {said[-1][:200]})" if said else ""))
    _relative_paths(output)
    if error is not None:
        raise error  # outside the quiet block, and without the papermill traceback chained
    return time.perf_counter() - start


def _relative_paths(executed: Path) -> None:
    """papermill records the absolute input and output paths in the executed copy's metadata:
    make them repository-relative, so the committed record names no folder of the machine."""
    if executed.is_file():
        nb = json.loads(executed.read_text())
        record = nb.get("metadata", {}).get("papermill", {})
        record.update({key: _rel(record[key]) for key in ("input_path", "output_path") if record.get(key)})
        executed.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def _rel(path: str | Path) -> str:
    """A path as the notebooks get it: repository-relative when inside it (the executed copies are committed)."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


@dataclass
class Outputs:
    """Where one `report` command writes: the full run's committed folders, or a quick run's own."""
    runs: Path
    images: Path
    executed: Path
    report: Path

    @classmethod
    def of(cls, args: argparse.Namespace) -> "Outputs":
        """The folders given, else the defaults; all absolute."""
        runs = Path(args.runs_dir or (REPO / "runs" / "quick" if args.quick else REPO / "runs"))
        home = runs if args.quick else REPO  # a quick run keeps everything under its runs folder
        defaults = home / "images", (home if args.quick else NOTEBOOKS) / "executed", home / "report"
        given = args.images_dir, args.executed_dir, args.report_dir
        return cls(runs.resolve(), *(Path(p or default).resolve() for p, default in zip(given, defaults)))


def step_parameters(step: Step, variant: str | None, outputs: Outputs, args: argparse.Namespace
                    ) -> tuple[str, dict[str, Any]]:
    """(notebook, papermill parameters) of a plan step under the command's options; ``variant`` resolves a BEST step."""
    runs = outputs.runs / step.group  # group "": the runs folder itself
    figures = outputs.images if step.figures else runs / "figures" / step.name
    params: dict[str, Any] = dict(seeds=list(step.seeds), epochs=step.epochs, dataset=step.dataset, device=args.device,
                                  runs_dir=_rel(runs), images_dir=_rel(figures), retrain=args.retrain)
    # Fashion-MNIST steps: the loader's own default data folder (it stages the data in ./data)
    optional = dict(limit=step.limit, lr=step.lr, val_size=QUICK_VAL if args.quick else None,
                    data_dir=(args.data_dir or None) if step.dataset == "mnist" else None)
    params.update({k: v for k, v in optional.items() if v is not None})
    if step.notebook == "ablation":
        return "ablation", dict(params, variants=list(step.variants), recipes=[step.recipe])
    variant = variant or step.variants[0]
    return VARIANTS[variant].model, dict(params, model=variant, recipe=step.recipe)


def _execute(notebook: str, output: str, parameters: dict[str, Any], threads: int | None) -> float:
    """One plan step in a worker process (one torch thread each when several run side by side)."""
    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)  # the kernel inherits it: torch's thread count
    return run_notebook(notebook, Path(output), parameters)


def _runs_done(steps: Sequence[Step], outputs: Outputs, best: str | None) -> int:
    """How many of the plan's runs have finished (metrics.json is written last); a BEST step's once known."""
    from mnist_lib.experiments import run_dir  # imports torch: not at the CLI's start

    variants = [(s, best if v == BEST else v) for s in steps for v in s.variants if v != BEST or best]
    return sum((run_dir(outputs.runs / s.group, s.dataset, s.recipe, v, seed) / "metrics.json").exists()
               for s, v in variants for seed in s.seeds)


def _best_variant(outputs: Outputs) -> str | None:
    """The variant a BEST step trains: the best MNIST variant by validation accuracy, unless it
    already has a row of its own (then None: the step is skipped)."""
    from mnist_lib.experiments import summarize  # imports torch: not at the CLI's start

    variant = summarize(outputs.runs).get("mnist", {}).get("best_variant", {}).get("variant")
    return None if variant in HEADLINE else variant


def run_plan(steps: Sequence[Step], outputs: Outputs, args: argparse.Namespace, workers: int) -> None:
    """Execute the steps, ``workers`` notebooks side by side (one torch thread each), each once its ``after``
    steps have finished, with a progress bar of finished runs on stdout (stderr keeps the `error:` line)."""
    bar = tqdm(total=sum(s.runs for s in steps), desc="study: runs done", unit="run", dynamic_ncols=True,
               file=sys.stdout)
    pending, running, done, best = list(steps), {}, set(), None
    with bar, ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        while pending or running:
            for s in [s for s in pending if set(s.after) <= done][: workers - len(running)]:
                pending.remove(s)
                variant = _best_variant(outputs) if BEST in s.variants else None
                if BEST in s.variants and variant is None:
                    bar.total -= s.runs
                    done.add(s.name)
                    tqdm.write(f"skip {s.name}: the best MNIST variant has its own row", file=sys.stdout)
                    continue
                best = variant or best
                notebook, params = step_parameters(s, variant, outputs, args)
                out = outputs.executed / f"{s.name}.ipynb"
                tqdm.write(f"start {s.name}: {notebook}.ipynb -> {_rel(out)}", file=sys.stdout)
                running[pool.submit(_execute, notebook, str(out), params, 1 if workers > 1 else None)] = s
            finished, _ = wait(running, timeout=2.0, return_when=FIRST_COMPLETED)  # the bar moves meanwhile
            for future in finished:
                s = running.pop(future)  # a failed step raises its one-line error in future.result()
                tqdm.write(f"done  {s.name} in {seconds_text(future.result())}", file=sys.stdout)
                done.add(s.name)
            bar.n = _runs_done(steps, outputs, best)
            bar.refresh()


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
    p.add_argument("--report-dir",
                   help="report.html, report.pdf, summary.json (default: report/, or <runs-dir>/report)")
    p.add_argument("--no-fashion", action="store_true", help="skip the Fashion-MNIST steps")
    only = p.add_mutually_exclusive_group()
    only.add_argument("--report-only", action="store_true", help="train nothing: summarize the finished runs, "
                                                                 "run the comparison and report notebooks, export")
    only.add_argument("--train-only", action="store_true",
                      help="run the plan and write summary.json, nothing after (no LaTeX needed); "
                           "render later with --report-only")
    p.add_argument("--retrain", action="store_true",
                   help="train again even where a finished run of the same config exists")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    """Run the plan, write summary.json, run the comparison and report notebooks, export the report.
    --report-only trains nothing (the finished runs' records are enough); --train-only stops after summary.json
    (a machine without LaTeX)."""
    from mnist_lib.experiments import write_summary  # imports torch: not at the CLI's start

    workers = args.workers
    if workers is None:
        import torch

        workers = 1 if torch.cuda.is_available() else 2
    if workers <= 0:
        raise MnistLibError(f"--workers must be a positive integer, got {workers}")
    steps = [s for s in (QUICK if args.quick else STUDY) if not args.no_fashion or s.dataset == "mnist"]
    if not (args.plan or args.train_only):
        check_report_tools()  # before hours of work
    print(describe(steps, workers), flush=True)
    if args.plan:
        return 0
    outputs = Outputs.of(args)
    start = time.perf_counter()
    summary_path = outputs.report / "summary.json"
    if not args.report_only:
        run_plan(steps, outputs, args, workers)
    # --report-only keeps the plan as recorded when the same plan trained: its estimates came from that machine
    trained = read_json(summary_path) if args.report_only and summary_path.is_file() else {}
    if [p["name"] for p in trained.get("plan", [])] != [s.name for s in steps]:
        trained = {"plan": [dict(asdict(s), estimate_seconds=round(estimate_seconds(s), 1)) for s in steps]}
    summary = write_summary(outputs.runs, summary_path, workers=trained.get("workers", workers), plan=trained["plan"])
    took = seconds_text(summary["environment"]["wall_seconds"] or 0)
    if args.train_only:
        print(f"wrote {_rel(summary_path)}: the study's runs took {took}; render the report with --report-only")
        return 0
    params = dict(runs_dir=_rel(outputs.runs), images_dir=_rel(outputs.images), summary_path=_rel(summary_path))
    for name, extra in (("comparison", {}), ("report", {"strict": not args.quick})):
        out = outputs.executed / f"{name}.ipynb"
        print(f"{name}.ipynb -> {_rel(out)}", flush=True)
        run_notebook(name, out, {**params, **extra})
    html, pdf = export_report(outputs.executed / "report.ipynb", outputs.report)
    print(f"wrote {_rel(html)} and {_rel(pdf)}: the study's runs took {took}; "
          f"this command {seconds_text(time.perf_counter() - start)}")
    return 0
