"""The study as data: every notebook run of `make report`, in order, with its estimated cost. `pipeline.py` executes
a plan, `python -m mnist_lib report --plan` prints it; `STUDY` is the full study, `QUICK` the smoke run CI executes."""

from __future__ import annotations

import functools
import statistics
import time
from dataclasses import dataclass, replace

from mnist_lib.config import TrainConfig, variant_config
from mnist_lib.registry import ABLATION, BEST_CANDIDATES, HEADLINE, LR_SWEEP, VARIANTS
from mnist_lib.tables import seconds_text

# The verdicts rest on 5 seeds (headline models, ablation, the Fashion-MNIST pair LeNet-5 / LeNet5_Regularized),
# supporting rows ("2x epochs", the other Fashion-MNIST rows) on 3. Epochs are set by convergence, not by a CPU
# budget: the study takes minutes on one GPU and hours on a 2-core CPU (`--plan` prints the CPU estimate).
SEEDS5 = (0, 1, 2, 3, 4)
SEEDS3 = (0, 1, 2)
BEST = "best"  # a step's variant chosen at run time: the best MNIST variant by validation accuracy


@dataclass(frozen=True)
class Step:
    """One papermill execution: a notebook training (or reusing) variants x seeds. ``group`` is the
    runs sub-folder ("2x", "stability", ...), so runs of one variant with another budget never collide."""

    name: str  # the executed copy: <executed>/<name>.ipynb
    notebook: str  # notebooks/<notebook>.ipynb
    variants: tuple[str, ...]
    epochs: int
    seeds: tuple[int, ...]
    recipe: str = "tuned"
    dataset: str = "mnist"
    limit: int | None = None  # training images (None: all 55,000)
    group: str = ""
    figures: bool = True  # its figures go to images/ (else under its runs folder)
    after: tuple[str, ...] = ()  # steps that must finish first
    lr: float | None = None  # the recipe's learning rate, unless given (the learning-rate sweep)

    @property
    def runs(self) -> int:
        return len(self.variants) * len(self.seeds)


def _headline(dataset: str, epochs: dict[str, int], seeds: tuple[int, ...], group: str = "") -> list[Step]:
    """A model-notebook step per variant of ``epochs``, named [<dataset>_]<variant>[_<group>]."""
    prefix = "" if dataset == "mnist" else f"{dataset}_"
    suffix = f"_{group}" if group else ""
    return [Step(f"{prefix}{variant}{suffix}", VARIANTS[variant].model, (variant,), n, seeds, dataset=dataset,
                 group=group, figures=not group) for variant, n in epochs.items()]


# Epochs per model. The "2x" steps check them: do twice as many raise the mean validation accuracy by more than
# the seed std (report Section 3.3)? A first study at 10 (LeNet family) and 30 (CustomMLP) epochs gained clearly
# more than that (LeNet-5 +0.05 test points at twice the epochs, seed std 0.03; CustomMLP +0.10, std 0.07).
MNIST_EPOCHS = {"lenet5": 20, "custom_mlp": 60, "lenet5_regularized": 20, "lenet5_batchnorm": 20}
FASHION_EPOCHS = {"lenet5": 20, "custom_mlp": 40, "lenet5_regularized": 20}
COURSE_EPOCHS = 10  # the course recipe's own: constant lr 0.01, batch 64
# "BatchNorm enables higher learning rates": the course recipe at constant learning rates, with and
# without BatchNorm, a short budget (where a run degrades or diverges shows in a few epochs)
LR_SWEEP_LRS, LR_SWEEP_EPOCHS = (0.01, 0.03, 0.1, 0.3), 5
# the short budget at which the first recipe failed one seed in three
STABILITY = dict(variants=("ablation_none", "ablation_dropout"), epochs=3, limit=10_000, seeds=tuple(range(20)))

STUDY: list[Step] = [
    *_headline("mnist", MNIST_EPOCHS, SEEDS5),
    Step("ablation_course", "ablation", ABLATION, COURSE_EPOCHS, SEEDS5, recipe="course"),
    Step("custom_mlp_course", "ablation", ("custom_mlp",), COURSE_EPOCHS, SEEDS5, recipe="course", figures=False),
    Step("ablation_tuned", "ablation", ("ablation_none",), MNIST_EPOCHS["lenet5"], SEEDS5, figures=False),
    # does rotation earn its cost? compared in the report with the headline LeNet-5 (same seeds, epochs)
    Step("lenet5_rotation", "ablation", ("lenet5_rotation",), MNIST_EPOCHS["lenet5"], SEEDS5, figures=False),
    *[Step(f"lr_{lr}", "ablation", LR_SWEEP, LR_SWEEP_EPOCHS, SEEDS3, recipe="course", group=f"lr/{lr}",
           figures=False, lr=lr) for lr in LR_SWEEP_LRS],
    Step("stability", "ablation", STABILITY["variants"], STABILITY["epochs"], STABILITY["seeds"],
         limit=STABILITY["limit"], group="stability", figures=False),
    # the rows verdicts rest on first, the supporting "2x" rows last
    *_headline("fashion-mnist", {v: FASHION_EPOCHS[v] for v in ("lenet5_regularized", "lenet5")}, SEEDS5),
    *_headline("fashion-mnist", {"custom_mlp": FASHION_EPOCHS["custom_mlp"]}, SEEDS3),
    Step("fashion-mnist_best", "lenet5", (BEST,), FASHION_EPOCHS["lenet5"], SEEDS3, dataset="fashion-mnist",
         after=BEST_CANDIDATES),  # the best is chosen among them
    *_headline("mnist", {v: 2 * MNIST_EPOCHS[v] for v in ("lenet5_regularized", "lenet5", "custom_mlp")}, SEEDS3, "2x"),
    *_headline("fashion-mnist", {v: 2 * FASHION_EPOCHS[v] for v in HEADLINE}, SEEDS3, "2x"),
]

