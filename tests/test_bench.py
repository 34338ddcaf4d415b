"""`python -m mnist_lib bench` on tiny synthetic data, so the benchmark cannot rot: the JSON's
structure, sane values, the speed-up arithmetic, and the per-sample pipeline's correctness."""

from __future__ import annotations

import json
import statistics

import pytest
import torch

from conftest import assert_one_line_error, run_cli, synthetic_mnist, write_mnist_root
from mnist_lib.bench import CoursePngDataset, course_transform, write_course_pngs
from mnist_lib.data import normalize
from mnist_lib.errors import MnistLibError

# The bench keeps the engine's 5,000-image validation split, so the tiny root needs more than that.
N_TRAIN, N_TEST, LIMIT = 5_200, 100, 96


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


def test_bench_prints_a_table_and_writes_json(bench_report):
    result, report = bench_report
    assert set(report) >= {"settings", "environment", "results", "speedup", "time_to_99", "memory", "targets"}
    header = result.out.splitlines()[0].split()
    assert header == ["pipeline", "model", "batch_size", "seconds_per_epoch", "images_per_s", "speedup", "test_acc"]
    assert "wrote" in result.out.splitlines()[-1]
    settings = report["settings"]
    assert settings["images_per_epoch"] == LIMIT and settings["repeats"] == 2 and settings["batch_size"] == 64
    assert [(r["pipeline"], r["model"]) for r in report["results"]] == [
        ("per-sample", "lenet5"), ("fast", "lenet5"), ("per-sample", "custom_mlp"), ("fast", "custom_mlp")]


def test_bench_values_are_sane_and_speedup_is_the_ratio_of_medians(bench_report):
    _, report = bench_report
    rows = {(r["pipeline"], r["model"]): r for r in report["results"]}
    for row in rows.values():
        assert len(row["seconds_per_epoch_runs"]) == 2 and all(t > 0 for t in row["seconds_per_epoch_runs"])
        assert row["seconds_per_epoch"] == statistics.median(row["seconds_per_epoch_runs"])
        assert row["images_per_s"] == pytest.approx(LIMIT / row["seconds_per_epoch"])
        assert 0 <= row["test_acc"] <= 100 and row["batch_size"] == 64
    for model in ("lenet5", "custom_mlp"):
        slow, fast = rows[("per-sample", model)], rows[("fast", model)]
        assert slow["speedup"] == 1.0
        assert fast["speedup"] == pytest.approx(slow["seconds_per_epoch"] / fast["seconds_per_epoch"])
        assert report["speedup"][model] == fast["speedup"]


def test_bench_time_to_99_and_memory(bench_report):
    _, report = bench_report
    t99 = report["time_to_99"]
    accs, seconds = t99["test_acc_by_epoch"], t99["train_seconds_by_epoch"]
    assert t99["preset"] == "tuned" and t99["train_images"] == LIMIT
    assert len(seconds) >= 1 and all(s > 0 for s in seconds)
    if t99["reached"]:  # the clock stops at the first epoch at 99%, and counts only training
        epoch = t99["epoch"]
        assert accs[epoch - 1] >= 99.0 and all(a < 99.0 for a in accs[:epoch - 1])
        assert t99["seconds"] == pytest.approx(sum(seconds[:epoch]))
        assert len(accs) == len(seconds)
    else:
        assert max(accs) < 99.0 and t99["seconds"] is None and len(accs) == 8
    memory = report["memory"]
    assert memory["max_rss_bytes"] > memory["baseline_rss_bytes"] > 50 * 2**20  # torch alone is far more
    assert f"--limit {LIMIT}" in memory["command"]
    targets = report["targets"]
    assert set(targets) == {"lenet5_speedup", "custom_mlp_speedup", "time_to_99_seconds", "peak_memory_bytes"}
    assert targets["lenet5_speedup"]["met"] == (report["speedup"]["lenet5"] >= 6)
    assert targets["peak_memory_bytes"]["met"] == (memory["max_rss_bytes"] <= 2**30)


def test_bench_skips(bench_root, tmp_path):
    out = tmp_path / "b.json"
    result = run_cli("bench", "--data-dir", bench_root, "--limit", 64, "--repeats", 1, "--threads", 1,
                     "--models", "custom_mlp", "--skip-time-to-99", "--skip-memory", "--out", out, "--quiet")
    assert result.code == 0, result.err
    report = json.loads(out.read_text())
    assert report["time_to_99"] is None and report["memory"] is None
    assert report["targets"]["peak_memory_bytes"]["met"] is None
    assert [r["model"] for r in report["results"]] == ["custom_mlp", "custom_mlp"]


def test_course_png_dataset_is_the_same_images(tmp_path):
    """The per-sample pipeline must train on what the engine trains on: PNG -> PIL -> ToTensor ->
    Normalize gives the engine's normalized tensors, with the labels from the file names."""
    images, labels = (torch.from_numpy(a) for a in synthetic_mnist(30, 5))
    dataset = CoursePngDataset(write_course_pngs(images, labels, tmp_path), course_transform("mnist"))
    assert len(dataset) == 30
    expected = normalize(images, "mnist")
    for i in range(30):  # sorted file names are the IDs in order
        x, y = dataset[i]
        assert y == int(labels[i]) and x.shape == (1, 28, 28) and x.dtype == torch.float32
        assert torch.allclose(x, expected[i], atol=1e-5)


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
