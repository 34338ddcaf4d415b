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
#   title: Regularization ablation
# ---

# %% [markdown]
# # Regularization ablation
#
# Which of the writeup's regularizers helps LeNet-5, and by how much? Each row switches regularizers
# on explicitly (BatchNorm, Dropout, both as in the writeup's LeNet5_Regularized, augmentation, and
# augmentation with both), so a row means the same thing under any recipe; the first row, with none,
# is the baseline every other row is tested against. Every row uses the same seeds. The study runs
# this notebook for the course recipe's ablation, the project recipe's "none" row, the stability
# sweep (20 seeds of the variants without BatchNorm on a short budget) and the "shifts only" rows
# (the project recipe without its rotation, compared with the headline rows in the report).
#
# **Parameters** (the cell tagged `parameters`; papermill: `-p NAME VALUE`, or `-y "seeds: [0, 1]"`):
# `dataset`, `recipes`, `variants` (the first is the baseline), `seeds`, `epochs` and `lr` (`None`: the
# recipe's value), `limit`, `val_size`, `data_dir` (`None`: `$MNIST_DATA_DIR`, else `./data`), `device`, `runs_dir`
# and `images_dir` (relative to the working directory), `retrain`, `REPO_URL`.
#
# **Run it anywhere.** In a checkout of the repository (Jupyter, papermill) the setup cell finds
# `mnist_lib` by walking up from the working directory, or uses the installed package. On Colab, set
# `REPO_URL` in the parameters cell to a pip-installable URL of your copy of the repository, e.g.
# `git+https://github.com/<you>/MNIST-Classification.git`, and run all cells: MNIST is downloaded into
# `./data` unless `data_dir` (or `$MNIST_DATA_DIR`) says where it is.

# %% tags=["parameters"]
# Parameters (papermill). None: the recipe's value.
dataset = "mnist"
recipes = ["course"]
variants = ["ablation_none",
            "ablation_batchnorm",
            "ablation_dropout",
            "ablation_batchnorm_dropout",
            "ablation_augmentation",
            "ablation_batchnorm_dropout_augmentation"]  # mnist_lib.experiments.ABLATION; the first is the baseline
seeds = [0, 1, 2]
epochs = None
lr = None  # the recipe's learning rate, unless given (the learning-rate sweep)
limit = None
val_size = None
data_dir = None
device = "auto"
runs_dir = "runs"
images_dir = "images"
retrain = False
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
from mnist_lib import plots
from mnist_lib.config import DATASET_LABELS
from mnist_lib.notebook import check_grid, run_grid
from mnist_lib.tables import ablation_frame, markdown_table

runs = check_grid(variants, recipes, seeds=seeds, dataset=dataset, runs_dir=runs_dir, images_dir=images_dir,
                  retrain=retrain, epochs=epochs, lr=lr, limit=limit, val_size=val_size, data_dir=data_dir, device=device)
display(Markdown(f"{len(runs)} variant × recipe combinations, seeds {runs[0].seeds}, {runs[0].dataset}."))

# %% [markdown]
# ## Training (or reusing) every variant × recipe × seed

# %%
summary = run_grid(runs)  # one data load for every run

# %% [markdown]
# ## Results
#
# Test accuracy of the kept (best-validation) model, mean ± std over the runs that learned; a run
# that stayed near chance (under 50%) is counted as failed and kept out of the mean. The gap is
# the kept model's accuracy on the clean training images minus its test accuracy: a regularizer
# can only help where there is a gap to close. Each row is compared with the first by Welch's
# t-test: the difference in points, its 95% confidence interval, the p-value, and the verdict at
# the 5% level (helps, hurts, or no evidence either way at this number of seeds).

# %%
for recipe in recipes:
    display(Markdown(f"**Recipe `{recipe}`**, {dataset}, seeds {list(runs[0].seeds)}:"))
    display(Markdown(markdown_table(ablation_frame(summary, variants, recipe, dataset))))

# %%
from mnist_lib.tables import ablation_rows
rows = ablation_rows(summary, variants, recipes, dataset)  # a row whose every run diverged has nothing to draw
if rows:
    fig = plots.mean_std_figure(rows, runs[0].images_dir / "ablation.png",
                                title=f"Regularization ablation on {DATASET_LABELS[dataset]}: test accuracy, mean ± std over seeds")
