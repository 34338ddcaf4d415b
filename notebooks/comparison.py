# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: title
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
#   title: Comparison of all models
# ---

# %% [markdown]
# # Comparison of all models
#
# Reads the saved metrics only (no training): draws the writeup's `full_result` figure and tabulates
# every row of the study, the targets, the convergence check, the stability sweep, every comparison and
# the plan's time. `make report` writes `report/summary.json` first; run alone, this notebook writes it.
#
# **Parameters** (the cell tagged `parameters`; papermill: `-p NAME VALUE`): `runs_dir`, `images_dir` and
# `summary_path` (relative to the working directory), `REPO_URL`.
#
# **Run it anywhere.** In a checkout of the repository (Jupyter, papermill) the setup cell finds
# `mnist_lib` by walking up from the working directory, or uses the installed package. On Colab, set
# `REPO_URL` in the parameters cell to a pip-installable URL of your copy of the repository, e.g.
# `git+https://github.com/<you>/MNIST-Classification.git`, and run all cells (it reads saved runs: run the
# model notebooks first, with the same `runs_dir`).

# %% tags=["parameters"]
# Parameters (papermill)
runs_dir = "runs"
images_dir = "images"
summary_path = "report/summary.json"
# Colab: set to a pip-installable URL of your copy of this repository, e.g.
# git+https://github.com/<you>/MNIST-Classification.git ("": the repository around this notebook, or the installed package)
REPO_URL = ""

# %%
# Setup: make mnist_lib importable from the repository around this notebook (found by walking up from the
# working directory; no chdir, so relative paths stay relative to it), else as installed, else from REPO_URL.
import importlib.util, subprocess, sys
from pathlib import Path

repo = next((p for p in (Path.cwd(), *Path.cwd().parents) if (p / "mnist_lib" / "__init__.py").is_file()), None)
if repo is not None:
    sys.path.insert(0, str(repo))
elif importlib.util.find_spec("mnist_lib") is None:
    if not REPO_URL:
        raise ModuleNotFoundError("mnist_lib is neither around this notebook nor installed: set REPO_URL in the "
                                  "parameters cell (or pip install the package) and run again.")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", REPO_URL], check=True)

# %%
from IPython.display import Markdown, display
from mnist_lib import plots, tables
from mnist_lib.experiments import read_summary, write_summary
from mnist_lib.notebook import check_report_parameters
from mnist_lib.tables import convergence_frame, dataset_rows, full_result_histories, plan_frame

runs_dir, images_dir, summary_path = check_report_parameters(runs_dir, images_dir, summary_path)
# The pipeline writes the summary (with the study's environment and plan); run alone, write it here.
summary = read_summary(summary_path) if summary_path.is_file() else write_summary(runs_dir, summary_path)

# %% [markdown]
# ## MNIST: every row, mean ± std over the runs that learned

# %%
fig = plots.full_result_figure(full_result_histories(summary, runs_dir, "mnist"), images_dir / "full_result.png",
                               title="MNIST: test accuracy and loss per epoch (mean over seeds, band: range)")
display(Markdown(tables.results_table(summary, "mnist")))

# %% [markdown]
# ## Targets, convergence (twice the epochs) and the stability sweep

# %%
for frame in (tables.targets_frame(summary), convergence_frame(summary), tables.stability_frame(summary)):
    display(Markdown(tables.markdown_table(frame)))

# %% [markdown]
# ## Every comparison: Welch's t-test, 95% confidence interval, verdict at the 5% level

# %%
display(Markdown(tables.markdown_table(tables.comparisons_frame(summary))))

# %% [markdown]
# ## Fashion-MNIST

# %%
if "fashion-mnist" in summary:
    display(Markdown(tables.results_table(summary, "fashion-mnist")))
    fig = plots.full_result_figure(full_result_histories(summary, runs_dir, "fashion-mnist"),
                                   images_dir / "fashion-mnist" / "full_result.png",
                                   title="Fashion-MNIST: test accuracy and loss per epoch")
rows = dataset_rows(summary)
if rows:
    fig = plots.mean_std_figure(rows, images_dir / "datasets.png", group_key="dataset",
                                title="MNIST and Fashion-MNIST: test accuracy, mean ± std over seeds")

# %% [markdown]
# ## The plan as executed: each step's budget and estimated cost

# %%
display(Markdown(tables.markdown_table(plan_frame(summary))))
