"""Variants, multi-seed runs, reuse of finished runs, and the summary the report reads."""

from __future__ import annotations

import json
import statistics

import pytest

from mnist_lib import experiments
from mnist_lib.config import PRESETS
from mnist_lib.errors import MnistLibError
from mnist_lib.experiments import aggregate, run_seeds, summarize, variant_config, write_summary

TINY = dict(epochs=1, val_size=100, progress=False, batch_size=64)
# what every metrics.json records; the hand-made runs below share one (a study is one environment)
FAKE_ENVIRONMENT = {"torch": "2.9.0", "device": "cpu", "device_name": "a test CPU", "python": "3.12.0"}


def test_variant_config_applies_recipe_then_variant_then_overrides():
    config = variant_config("ablation_none", "tuned", epochs=3, lr=None)
    assert config.epochs == 3
    assert config.lr == PRESETS["tuned"]["lr"]  # None means "the recipe's value"
    assert config.weight_decay == 0.0 and config.augment is False  # the row overrides the recipe
    assert variant_config("lenet5", "tuned").augment == PRESETS["tuned"]["augment"]
    assert variant_config("lenet5_batchnorm", "course").batchnorm is True


@pytest.mark.parametrize("bad", [dict(variant="resnet"), dict(recipe="fancy")])
def test_variant_config_rejects_unknown_names(bad):
    with pytest.raises(MnistLibError, match=list(bad.values())[0]):
        variant_config(bad.get("variant", "lenet5"), bad.get("recipe", "tuned"))


def test_every_ablation_row_sets_each_regularizer_explicitly():
    for name in experiments.ABLATION:
        course, tuned = variant_config(name, "course"), variant_config(name, "tuned")
        for field in ("weight_decay", "augment", "model", "batchnorm", "dropout"):
            assert getattr(course, field) == getattr(tuned, field), (name, field)


def test_run_seeds_writes_one_run_per_seed_and_reuses_finished_runs(tiny_root, tmp_path, capsys):
    runs = tmp_path / "runs"
    first = run_seeds("custom_mlp", [0, 1], runs, "course", data_dir=str(tiny_root), **TINY)
    assert [m["config"]["seed"] for m in first] == [0, 1]
    for seed in (0, 1):
        assert (runs / "mnist" / "course" / "custom_mlp" / f"seed{seed}" / "metrics.json").is_file()
    # Different seeds train differently.
    assert first[0]["history"][0]["train_loss"] != first[1]["history"][0]["train_loss"]
    # Same training config again: nothing is retrained, the saved metrics come back.
    again = run_seeds("custom_mlp", [0, 1], runs, "course", data_dir=str(tiny_root), **TINY)
    assert again == first
    assert "reusing" in capsys.readouterr().out
    # A different training config (more epochs) is not reused.
    longer = run_seeds("custom_mlp", [0], runs, "course", data_dir=str(tiny_root), **{**TINY, "epochs": 2})
    assert len(longer[0]["history"]) == 2


def test_aggregate_mean_std_over_seeds():
    fake = [{"final": {"test_acc": acc, "val_acc": acc - 1, "test_loss": 0.1}, "config": {"seed": s, "epochs": 2, "lr": 0.1},
             "selected_epoch": 2, "params": 10, "history": [{"seconds": 1.0, "train_seconds": 0.5}] * 2}
            for s, acc in enumerate([99.0, 99.2, 99.4])]
    agg = aggregate(fake)
    assert agg["test_acc"] == [99.0, 99.2, 99.4]
    assert agg["mean"] == pytest.approx(99.2)
    assert agg["std"] == pytest.approx(statistics.stdev([99.0, 99.2, 99.4]))
    assert agg["seeds"] == [0, 1, 2]
    assert agg["seconds"] == pytest.approx(6.0) and agg["train_seconds"] == pytest.approx(3.0)


