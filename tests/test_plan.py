"""The study plan: one declarative list the pipeline executes, with its cost estimate."""

from __future__ import annotations

import math

from mnist_lib import plan
from mnist_lib.config import PRESETS
from mnist_lib.experiments import COMPARISONS
from mnist_lib.registry import HEADLINE, VARIANTS


def test_every_step_names_known_notebooks_variants_and_recipes():
    names = [s.name for s in plan.STUDY]
    assert len(names) == len(set(names)), "executed copies would overwrite each other"
    for s in plan.STUDY:
        assert s.recipe in PRESETS
        assert all(v in VARIANTS or v == plan.BEST for v in s.variants)
        assert set(s.after) <= set(names)


def test_verdicts_rest_on_five_seeds_and_supporting_rows_on_three():
    by_name = {s.name: s for s in plan.STUDY}
    for name in ("lenet5", "custom_mlp", "lenet5_regularized", "ablation_course", "ablation_tuned",
                 "fashion-mnist_lenet5", "fashion-mnist_lenet5_regularized"):
        assert len(by_name[name].seeds) >= 5, name
    assert all(len(s.seeds) >= 3 for s in plan.STUDY)
    assert len(by_name["stability"].seeds) >= 20 and set(by_name["stability"].variants) == {
        "ablation_none", "ablation_dropout"}


def test_every_compared_row_is_trained_with_the_same_seeds_and_epochs_as_its_baseline():
    """A comparison differs in what it compares only: the same seeds always, and the same epochs,
    except two different architectures, which each train for their own converged budget (the
    epochs of their model notebook's step)."""
    budget = {}
    for s in plan.STUDY:
        if not s.group:
            for v in s.variants:
                budget[(s.dataset, s.recipe, v)] = (s.seeds, s.epochs)
    for dataset, recipe, row, baseline in COMPARISONS:
        (row_seeds, row_epochs), (base_seeds, base_epochs) = budget[(dataset, recipe, row)], budget[(dataset, recipe, baseline)]
        assert row_seeds == base_seeds, (row, baseline)
        if VARIANTS[row].model == VARIANTS[baseline].model:
            assert row_epochs == base_epochs, (row, baseline)
        elif recipe == "tuned":
            epochs = plan.MNIST_EPOCHS if dataset == "mnist" else plan.FASHION_EPOCHS
            assert (row_epochs, base_epochs) == (epochs[VARIANTS[row].model], epochs[VARIANTS[baseline].model]), (row, baseline)
        else:  # the course recipe: its own number of epochs for every model
            assert row_epochs == base_epochs == plan.COURSE_EPOCHS, (row, baseline)


def test_each_model_has_a_twice_as_long_check():
    for dataset in ("mnist", "fashion-mnist"):
        short = {s.variants[0]: s.epochs for s in plan.STUDY if s.dataset == dataset and not s.group
                 and s.notebook != "ablation" and s.variants[0] != plan.BEST}
        long = {s.variants[0]: s.epochs for s in plan.STUDY if s.dataset == dataset and s.group == "2x"}
        for model in HEADLINE:
            assert long[model] == 2 * short[model]


def test_the_new_steps_course_mlp_rotation_and_the_learning_rate_sweep():
    by_name = {s.name: s for s in plan.STUDY}
    course = by_name["ablation_course"]
    assert course.recipe == "course" and course.epochs == by_name["custom_mlp_course"].epochs == plan.COURSE_EPOCHS == 10
    assert by_name["custom_mlp_course"].variants == ("custom_mlp",) and by_name["custom_mlp_course"].recipe == "course"
    rotation = by_name["lenet5_rotation"]
    assert rotation.variants == ("lenet5_rotation",) and VARIANTS["lenet5_rotation"].config["augment_mode"] == "affine"
    assert (rotation.epochs, rotation.seeds) == (by_name["lenet5"].epochs, by_name["lenet5"].seeds)
    sweep = [s for s in plan.STUDY if s.name.startswith("lr_")]
    assert [s.name for s in sweep] == ["lr_0.01", "lr_0.03", "lr_0.1", "lr_0.3"]
    for s in sweep:
        assert s.group == f"lr/{s.lr}" and s.recipe == "course" and s.name == f"lr_{s.lr}"
        assert plan.step_config(s, s.variants[0]).lr == s.lr  # the step's learning rate, not the recipe's


def test_the_estimate_grows_with_the_budget_and_the_description_lists_every_step(monkeypatch):
    # the step time is probed on this machine (plan.probe_seconds); a fixed one keeps this test fast
    monkeypatch.setattr(plan, "probe_seconds", lambda model, batchnorm, augment, batch_size: 0.01)
    step = plan.STUDY[0]
    assert plan.estimate_seconds(step.__class__(**{**step.__dict__, "epochs": 2 * step.epochs})) > plan.estimate_seconds(step)
    text = plan.describe(plan.STUDY, workers=2)
    assert all(s.name in text for s in plan.STUDY)
    assert f"{sum(s.runs for s in plan.STUDY)} runs" in text


def test_the_step_time_probe_measures_a_training_step():
    seconds = plan.probe_seconds("custom_mlp", None, "shift", 64, steps=2)
    assert seconds > 0 and math.isfinite(seconds)


def test_the_quick_plan_is_small():
    """The smoke run: nine of the study's kinds of step, each a few epochs on a few thousand images."""
    assert len(plan.QUICK) == 9 and {s.name for s in plan.QUICK} == set(plan.QUICK_STEPS)
    assert sum(s.runs for s in plan.QUICK) <= 20 and all(s.epochs <= 3 and s.limit for s in plan.QUICK)
