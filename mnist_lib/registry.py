"""The one list of names: the writeup's three models, the study's variants, their display names and the
groups the plan, the tables, the notebooks and the report read. No torch here: the config and the CLI import it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The writeup's three networks (mnist_lib.models builds them), in the order every table lists them.
MODELS = {"lenet5": "LeNet-5", "custom_mlp": "CustomMLP", "lenet5_regularized": "LeNet5_Regularized"}


@dataclass(frozen=True)
class Variant:
    label: str  # how the report and the tables name it
    model: str  # its architecture: a key of MODELS
    changes: dict[str, Any] = field(default_factory=dict)  # config fields set on top of the recipe

    @property
    def config(self) -> dict[str, Any]:
        return {"model": self.model, **self.changes}


# The regularization ablation sets every regularizer explicitly, so a row means the same thing
# under either recipe; one regularizer is added per row. All variants stay at most 62k parameters.
_NONE = dict(weight_decay=0.0, augment=False)
VARIANTS: dict[str, Variant] = {
    # the writeup's three models, under whatever the recipe says
    **{name: Variant(label, name) for name, label in MODELS.items()},
    # a candidate for the best variant: BatchNorm without Dropout
    "lenet5_batchnorm": Variant("LeNet-5 + BatchNorm", "lenet5", dict(batchnorm=True)),
    # does rotation earn its cost? The recipes augment with whole-pixel shifts; this row adds
    # +-10 degree rotations (an affine resampling, ~13% of a LeNet-5 epoch on the CPU)
    "lenet5_rotation": Variant("LeNet-5, shifts + rotations", "lenet5", dict(augment_mode="affine")),
    "ablation_none": Variant("none", "lenet5", _NONE),
    "ablation_batchnorm": Variant("BatchNorm", "lenet5", dict(_NONE, batchnorm=True)),
    "ablation_dropout": Variant("Dropout", "lenet5", dict(_NONE, dropout=0.2)),
    "ablation_batchnorm_dropout": Variant("BatchNorm + Dropout", "lenet5_regularized", _NONE),
    "ablation_augmentation": Variant("augmentation", "lenet5", dict(_NONE, augment=True)),
    "ablation_batchnorm_dropout_augmentation": Variant("BatchNorm + Dropout + augm.", "lenet5_regularized",
                                                       dict(_NONE, augment=True)),
}

# Groups of variants.
HEADLINE = tuple(MODELS)  # the writeup's three, each with its own notebook and figures
BEST_CANDIDATES = (*HEADLINE, "lenet5_batchnorm")  # the best variant is chosen among them, on validation
ABLATION = tuple(name for name in VARIANTS if name.startswith("ablation_"))  # the first is the baseline
LR_SWEEP = ("ablation_none", "ablation_batchnorm")  # "BatchNorm enables higher learning rates"

DEFAULT_RECIPE = "tuned"  # a summary row under another recipe is keyed "<variant>@<recipe>"


def summary_key(variant: str, recipe: str) -> str:
    return variant if recipe == DEFAULT_RECIPE else f"{variant}@{recipe}"


def label(name: str) -> str:
    """A variant's display name (a code name that is no variant comes back as it is)."""
    return VARIANTS[name].label if name in VARIANTS else name
