"""`python -m mnist_lib bench` on tiny synthetic data, so the benchmark cannot rot: the JSON's
structure, sane values, the speed-up and floor arithmetic, the rows' settings, and the per-sample
pipeline's correctness. Running the benchmark trains: those tests are marked slow."""

from __future__ import annotations

import json
import statistics

import pytest
import torch

from conftest import assert_one_line_error, run_cli, synthetic_mnist, write_mnist_root
from mnist_lib.bench import PIPELINES, bare_compute_run, targets_met
from mnist_lib.course import CoursePngDataset, course_transform, write_course_pngs
from mnist_lib.config import PRESETS, TrainConfig
from mnist_lib.data import NORMALIZATION, Split
from mnist_lib.errors import MnistLibError

# The bench keeps the engine's 5,000-image validation split, so the tiny root needs more than that.
N_TRAIN, N_TEST, LIMIT = 5_400, 100, 384  # LIMIT: 3 batches of 128 (one-cycle needs >= 2 steps)


@pytest.fixture(scope="module")
def bench_root(tmp_path_factory):
    return write_mnist_root(tmp_path_factory.mktemp("bench_mnist"), synthetic_mnist(N_TRAIN, 11),
                            synthetic_mnist(N_TEST, 12))


@pytest.fixture(scope="module")
def bench_report(bench_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "sub" / "bench.json"
    result = run_cli("bench", "--data-dir", bench_root, "--limit", LIMIT, "--repeats", 2, "--threads", 1,
                     "--models", "lenet5", "custom_mlp", "--out", out, "--quiet")
    assert result.code == 0, result.err
    return result, json.loads(out.read_text())


@pytest.mark.slow
def test_bench_prints_a_table_and_writes_json(bench_report):
    result, report = bench_report
    assert set(report) >= {"settings", "environment", "results", "speedup", "floor_ratio", "time_to_99", "memory",
                           "targets"}
    header = result.out.splitlines()[0].split()
    assert header == ["pipeline", "model", "batch_size", "seconds_per_epoch", "images_per_s", "speedup", "vs_floor",
                      "test_acc"]
    assert len(result.out.splitlines()[1].split()) == len(header)  # one word per cell: the table parses
    assert "wrote" in result.out.splitlines()[-1]
    settings = report["settings"]
    assert settings["images_per_epoch"] == LIMIT and settings["repeats"] == 2 and settings["batch_size"] == 64
    assert [(r["pipeline"], r["model"]) for r in report["results"]] == [
        (p, m) for m in ("lenet5", "custom_mlp") for p in ("per-sample", "fast", "study", "bare compute")]


@pytest.mark.slow
def test_bench_rows_train_what_they_say(bench_report):
    """study: the tuned preset as it is now; the floor row shares the study's batch size; fast and
    per-sample train the course recipe's batch."""
    _, report = bench_report
    study = report["settings"]["study"]
    tuned = TrainConfig.from_preset("tuned")
    assert all(study[k] == getattr(tuned, k) for k in study)
    rows = {(r["pipeline"], r["model"]): r for r in report["results"]}
    for model in ("lenet5", "custom_mlp"):
        assert rows[("study", model)]["batch_size"] == rows[("bare compute", model)]["batch_size"] == tuned.batch_size
        assert rows[("fast", model)]["batch_size"] == rows[("per-sample", model)]["batch_size"] == 64
        assert rows[("bare compute", model)]["test_acc"] is None
        assert rows[("study", model)]["test_acc"] is not None


@pytest.mark.slow
def test_bench_values_are_sane_and_speedup_is_the_ratio_of_medians(bench_report):
    _, report = bench_report
    rows = {(r["pipeline"], r["model"]): r for r in report["results"]}
    for row in rows.values():
        assert len(row["seconds_per_epoch_runs"]) == 2 and all(t > 0 for t in row["seconds_per_epoch_runs"])
        assert row["seconds_per_epoch"] == statistics.median(row["seconds_per_epoch_runs"])
        assert row["images_per_s"] == pytest.approx(LIMIT / row["seconds_per_epoch"])
        assert row["test_acc"] is None if row["pipeline"] == "bare compute" else 0 <= row["test_acc"] <= 100
    for model in ("lenet5", "custom_mlp"):
        slow, fast = rows[("per-sample", model)], rows[("fast", model)]
        study, bare = rows[("study", model)], rows[("bare compute", model)]
        assert slow["speedup"] == 1.0
        assert fast["speedup"] == pytest.approx(slow["seconds_per_epoch"] / fast["seconds_per_epoch"])
        assert report["speedup"][model] == fast["speedup"]
        assert bare["vs_floor"] == 1.0
        assert study["vs_floor"] == pytest.approx(study["seconds_per_epoch"] / bare["seconds_per_epoch"])
        assert report["floor_ratio"][model] == study["vs_floor"]


@pytest.mark.slow
def test_bench_time_to_99_and_memory(bench_report):
    _, report = bench_report
    t99 = report["time_to_99"]
    accs, seconds, mean = t99["test_acc_by_epoch"], t99["train_seconds_by_epoch"], t99["mean_test_acc_by_epoch"]
    assert t99["preset"] == "fast" and t99["train_images"] == LIMIT and t99["seeds"] == 5
    assert len(accs) == len(seconds) == 5 and all(len(run) == t99["epochs"] for run in accs + seconds)
    assert all(s > 0 for run in seconds for s in run)
    assert mean == pytest.approx([statistics.fmean(run[e] for run in accs) for e in range(t99["epochs"])])
    if t99["reached"]:  # the clock stops at the first epoch at 99% (mean of seeds), and counts only training
        epoch = t99["epoch"]
        assert mean[epoch - 1] >= 99.0 and all(a < 99.0 for a in mean[:epoch - 1])
        assert t99["seconds"] == pytest.approx(statistics.median(sum(run[:epoch]) for run in seconds))
        assert t99["images"] == epoch * LIMIT
    else:
        assert max(mean) < 99.0 and t99["seconds"] is None and t99["images"] is None
    memory = report["memory"]
    assert memory["max_rss_bytes"] > memory["baseline_rss_bytes"] > 50 * 2**20  # torch alone is far more
    assert f"--limit {LIMIT}" in memory["command"]
    targets = report["targets"]
    assert set(targets) == {"lenet5_speedup", "custom_mlp_speedup", "time_to_99_seconds", "peak_memory_bytes",
                            "epochs_to_99", "floor_ratio"}
    assert targets["lenet5_speedup"]["met"] == (report["speedup"]["lenet5"] >= 6)
    assert targets["peak_memory_bytes"]["met"] == (memory["max_rss_bytes"] <= 2**30)
    assert targets["floor_ratio"]["measured"] == max(report["floor_ratio"].values())
    assert targets["floor_ratio"]["met"] == (max(report["floor_ratio"].values()) <= 1.10)
    assert targets["epochs_to_99"]["met"] == (t99["reached"] and t99["epoch"] <= 2)


def test_targets_take_the_worst_model():
    report = {"speedup": {"lenet5": 7.0}, "time_to_99": None, "memory": None,
              "floor_ratio": {"lenet5": 1.05, "lenet5_regularized": 1.12}}
    targets = targets_met(report)
    assert targets["floor_ratio"] == {"target": 1.10, "measured": 1.12, "met": False}
    assert targets["lenet5_speedup"]["met"] and targets["custom_mlp_speedup"]["met"] is None
    assert targets["epochs_to_99"]["met"] is None


def test_bare_compute_steps_the_optimizer_without_data(bench_root):
    """The floor trains the study's model: the weights move, on one batch, for about an epoch's steps."""
    images, labels = (torch.from_numpy(a) for a in synthetic_mnist(300, 3))
    split = Split(images.unsqueeze(1), labels, 0.1307, 0.3081)
    config = TrainConfig.from_preset("tuned", model="lenet5", epochs=1, batch_size=64, threads=1, progress=False)
    seconds = bare_compute_run(config, split, torch.device("cpu"))
    assert seconds > 0


def test_fast_preset_is_two_epochs_of_lenet5_without_augmentation():
    fast = TrainConfig.from_preset("fast")
    assert fast.epochs == 2 and not fast.augment
    assert PRESETS["tuned"]["augment"]
    assert PIPELINES == ("per-sample", "fast", "study", "bare compute")


@pytest.mark.slow
def test_bench_skips(bench_root, tmp_path):
    out = tmp_path / "b.json"
    result = run_cli("bench", "--data-dir", bench_root, "--limit", 64, "--repeats", 1, "--threads", 1,
                     "--models", "custom_mlp", "--skip-time-to-99", "--skip-memory", "--out", out, "--quiet")
    assert result.code == 0, result.err
    report = json.loads(out.read_text())
    assert report["time_to_99"] is None and report["memory"] is None
    assert report["targets"]["peak_memory_bytes"]["met"] is None
    assert [r["model"] for r in report["results"]] == ["custom_mlp"] * len(PIPELINES)


@pytest.mark.slow
def test_a_gpu_section_and_the_top_level_keep_each_other(bench_root, tmp_path):
    """A GPU run writes under "gpu" and keeps the CPU results; a later CPU run keeps the "gpu" key."""
    out = tmp_path / "b.json"
    summary = tmp_path / "summary.json"
    environment = {"torch": "2.9.0", "device_type": "cuda", "device_name": "H200", "runs": 7, "sittings": 1,
                   "wall_seconds": 321.5}
    summary.write_text(json.dumps({"environment": environment, "workers": 10,
                                   "plan": [{"variants": ["a", "b"], "seeds": [0, 1, 2]}, {"variants": ["c"], "seeds": [0]}]}))
    common = ["--data-dir", bench_root, "--limit", 64, "--repeats", 1, "--threads", 1, "--models", "custom_mlp",
              "--skip-time-to-99", "--skip-memory", "--out", out, "--quiet"]
    assert run_cli("bench", *common).code == 0
    cpu = json.loads(out.read_text())
    result = run_cli("bench", *common, "--section", "gpu", "--study-summary", summary)
    assert result.code == 0, result.err
    both = json.loads(out.read_text())
    assert both["results"] == cpu["results"]  # the top level untouched
    assert both["gpu"]["study"] == {**environment, "workers": 10}  # the study's environment and wall time
    assert run_cli("bench", *common).code == 0
    again = json.loads(out.read_text())
    assert again["gpu"] == both["gpu"]


def test_bench_study_summary_must_be_readable(bench_root, tmp_path):
    result = run_cli("bench", "--data-dir", bench_root, "--out", tmp_path / "b.json", "--quiet",
                     "--study-summary", tmp_path / "missing.json")
    assert_one_line_error(result, "missing.json")
    assert not (tmp_path / "b.json").exists()


def test_course_png_dataset_is_the_same_images(tmp_path):
    """The per-sample pipeline must train on what the engine trains on: PNG -> PIL -> ToTensor ->
    Normalize gives the engine's normalized tensors, with the labels from the file names."""
    images, labels = (torch.from_numpy(a) for a in synthetic_mnist(30, 5))
    dataset = CoursePngDataset(write_course_pngs(images, labels, tmp_path), course_transform("mnist"))
    assert len(dataset) == 30
    mean, std = NORMALIZATION["mnist"]
    expected = (images.float() / 255.0 - mean) / std
    for i in range(30):  # sorted file names are the IDs in order
        x, y = dataset[i]
        assert y == int(labels[i]) and x.shape == (1, 28, 28) and x.dtype == torch.float32
        assert torch.allclose(x, expected[i][None], atol=1e-5)


def test_course_png_dataset_bad_folders(tmp_path):
    with pytest.raises(MnistLibError, match="holds no"):
        CoursePngDataset(tmp_path)
    (tmp_path / "cat.png").write_bytes(b"not a png")
    with pytest.raises(MnistLibError, match="ID"):
        CoursePngDataset(tmp_path)


@pytest.mark.parametrize("args, needle", [
    (["--repeats", "0"], "repeats"),
    (["--limit", "-5"], "limit"),
    (["--models", "resnet"], "invalid choice"),
    (["--limit", "999999"], "limit"),
    (["--device", "tpu"], "device"),
])
def test_bench_bad_input_is_one_error_line(bench_root, tmp_path, args, needle):
    result = run_cli("bench", "--data-dir", bench_root, "--out", tmp_path / "b.json", "--quiet", *args)
    assert_one_line_error(result, needle)
    assert not (tmp_path / "b.json").exists()
