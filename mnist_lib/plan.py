"""The study as data: every notebook run of `make report`, in order, with its budget.

`pipeline.py` only executes a plan; `python -m mnist_lib report --plan` prints it with each
step's estimated cost. `STUDY` is the full study, `QUICK` the smoke run CI executes.

Budget: the verdicts rest on 5 seeds (headline models, ablation, the Fashion-MNIST pair LeNet-5 /
LeNet5_Regularized); supporting rows get 3 (the "2x epochs" convergence check, the other
Fashion-MNIST rows). The stability sweep keeps the short budget (3 epochs, 10,000 images) at which
the first recipe failed one seed in three. Epochs are set by convergence, not by a CPU budget: the
study takes minutes on one GPU and hours on a 2-core CPU (`--plan` prints the CPU estimate).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from mnist_lib.config import PRESETS

SEEDS5 = (0, 1, 2, 3, 4)
SEEDS3 = (0, 1, 2)
BEST = "best"  # a step's variant chosen at run time: the best MNIST variant by validation accuracy


@dataclass(frozen=True)
class Step:
    """One papermill execution: a notebook training (or reusing) variants x seeds.

    ``group`` is the runs sub-folder ("" for the main study, "2x" for the convergence check,
    "stability" for the sweep): runs of the same variant with another budget never collide."""

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
    after: tuple[str, ...] = field(default=())  # steps that must finish first
    lr: float | None = None  # the recipe's learning rate, unless given (the learning-rate sweep)

    @property
    def runs(self) -> int:
        return len(self.variants) * len(self.seeds)


# Seconds per epoch on 55,000 images with one torch thread, two such workers side by side on the
# 2-core CPU (measured in this study's runs); the estimate scales them by training size and adds
# evaluation and a notebook's start-up. Keys: architecture family, augmentation, batch size.
EPOCH_SECONDS = {
    ("lenet5", "none", 128): 10.0, ("lenet5", "affine", 128): 13.0, ("lenet5", "shift", 128): 10.2,
    ("batchnorm", "none", 128): 14.0, ("batchnorm", "affine", 128): 23.0, ("batchnorm", "shift", 128): 14.5,
    ("custom_mlp", "none", 128): 2.0, ("custom_mlp", "affine", 128): 4.0, ("custom_mlp", "shift", 128): 2.1,
}
BATCH64_FACTOR = 1.2  # half the batch: more, smaller steps, each less efficient on a CPU
NOTEBOOK_SECONDS = 30.0  # kernel start, imports, figures
TRAIN_IMAGES = 55_000


def _headline(dataset: str, epochs: dict[str, int], seeds: dict[str, tuple[int, ...]], group: str = "",
              suffix: str = "") -> list[Step]:
    prefix = "" if dataset == "mnist" else f"{dataset}_"
    return [Step(f"{prefix}{variant}{suffix}", "lenet5" if variant == "lenet5_batchnorm" else variant, (variant,),
                 epochs[variant], seeds[variant], dataset=dataset, group=group, figures=not group)
            for variant in epochs]


# Epochs per model: chosen so that twice as many do not raise mean test accuracy by more than
# the seed standard deviation (the "2x" steps check it; report section 6 shows the evidence).
# A first study at 10 (LeNet family) and 30 (CustomMLP) epochs failed that test for LeNet-5 (+0.05
# at twice the epochs, seed std 0.03) and CustomMLP (+0.10, std 0.07): hence 20 and 60.
MNIST_EPOCHS = {"lenet5": 20, "custom_mlp": 60, "lenet5_regularized": 20, "lenet5_batchnorm": 20}
FASHION_EPOCHS = {"lenet5": 20, "custom_mlp": 40, "lenet5_regularized": 20}
COURSE_EPOCHS = 10  # the course recipe's own: constant lr 0.01, batch 64
# "BatchNorm enables higher learning rates": the course recipe at constant learning rates, with and
# without BatchNorm, a short budget (where a run degrades or diverges shows in a few epochs)
LR_SWEEP = dict(variants=("ablation_none", "ablation_batchnorm"), lrs=(0.01, 0.03, 0.1, 0.3), epochs=5, seeds=SEEDS3)
COURSE_ABLATION = ("ablation_none", "ablation_batchnorm", "ablation_dropout", "ablation_batchnorm_dropout",
                   "ablation_augmentation", "ablation_batchnorm_dropout_augmentation")
STABILITY = dict(variants=("ablation_none", "ablation_dropout"), epochs=3, limit=10_000, seeds=tuple(range(20)))
DOUBLE = ("lenet5", "custom_mlp", "lenet5_regularized")

STUDY: list[Step] = [
    *_headline("mnist", MNIST_EPOCHS, {v: SEEDS5 for v in MNIST_EPOCHS}),
    Step("ablation_course", "ablation", COURSE_ABLATION, COURSE_EPOCHS, SEEDS5, recipe="course"),
    Step("custom_mlp_course", "ablation", ("custom_mlp",), COURSE_EPOCHS, SEEDS5, recipe="course", figures=False),
    Step("ablation_tuned", "ablation", ("ablation_none",), MNIST_EPOCHS["lenet5"], SEEDS5, figures=False),
    # does rotation earn its cost? compared in the report with the headline LeNet-5 (same seeds, epochs)
    Step("lenet5_rotation", "ablation", ("lenet5_rotation",), MNIST_EPOCHS["lenet5"], SEEDS5, figures=False),
    *[Step(f"lr_{lr}", "ablation", LR_SWEEP["variants"], LR_SWEEP["epochs"], LR_SWEEP["seeds"], recipe="course",
           group=f"lr/{lr}", figures=False, lr=lr) for lr in LR_SWEEP["lrs"]],
    Step("stability", "ablation", STABILITY["variants"], STABILITY["epochs"], STABILITY["seeds"],
         limit=STABILITY["limit"], group="stability", figures=False),
    # the rows verdicts rest on first, the supporting "2x" rows last
    *_headline("fashion-mnist", {"lenet5_regularized": FASHION_EPOCHS["lenet5_regularized"],
                                 "lenet5": FASHION_EPOCHS["lenet5"], "custom_mlp": FASHION_EPOCHS["custom_mlp"]},
               {"lenet5": SEEDS5, "lenet5_regularized": SEEDS5, "custom_mlp": SEEDS3}),
    Step("fashion-mnist_best", "lenet5", (BEST,), FASHION_EPOCHS["lenet5"], SEEDS3, dataset="fashion-mnist",
         after=tuple(f"{v}" for v in MNIST_EPOCHS)),
    *_headline("mnist", {v: 2 * MNIST_EPOCHS[v] for v in ("lenet5_regularized", "lenet5", "custom_mlp")},
               {v: SEEDS3 for v in DOUBLE}, "2x", "_2x"),
    *_headline("fashion-mnist", {v: 2 * FASHION_EPOCHS[v] for v in DOUBLE}, {v: SEEDS3 for v in DOUBLE}, "2x", "_2x"),
]

# The smoke run: the study's kinds of step on 6,000 images for 3 epochs (enough to learn, so no run
# counts as failed), one seed (two for the ablation and the sweep, so their statistics have
# something to compute; one for the shifts-only row, like the headline row it is compared with):
# about a minute and a half on 2 CPU cores, CI runs it.
QUICK_LIMIT = 6000
QUICK_VAL = 1000
QUICK_STEPS = ("lenet5", "custom_mlp", "lenet5_regularized", "ablation_course", "custom_mlp_course", "stability",
               "lenet5_rotation", "lr_0.1", "fashion-mnist_lenet5")


def quick(plan: list[Step]) -> list[Step]:
    steps = []
    for s in plan:
        if s.name in QUICK_STEPS:
            grid = s.notebook == "ablation" and len(s.variants) > 1  # a one-variant step matches its baseline's seed
            steps.append(replace(s, variants=s.variants[:2] if grid else s.variants, epochs=3,
                                 seeds=(0, 1) if grid else (0,), limit=QUICK_LIMIT, after=()))
    return steps


QUICK: list[Step] = quick(STUDY)


def planned_runs(plan: list[dict[str, Any]]) -> int:
    """Training runs of a plan as summary.json records it (steps as dicts)."""
    return sum(len(s["variants"]) * len(s["seeds"]) for s in plan)


def notebook_variant(variant: str) -> str:
    """The architecture a variant is built from (its model notebook)."""
    from mnist_lib.experiments import VARIANTS

    return VARIANTS[variant]["model"]


def step_config(step: Step, variant: str) -> dict[str, Any]:
    """The recipe values a step's variant trains with (for the estimate)."""
    from mnist_lib.experiments import VARIANTS

    return {**PRESETS[step.recipe], **VARIANTS.get(variant, VARIANTS["lenet5"]), "epochs": step.epochs}