def test_summary_picks_best_variant_by_validation_not_test(tmp_path):
    runs = tmp_path / "runs"

    def fake_run(variant, seed, val, test):
        out = runs / "mnist" / "tuned" / variant / f"seed{seed}"
        out.mkdir(parents=True)
        metrics = {"config": {"seed": seed, "epochs": 1, "lr": 0.1}, "environment": FAKE_ENVIRONMENT, "params": 1,
                   "selected_epoch": 1,
                   "final": {"test_acc": test, "val_acc": val, "test_loss": 0.1},
                   "history": [{"seconds": 1.0, "train_seconds": 1.0}]}
        (out / "metrics.json").write_text(json.dumps(metrics))

    for seed in (0, 1):
        fake_run("lenet5", seed, val=99.0, test=99.6)  # better on test...
        fake_run("lenet5_batchnorm", seed, val=99.3, test=99.1)  # ...but this one wins on validation
    fake_run("ablation_none", 0, val=99.9, test=99.9)  # ablation rows are not candidates
    summary = write_summary(runs, tmp_path / "report" / "summary.json")
    assert json.loads((tmp_path / "report" / "summary.json").read_text()) == summary
    mnist = summary["mnist"]
    assert mnist["best_variant"]["variant"] == "lenet5_batchnorm"
    assert mnist["lenet5"]["test_acc"] == [99.6, 99.6] and mnist["lenet5"]["std"] == 0.0
    assert set(mnist) == {"lenet5", "lenet5_batchnorm", "ablation_none", "best_variant"}


def test_summary_of_nothing_is_a_clear_error(tmp_path):
    assert summarize(tmp_path / "none") == {}
    with pytest.raises(MnistLibError, match="no finished runs"):
        write_summary(tmp_path / "none", tmp_path / "summary.json")


# --------------------------------------------------------------------------- a killed study, resumed

RESUME_STUDY = dict(limit=3000, val_size=500, epochs=3, progress=False, threads=1, device="cpu")
RUN_SEEDS_SCRIPT = """
import sys
from mnist_lib.experiments import run_seeds
run_seeds("lenet5", [0], sys.argv[1], "tuned", data_dir=sys.argv[2], **{options})
"""