# The smoke run CI runs (about a minute and a half on 2 CPU cores): the study's kinds of step, at most two variants
# each, on 6,000 images for 3 epochs (enough to learn, so no run counts as failed), one seed (two for the ablation
# and the sweep, so their statistics have something to compute; one for the shifts-only row, like its headline row).
QUICK_VAL = 1000
QUICK_STEPS = ("lenet5", "custom_mlp", "lenet5_regularized", "ablation_course", "custom_mlp_course", "stability",
               "lenet5_rotation", "lr_0.1", "fashion-mnist_lenet5")
QUICK: list[Step] = [replace(s, variants=s.variants[:2], seeds=s.seeds[: 2 if len(s.variants) > 1 else 1], epochs=3,
                             limit=6000, after=()) for s in STUDY if s.name in QUICK_STEPS]
TRAIN_IMAGES = 55_000
EVAL_IMAGES = 15_000  # validation + test, evaluated after every epoch: a forward pass, about 1/3 of a step


def step_config(step: Step, variant: str) -> TrainConfig:
    """The config a step's variant trains with (the best variant's stand-in: LeNet-5)."""
    return variant_config(variant if variant in VARIANTS else "lenet5", step.recipe, epochs=step.epochs, lr=step.lr)


@functools.cache
def probe_seconds(model: str, batchnorm: bool | None, augment: str | None, batch_size: int, steps: int = 8) -> float:
    """Seconds of one training step (the engine's model, optimizer and augmentation on a random batch) on one torch
    thread, the median of ``steps``: hosts of one kind differ twofold, so the estimate is measured where printed."""
    import torch

    from mnist_lib.data import augment_batch, shift_batch
    from mnist_lib.models import build_model
    from mnist_lib.train import apply_memory_format, make_optimizer, train_step

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    config = TrainConfig(model=model, batchnorm=batchnorm, batch_size=batch_size)
    net = apply_memory_format(build_model(model, batchnorm), config, torch.device("cpu")).train()
    optimizer = make_optimizer(net, config)
    x, y = torch.randn(batch_size, 1, 28, 28), torch.randint(0, 10, (batch_size,))
    times = []
    for _ in range(steps + 2):  # two warm-up steps
        start = time.perf_counter()
        batch = shift_batch(x, 2, -0.42) if augment == "shift" else augment_batch(x, 10.0, 2.0, -0.42) if augment else x
        train_step(net, optimizer, batch, y, config)
        times.append(time.perf_counter() - start)
    torch.set_num_threads(threads)
    return statistics.median(times[2:])


def estimate_seconds(step: Step) -> float:
    """Estimated seconds of a step for one worker on this machine (training, evaluation, notebook)."""
    total = 30.0  # a notebook's cost besides training: kernel start, imports, figures
    images = min(step.limit or TRAIN_IMAGES, TRAIN_IMAGES)
    for variant in step.variants:
        c = step_config(step, variant)
        per_step = probe_seconds(c.model, c.batchnorm, c.augment_mode if c.augment else None, c.batch_size)
        total += per_step * (images / c.batch_size + EVAL_IMAGES / c.batch_size / 3) * step.epochs * len(step.seeds)
    return total


def describe(plan: list[Step], workers: int = 2) -> str:
    """The plan as a table, with each step's estimated cost (on one worker) and the total."""
    lines = [f"{'step':<36} {'dataset':<14} {'recipe':<7} {'epochs':>6} {'seeds':>5} {'train':>7} {'runs':>4} "
             f"{'est.':>9}"]
    for s in plan:
        lines.append(f"{s.name:<36} {s.dataset:<14} {s.recipe:<7} {s.epochs:>6} {len(s.seeds):>5} "
                     f"{(s.limit or TRAIN_IMAGES):>7,} {s.runs:>4} {seconds_text(estimate_seconds(s)):>9}")
    total = sum(estimate_seconds(s) for s in plan)
    lines.append(f"{len(plan)} steps, {sum(s.runs for s in plan)} runs, {seconds_text(total)} of work for one "
                 f"worker; {workers} worker(s) side by side on the 2-core CPU: about {seconds_text(total / workers)}")
    return "\n".join(lines)
