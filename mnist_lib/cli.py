"""`python -m mnist_lib ...`: params, train, evaluate, export-tar, bench, report, readme.

Every TrainConfig field is a `train` option, so the CLI and the notebooks' parameters cannot drift apart.
Bad input prints one `error: ...` line and exits with status 2."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Sequence, get_args, get_type_hints

from mnist_lib.config import DATASETS, PRESETS, TrainConfig
from mnist_lib.errors import MnistLibError
from mnist_lib.files import ensure_writable_dir, read_json
from mnist_lib.registry import MODELS

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but its errors are one `error: ...` line like every other bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"error: {message} (see `{self.prog} --help`)\n")


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """One option per TrainConfig field (a bool: --x / --no-x); defaults are left unset so a preset can fill them."""
    group = parser.add_argument_group("training config (TrainConfig fields; defaults: the course recipe)")
    group.add_argument("--preset", choices=sorted(PRESETS),
                       help="start from a named recipe, then apply the options given")
    hints = get_type_hints(TrainConfig)
    for field in dataclasses.fields(TrainConfig):
        flags = [f"--{field.name.replace('_', '-')}"] + (["--format"] if field.name == "data_format" else [])
        # a field whose default is None is typed "X | None": its options are X's
        kind = type(field.default) if field.default is not None else get_args(hints[field.name])[0]
        how = dict(action=argparse.BooleanOptionalAction) if kind is bool else dict(type=kind)
        group.add_argument(*flags, dest=field.name, default=None, help=f"default: {field.default}", **how)


def cmd_params(args: argparse.Namespace) -> int:
    from mnist_lib.models import build_model, parameter_frame

    for name in [args.model] if args.model else list(MODELS):
        frame = parameter_frame(build_model(name))
        print(f"{MODELS[name]} ({name})")
        print(frame.to_string(index=False, formatters={c: "{:,}".format for c in ("weights", "biases", "total")}))
        print(f"Total parameters for {MODELS[name]}: {int(frame.total.iloc[-1]):,}\n")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    # the TrainConfig of the options given, on top of --preset: bad options fail before the seconds-long torch import
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
             if getattr(args, f.name, None) is not None}
    config = TrainConfig.from_preset(args.preset, **given) if args.preset else TrainConfig.from_dict(given)
    from mnist_lib.train import train

    result = train(config, args.out, resume=args.resume, overwrite=args.overwrite)
    final = result.metrics["final"]
    print(f"{config.model}: epoch {final['epoch']} kept (best validation accuracy {final['val_acc']}), "
          f"test accuracy {final['test_acc']:.2f}%, test loss {final['test_loss']:.4f}; "
          f"wrote {Path(args.out) / 'metrics.json'}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Re-evaluate a run's saved model.pt on the test set; compare with what metrics.json recorded."""
    from mnist_lib.data import load_config_data
    from mnist_lib.train import METRICS, MODEL, evaluate, load_model, select_device

    run = Path(args.run)
    metrics = read_json(run / METRICS)
    given = {k: v for k, v in (("data_dir", args.data_dir), ("device", args.device)) if v}
    config = TrainConfig.from_dict({**metrics["config"], "progress": False, **given})
    device = select_device(config.device)
    model = load_model(run / MODEL, config).to(device)
    loss, acc = evaluate(model, load_config_data(config).test.to(device), config.eval_batch_size)
    recorded = metrics["final"]["test_acc"]
    print(f"{run / MODEL}: test accuracy {acc:.2f}% ({acc:.4f}), loss {loss:.4f}; "
          f"metrics.json recorded {recorded:.4f}% -> {'match' if abs(acc - recorded) < 1e-9 else 'DIFFERENT'}")
    return 0 if abs(acc - recorded) < 0.05 else 1