def _run_seeds_process(runs, data_dir):
    import subprocess
    import sys

    from conftest import REPO, cli_env

    script = RUN_SEEDS_SCRIPT.format(options=repr(RESUME_STUDY))
    return subprocess.Popen([sys.executable, "-c", script, str(runs), str(data_dir)], env=cli_env(), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_run_seeds_continues_a_killed_run_from_its_checkpoint(real_data_dir, tmp_path):
    """A study killed mid-run (SIGKILL after the first epoch's checkpoint) and run again
    continues from checkpoint.pt and ends where an uninterrupted run ends."""
    from conftest import kill_at_first_checkpoint, strip_timing
    from mnist_lib.train import CHECKPOINT, METRICS, load_checkpoint

    runs = tmp_path / "runs"
    out = experiments.run_dir(runs, "mnist", "tuned", "lenet5", 0)
    kill_at_first_checkpoint(_run_seeds_process(runs, real_data_dir), out / CHECKPOINT)
    assert not (out / METRICS).exists()
    killed_at = load_checkpoint(out / CHECKPOINT)["epoch"]
    assert 1 <= killed_at < RESUME_STUDY["epochs"]

    rerun = _run_seeds_process(runs, real_data_dir)
    stdout, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr
    assert f"resuming the killed run in {out} after epoch {killed_at} of 3" in stdout, stdout
    resumed = json.loads((out / METRICS).read_text())

    unbroken = run_seeds("lenet5", [0], tmp_path / "unbroken", "tuned", data_dir=str(real_data_dir),
                         **RESUME_STUDY)[0]
    assert [e["epoch"] for e in resumed["history"]] == [1, 2, 3]
    assert strip_timing(resumed["history"]) == strip_timing(unbroken["history"])
    assert strip_timing([resumed["final"]]) == strip_timing([unbroken["final"]])
    assert resumed["selected_epoch"] == unbroken["selected_epoch"]


def test_run_seeds_starts_over_from_another_configs_checkpoint(tiny_root, tmp_path, capsys):
    """A checkpoint of another training config, or an unreadable one, is not resumed: the run
    starts over (and says so in one line)."""
    from mnist_lib.train import CHECKPOINT

    runs = tmp_path / "runs"
    out = experiments.run_dir(runs, "mnist", "course", "custom_mlp", 0)
    run_seeds("custom_mlp", [0], runs, "course", data_dir=str(tiny_root), **TINY)
    (out / "metrics.json").unlink()  # as if killed after its last checkpoint
    capsys.readouterr()
    longer = run_seeds("custom_mlp", [0], runs, "course", data_dir=str(tiny_root), **{**TINY, "lr": 0.02})
    lines = [line for line in capsys.readouterr().out.splitlines() if "starting over" in line]
    assert len(lines) == 1 and "checkpoint.pt was saved with lr=0.01, not 0.02" in lines[0], lines
    assert longer[0]["config"]["lr"] == 0.02 and len(longer[0]["history"]) == 1
    (out / "metrics.json").unlink()
    (out / CHECKPOINT).write_bytes(b"not a checkpoint")
    again = run_seeds("custom_mlp", [0], runs, "course", data_dir=str(tiny_root), **{**TINY, "lr": 0.02})
    lines = [line for line in capsys.readouterr().out.splitlines() if "starting over" in line]
    assert len(lines) == 1 and "is not a readable checkpoint" in lines[0], lines
    assert again[0]["history"][0]["train_loss"] == longer[0]["history"][0]["train_loss"]


def test_first_difference_takes_a_missing_field_as_its_default():
    """The one rule for "the same run" (reuse and resume): execution fields never count, a field
    the saved config lacks counts as its default."""
    config = variant_config("lenet5", "tuned", epochs=2)
    saved = config.to_dict()
    assert config.first_difference(saved) is None
    del saved["label_smoothing"]  # a field added after the run was saved: its default then
    assert config.first_difference(saved) is None
    assert config.replace(label_smoothing=0.1).first_difference(saved) == "label_smoothing"
    saved["device"] = "cuda"  # how it ran does not matter
    assert config.first_difference(saved) is None


# --------------------------------------------------------------------------- reuse: the same config, environment and record

def _stale(path, how):
    """Make the finished run at ``path`` (metrics.json) unusable for this study in one way."""
    import torch

    from mnist_lib.experiments import current_environment

    saved = json.loads(path.read_text())
    here = current_environment(variant_config("custom_mlp", "course", **TINY))
    if how == "torch":
        saved["environment"]["torch"] = "1.13.0+elsewhere"
        assert saved["environment"]["torch"] != torch.__version__
    elif how == "device":
        saved["environment"]["device"] = "cpu" if here["device_type"] != "cpu" else "cuda:0"
    else:
        del saved["analysis"]
    saved["stale"] = how  # gone once the run is trained again
    path.write_text(json.dumps(saved))


def test_a_run_from_another_environment_is_retrained_and_one_without_model_pt_reused(tiny_root, tmp_path, capsys):
    """A finished run trained with another torch build, on another kind of device, or without a
    record is trained again (metrics.json rewritten from here); a finished run of this environment
    is reused even without its model.pt (the record in metrics.json is enough)."""
    import torch

    from conftest import strip_timing
    from mnist_lib.experiments import current_environment

    runs = tmp_path / "runs"
    options = dict(data_dir=str(tiny_root), **TINY)
    (first,) = run_seeds("custom_mlp", [0], runs, "course", **options)
    out = experiments.run_dir(runs, "mnist", "course", "custom_mlp", 0)
    path = out / "metrics.json"
    here = current_environment(variant_config("custom_mlp", "course", **options))
    assert first["environment"]["torch"] == torch.__version__ and "analysis" in first
    for how in ("torch", "device", "record"):
        _stale(path, how)
        capsys.readouterr()
        (again,) = run_seeds("custom_mlp", [0], runs, "course", **options)
        assert "training again" in capsys.readouterr().out, how
        written = json.loads(path.read_text())
        assert "stale" not in written and written == again, how
        assert written["environment"]["torch"] == torch.__version__
        assert written["environment"]["device"].split(":")[0] == here["device_type"]
        assert "analysis" in written
        assert strip_timing(written["history"]) == strip_timing(first["history"])  # the same run, trained here
    (out / "model.pt").unlink()
    before = path.read_bytes()
    (reused,) = run_seeds("custom_mlp", [0], runs, "course", **options)
    assert "reusing the finished run" in capsys.readouterr().out
    assert reused == json.loads(before) and path.read_bytes() == before
    assert not (out / "model.pt").exists()  # nothing was trained


def test_a_diverged_run_is_recorded_as_failed(tiny_root, tmp_path, capsys):
    runs = tmp_path / "runs"
    (metrics,) = run_seeds("ablation_none", [0], runs, "course", data_dir=str(tiny_root), **{**TINY, "lr": 1000.0})
    out = experiments.run_dir(runs, "mnist", "course", "ablation_none", 0)
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert "training diverged" in metrics["diverged"] and metrics["final"]["test_acc"] is None
    assert not (out / "checkpoint.pt").exists() and not (out / "model.pt").exists()
    row = aggregate([metrics])
    assert row["failed"] == 1 and row["diverged"] == [0] and row["mean"] is None


# --------------------------------------------------------------------------- the study's summary

def _fake_run(root, dataset, recipe, variant, seed, test_acc, epochs=10, group=""):
    from mnist_lib.experiments import run_dir
    from mnist_lib.files import write_json

    out = run_dir(root / group if group else root, dataset, recipe, variant, seed)
    out.mkdir(parents=True)
    final = {"test_acc": test_acc, "val_acc": test_acc - 0.1, "test_loss": 0.05, "train_acc": 99.0,
             "train_eval_acc": test_acc + 0.3}
    write_json(out / "metrics.json", {
        "config": {"seed": seed, "epochs": epochs, "lr": 0.1}, "environment": FAKE_ENVIRONMENT, "params": 61_706,
        "selected_epoch": epochs,
        "history": [{"epoch": e, "val_acc": test_acc - 0.1, "seconds": 1.0, "train_seconds": 0.8}
                    for e in range(1, epochs + 1)], "final": final,
        "sizes": {"train": 55_000, "val": 5_000, "test": 10_000}})


def test_convergence_compares_the_same_seeds_at_both_budgets(tmp_path):
    """Seeds 3 and 4 (no twice-the-epochs run) are far lower: against all five seeds the gain would look like
    0.4 points; on the seeds both budgets share it is 0.02, within the seed std."""
    from mnist_lib.experiments import study_summary

    for seed, acc in enumerate([99.5, 99.5, 99.5, 99.0, 99.0]):
        _fake_run(tmp_path, "mnist", "tuned", "lenet5", seed, acc)
    for seed in range(3):
        _fake_run(tmp_path, "mnist", "tuned", "lenet5", seed, 99.52, epochs=20, group="2x")
    (conv,) = study_summary(tmp_path)["convergence"]
    assert conv["seeds"] == [0, 1, 2] and conv["gain"] == pytest.approx(0.02) and conv["converged"] is True
    assert conv["val_std"] == pytest.approx(statistics.stdev([99.4, 99.4, 99.4, 98.9, 98.9]))  # all five seeds
    assert conv["mean"] == pytest.approx(99.5) and conv["test_gain"] == pytest.approx(0.02)


def test_study_summary_counts_failed_runs_keeps_them_out_of_the_mean_and_has_its_schema(tmp_path):
    from mnist_lib.experiments import write_summary

    good = [99.3, 99.4, 99.35, 99.45, 99.4]
    for seed, acc in enumerate(good):
        _fake_run(tmp_path, "mnist", "tuned", "lenet5", seed, acc)
        _fake_run(tmp_path, "mnist", "tuned", "ablation_none", seed, [11.35, 99.0, 99.1, 98.95, 99.05][seed])
        _fake_run(tmp_path, "mnist", "tuned", "lenet5_regularized", seed, acc - 0.3)
    for seed in range(3):
        _fake_run(tmp_path, "mnist", "tuned", "lenet5", seed, good[seed] + 0.02, epochs=20, group="2x")
    for seed in range(20):
        _fake_run(tmp_path, "mnist", "tuned", "ablation_none", seed, 97.0 + seed / 100, epochs=3, group="stability")
    summary = write_summary(tmp_path, tmp_path / "summary.json", wall_seconds=12.5, machine={"device": "cpu"})

    none = summary["mnist"]["ablation_none"]
    assert none["failed"] == 1 and none["failed_seeds"] == [0] and none["test_acc"][0] == 11.35
    assert none["mean"] == pytest.approx(statistics.fmean([99.0, 99.1, 98.95, 99.05]))
    lenet = summary["mnist"]["lenet5"]
    assert lenet["failed"] == 0 and lenet["epochs"] == 10 and lenet["train_size"] == 55_000
    assert lenet["gap_mean"] == pytest.approx(0.3)
    assert summary["mnist"]["best_variant"]["variant"] == "lenet5"  # by validation accuracy
    pairs = {(c["row"], c["baseline"]): c for c in summary["comparisons"]}
    c = pairs[("lenet5", "ablation_none")]
    assert set(c) >= {"diff", "ci95", "p", "verdict"} and c["verdict"] == "helps" and c["n"] == [5, 4]
    assert pairs[("lenet5_regularized", "lenet5")]["verdict"] == "hurts"
    assert summary["stability"]["mnist"]["ablation_none"]["failed"] == 0
    assert len(summary["stability"]["mnist"]["ablation_none"]["test_acc"]) == 20
    (conv,) = summary["convergence"]
    assert conv["variant"] == "lenet5" and conv["epochs_2x"] == 20 and conv["converged"] is True
    assert summary["wall_seconds"] == 12.5 and summary["machine"]["device"] == "cpu"
    assert json.loads((tmp_path / "summary.json").read_text())["comparisons"] == summary["comparisons"]


def test_study_environment_counts_sittings_and_refuses_two_environments():
    """One study, one environment: its runs grouped into sittings (runs more than an hour apart
    start a new one), their wall time summed; runs from two environments are an error."""
    from mnist_lib.experiments import SITTING_GAP_SECONDS, study_environment

    def record(end, device="cpu", torch_version="2.9.0"):  # each trains 5 s (5 epochs of 1 s)
        return {"environment": {"torch": torch_version, "device": device, "device_name": "EPYC", "python": "3.12"},
                "finished_at": end, "history": [{"seconds": 1.0}] * 5}

    t0 = 1_800_000_000.0
    records = [record(t0 + 100), record(t0 + 150), record(t0 + 160), record(t0 + 160 + SITTING_GAP_SECONDS + 100)]
    env = study_environment(records)
    assert (env["torch"], env["device_type"], env["device_name"]) == ("2.9.0", "cpu", "EPYC")
    assert env["runs"] == 4 and env["sittings"] == 2
    assert env["wall_seconds"] == pytest.approx((160 - 95) + 5)
    for other in (record(t0 + 200, device="cuda:0"), record(t0 + 200, torch_version="2.8.0")):
        with pytest.raises(MnistLibError, match="2 environments"):
            study_environment(records + [other])


def test_write_summary_is_atomic_and_refuses_nan(tmp_path, monkeypatch):
    """summary.json is replaced whole or not at all: a NaN anywhere in it (a run's numbers or the
    extra values) is refused, and a write that fails leaves the previous summary as it was."""
    import math

    import mnist_lib.files as files
    from mnist_lib.experiments import run_dir

    runs = tmp_path / "runs"
    for seed, acc in enumerate([99.3, 99.4]):
        _fake_run(runs, "mnist", "tuned", "lenet5", seed, acc)
    path = tmp_path / "report" / "summary.json"
    write_summary(runs, path, workers=2)
    before = path.read_bytes()

    def unchanged():
        assert path.read_bytes() == before
        assert [p.name for p in path.parent.iterdir()] == ["summary.json"]  # no temporary file left behind

    with pytest.raises((ValueError, MnistLibError)):
        write_summary(runs, path, workers=2, wall_seconds=float("nan"))
    unchanged()
    _fake_run(runs, "mnist", "tuned", "lenet5", 2, 99.35)
    third = run_dir(runs, "mnist", "tuned", "lenet5", 2) / "metrics.json"
    metrics = json.loads(third.read_text())
    metrics["final"]["test_loss"] = math.nan
    third.write_text(json.dumps(metrics))  # json writes NaN unless told not to
    with pytest.raises((ValueError, MnistLibError)):
        write_summary(runs, path, workers=2)
    unchanged()
    metrics["final"]["test_loss"] = 0.05
    third.write_text(json.dumps(metrics))

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "replace", crash)  # the last step of an atomic write
    with pytest.raises(OSError, match="disk full"):
        write_summary(runs, path, workers=3)
    unchanged()


def test_crossing_epoch_interpolates_between_evaluations():
    history = [{"epoch": e, "val_acc": v} for e, v in ((1, 97.0), (2, 98.0), (3, 99.0), (4, 98.2))]
    assert experiments.crossing_epoch(history, 98.5) == pytest.approx(2.5)
    assert experiments.crossing_epoch(history, 96.0) == 1.0  # there after the first epoch already
    assert experiments.crossing_epoch(history, 99.5) is None
    assert experiments.crossing_epoch([{"epoch": 1, "val_acc": None}, {"epoch": 2, "val_acc": 99.0}], 98.0) == pytest.approx(1 + 98 / 99)
