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
#   title: LeNet-5 on MNIST
# ---

# %% [markdown]
# # LeNet-5 on MNIST
#
# LeNet-5 (LeCun et al., 1998) as the course builds it: two convolutional layers, each followed by
# max-pooling, then three fully connected layers. The course pads the 28×28 image by 2 in `conv1`
# where the paper pads it to 32×32; activations are ReLU and pooling is max-pooling. The writeup
# expects it to exceed 98% test accuracy. `python -m mnist_lib report` executes this notebook with
# papermill; the parameters and how to run it on Colab are in the README.

# %% tags=["parameters"]
model = "lenet5"  # this architecture or one of its variants (mnist_lib.registry.VARIANTS)
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

run = check_parameters(model, recipe, seeds, dataset, runs_dir, images_dir, retrain, architecture="lenet5",
                       **config_fields(globals()))
run.describe()

# %% [markdown]
# ## Architecture
#
# Each arrow of the diagram is a layer with its parameter count, each block a tensor with its
# shape (channels@height×width), computed from the model. The two pooling layers (max-pooling
# 2×2, stride 2) have no parameters; the table spells out the writeup's arithmetic per layer.

# %%
net = run.show_architecture()

# %% [markdown]
# ## Training
#
# One run per seed, through the same engine as the CLI. The kept model of a run is its epoch with
# the best validation accuracy, so the test set chooses nothing; a finished run of the same
# config, torch build and device type is reused.

# %%
metrics = run.run()

# %% [markdown]
# ## Learning curves
#
# Loss and accuracy per epoch on the training, validation and test images: the mean over seeds,
# the band their range. The training accuracy is measured on augmented images while the weights
# move, so it sits below the others early on.

# %%
run.show_curves(metrics)

# %% [markdown]
# ## Where LeNet-5 goes wrong
#
# The confusion matrix of the kept models (summed over seeds), per-class accuracy, and the test
# digits the first seed misclassifies. Most are digits a person would hesitate over too.

# %%
per_class = run.show_errors(metrics)

# %% [markdown]
# ## What the first layer learned
#
# The six 5×5 filters of `conv1` (first seed) and what each makes of one test digit: small oriented
# edge and stroke detectors, whose maps keep the digit's layout.

# %%
run.show_conv1(metrics)

# %% [markdown]
# ## In numbers

# %%
run.show_summary(metrics, per_class)