def cmd_export_tar(args: argparse.Namespace) -> int:
    """Write the course format (train.tar / test.tar of {ID}_{Label}.png) from IDX data."""
    from mnist_lib.course import write_course_tar
    from mnist_lib.data import load_split

    out = ensure_writable_dir(args.out)
    for train, name in ((True, "train"), (False, "test")):
        images, labels = load_split(args.dataset, args.data_dir, "idx", train, download=False)
        write_course_tar(images, labels, out / f"{name}.tar", prefix=f"{name}/")
        print(f"wrote {out / f'{name}.tar'}: {len(labels):,} PNGs")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Time the engine against the course's per-sample pipeline: print a table, write JSON."""
    from mnist_lib.bench import format_summary, format_table, run_bench, study_wall, write_report

    ensure_writable_dir(Path(args.out).parent)  # fail before minutes of work, not after
    study = study_wall(args.study_summary) if args.study_summary else None  # readable, before minutes of work
    report = run_bench(args.models, args.repeats, args.epochs, args.batch_size, args.limit, args.data_dir,
                       args.device, args.threads, args.time_to_99, args.memory, args.progress)
    print(format_table(report))
    print(format_summary(report))
    if study is not None:
        report["study"] = study
    print(f"wrote {write_report(report, args.out, args.section)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m mnist_lib", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("params", help="print each model's per-layer parameter table")
    p.add_argument("--model", choices=list(MODELS))
    p.set_defaults(func=cmd_params)

    p = sub.add_parser("train", help="train one model, write metrics.json and model.pt")
    p.add_argument("--out", required=True, help="run folder to write (metrics.json, model.pt, checkpoint.pt)")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint.pt")
    p.add_argument("--overwrite", action="store_true", help="replace a finished run in --out")
    p.add_argument("--quiet", dest="progress", action="store_const", const=False, help="no progress bar")
    add_config_options(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="re-evaluate a run's model.pt on the test set")
    p.add_argument("run", help="run folder with metrics.json and model.pt")
    p.add_argument("--data-dir")
    p.add_argument("--device")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("export-tar", help="write the course's train.tar/test.tar from IDX files")
    p.add_argument("--out", required=True)
    p.add_argument("--data-dir")
    p.add_argument("--dataset", default="mnist", choices=list(DATASETS))
    p.set_defaults(func=cmd_export_tar)

    p = sub.add_parser("bench", help="time training: the engine against the course's per-sample PNG pipeline")
    p.add_argument("--out", default="runs/bench/bench.json", help="JSON results (default: %(default)s)")
    p.add_argument("--limit", type=int, help="train on the first N training images (default: all 55,000); "
                   "applies to the time-to-99%% and memory runs too, for quick checks")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per (pipeline, model); the median is reported")
    p.add_argument("--epochs", type=int, default=1, help="epochs per timed run (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=64, help="both pipelines' batch size (default: %(default)s)")
    p.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    p.add_argument("--data-dir")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads for both pipelines (default: %(default)s, steady on a shared machine)")
    p.add_argument("--skip-time-to-99", dest="time_to_99", action="store_false",
                   help="skip LeNet-5's time to 99%% test accuracy")
    p.add_argument("--skip-memory", dest="memory", action="store_false", help="skip the peak-memory run")
    p.add_argument("--quiet", dest="progress", action="store_false", help="no progress bar")
    p.add_argument("--section", choices=["gpu"],
                   help="write the results under this key of --out, keeping the rest of the file (a GPU run)")
    p.add_argument("--study-summary", help="a report/summary.json whose study wall time and machine to record")
    p.set_defaults(func=cmd_bench)

    from mnist_lib import pipeline, readme  # `report` (papermill notebooks -> report/), `readme`

    pipeline.add_command(sub)
    readme.add_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except MnistLibError as exc:
        print("error: " + " ".join(line.strip() for line in str(exc).splitlines() if line.strip()), file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted: the last finished epoch is in checkpoint.pt; continue with --resume", file=sys.stderr)
        return 130