def estimate_seconds(step: Step) -> float:
    """Estimated wall seconds of a step on the 2-core CPU (training + evaluation + notebook)."""
    total = NOTEBOOK_SECONDS
    for variant in step.variants:
        c = step_config(step, variant)
        family = "custom_mlp" if c["model"] == "custom_mlp" else (
            "batchnorm" if c["model"] == "lenet5_regularized" or c.get("batchnorm") else "lenet5")
        per_epoch = EPOCH_SECONDS[(family, c.get("augment_mode", "affine") if c["augment"] else "none", 128)]
        if c["batch_size"] < 128:
            per_epoch *= BATCH64_FACTOR
        images = min(step.limit or TRAIN_IMAGES, TRAIN_IMAGES)
        # evaluation: 15,000 validation + test images per epoch, forward only (~1/3 of a step)
        per_epoch = per_epoch * images / TRAIN_IMAGES + per_epoch * 15_000 / TRAIN_IMAGES / 3
        total += per_epoch * step.epochs * len(step.seeds)
    return total


def describe(plan: list[Step], workers: int = 2) -> str:
    """The plan as a table, with each step's estimated cost (on one worker) and the total."""
    from mnist_lib.tables import seconds_text

    lines = [f"{'step':<36} {'dataset':<14} {'recipe':<7} {'epochs':>6} {'seeds':>5} {'train':>7} {'runs':>4} {'est.':>9}"]
    for s in plan:
        lines.append(f"{s.name:<36} {s.dataset:<14} {s.recipe:<7} {s.epochs:>6} {len(s.seeds):>5} "
                     f"{(s.limit or TRAIN_IMAGES):>7,} {s.runs:>4} {seconds_text(estimate_seconds(s)):>9}")
    total = sum(estimate_seconds(s) for s in plan)
    lines.append(f"{len(plan)} steps, {sum(s.runs for s in plan)} runs, {seconds_text(total)} of work for one "
                 f"worker; {workers} worker(s) side by side on the 2-core CPU: about {seconds_text(total / workers)}")
    return "\n".join(lines)
