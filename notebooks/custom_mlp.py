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
#   title: CustomMLP on MNIST
# ---

# %% [markdown]
# # CustomMLP on MNIST
#
# A multilayer perceptron 784-64-64-64-32-16-10 with ReLU, sized so its parameter count matches
# LeNet-5's: the comparison is then about the architecture (weight sharing and locality of the
# convolutions), not about capacity. The writeup reports 95% test accuracy for it.
# `python -m mnist_lib report` executes this notebook with papermill; the parameters and how to run
# it on Colab are in the README.

# %% tags=["parameters"]
model = "custom_mlp"  # this architecture or one of its variants (mnist_lib.registry.VARIANTS)
recipe, seeds, dataset = "tuned", [0, 1, 2], "mnist"  # recipe: "tuned" or "course"; dataset: or "fashion-mnist"
epochs = batch_size = lr = optimizer = momentum = weight_decay = schedule = augment = None  # None: the recipe's
data_dir, device, limit, val_size = None, "auto", None, None  # data_dir None: $MNIST_DATA_DIR, else ./data
runs_dir, images_dir, retrain = "runs", "images", False  # retrain: even where a finished run of this config exists
REPO_URL = ""  # Colab: a pip-installable URL of your copy of the repository (see the README)

# %%
# Setup: mnist_lib from the repository around this notebook, else as installed, else from REPO_URL.
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
# Every parameter goes through the same TrainConfig as the CLI: a bad one stops here with its message.
from mnist_lib.notebook import check_parameters, config_fields

run = check_parameters(model, recipe, seeds, dataset, runs_dir, images_dir, retrain, architecture="custom_mlp",
                       **config_fields(globals()))
run.describe()

# %% [markdown]
# ## Architecture
#
# The 28×28 image is flattened to 784 features, so the network sees no neighbourhood of a pixel;
# six fully connected layers follow, each but the last with ReLU. Most of the weights sit in the
# first layer, one per pixel and unit.

# %%
net = run.show_architecture()

# %% [markdown]
# ## Training
#
# The MLP trains three times as many epochs as the LeNet family under the tuned recipe: an epoch of
# it is cheap, and it needs them to converge (the report's convergence check). The kept epoch is
# chosen on validation accuracy.

# %%
metrics = run.run()

# %% [markdown]
# ## Learning curves
#
# The MLP fits its training images faster than LeNet-5 and ends with the larger gap between
# training and test accuracy.

# %%
run.show_curves(metrics)

# %% [markdown]
# ## Where CustomMLP goes wrong
#
# Its errors, summed over seeds, per class, and the first seed's misclassified digits.

# %%
per_class = run.show_errors(metrics)

# %% [markdown]
# ## Shifted digits
#
# An MLP's first layer has a weight per pixel, so moving a digit changes what every unit sees. The
# kept models on the test images shifted by 0–4 pixels (mean of right, left, down and up):

# %%
run.show_shifts(metrics)

# %% [markdown]
# ## In numbers

# %%
run.show_summary(metrics, per_class)
