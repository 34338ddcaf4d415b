"""TrainConfig: the course defaults, validation of every bad value, presets, round trips."""

import dataclasses

import pytest

from mnist_lib.config import PRESETS, TrainConfig
from mnist_lib.errors import MnistLibError


def test_defaults_are_the_course_template_recipe():
    c = TrainConfig()
    assert (c.model, c.dataset, c.data_format) == ("lenet5", "mnist", "idx")
    assert (c.epochs, c.batch_size, c.optimizer, c.lr, c.momentum) == (10, 64, "sgd", 0.01, 0.9)
    assert (c.schedule, c.weight_decay, c.nesterov, c.augment) == ("none", 0.0, False, False)
    assert c.augment_mode == "shift"  # when augmentation is on: whole-pixel shifts (affine: + rotations)
    assert c.val_size == 5000
    assert c.device == "auto"
    assert c.validate() is c


def test_course_preset_is_the_default_recipe():
    assert TrainConfig.from_preset("course") == TrainConfig()


def test_presets_apply_and_overrides_win():
    tuned = TrainConfig.from_preset("tuned", epochs=2, model="custom_mlp")
    for key, value in PRESETS["tuned"].items():
        if key != "epochs":
            assert getattr(tuned, key) == value
    assert tuned.epochs == 2 and tuned.model == "custom_mlp"


def test_unknown_preset():
    with pytest.raises(MnistLibError, match="preset 'turbo' is unknown"):
        TrainConfig.from_preset("turbo")


def test_dict_round_trip():
    c = TrainConfig(model="lenet5_regularized", dropout=0.3, limit=100, seed=7)
    assert TrainConfig.from_dict(c.to_dict()) == c
    assert set(c.to_dict()) == {f.name for f in dataclasses.fields(TrainConfig)}


def test_unknown_keys_are_errors():
    with pytest.raises(MnistLibError, match="unknown config parameter.*learning_rate"):
        TrainConfig.from_dict({"learning_rate": 0.1})
    with pytest.raises(MnistLibError, match="unknown config parameter.*learning_rate"):
        TrainConfig().replace(learning_rate=0.1)


def test_replace_validates():
    assert TrainConfig().replace(epochs=3).epochs == 3
    with pytest.raises(MnistLibError, match="epochs"):
        TrainConfig().replace(epochs=0)


@pytest.mark.parametrize("field, value, message", [
    ("model", "resnet", "model 'resnet' is unknown"),
    ("dataset", "cifar10", "dataset 'cifar10' is unknown"),
    ("data_format", "zip", "data_format 'zip' is unknown"),
    ("optimizer", "adam", "optimizer 'adam' is unknown"),
    ("schedule", "step", "schedule 'step' is unknown"),
    ("device", "tpu", "device 'tpu' is unknown"),
    ("epochs", 0, "epochs must be a positive integer"),
    ("epochs", -3, "epochs must be a positive integer"),
    ("epochs", 2.5, "epochs must be an integer"),
    ("epochs", True, "epochs must be an integer"),
    ("batch_size", 0, "batch_size must be a positive integer"),
    ("batch_size", -64, "batch_size must be a positive integer"),
    ("eval_batch_size", 0, "eval_batch_size must be a positive integer"),
    ("lr", 0, "lr must be positive"),
    ("lr", -0.1, "lr must be positive"),
    ("lr", float("nan"), "lr must be a finite number"),
    ("lr", "0.1", "lr must be a finite number"),
    ("limit", 0, "limit must be a positive integer"),
    ("threads", 0, "threads must be a positive integer"),
    ("val_size", -1, "val_size must be >= 0"),
    ("seed", 1.5, "seed must be an integer"),
    ("momentum", 1.0, r"momentum must be in \[0, 1\)"),
    ("weight_decay", -1e-4, "weight_decay must be >= 0"),
    ("label_smoothing", 1.0, r"label_smoothing must be in \[0, 1\)"),
    ("dropout", 1.0, r"dropout must be in \[0, 1\)"),
    ("augment", "yes", "augment must be True or False"),
    ("batchnorm", 1, "batchnorm must be True, False or None"),
    ("data_dir", 5, "data_dir must be a path string"),
])
def test_bad_values_are_errors_naming_the_parameter(field, value, message):
    with pytest.raises(MnistLibError, match=message):
        TrainConfig.from_dict({field: value})


def test_variant_knobs_only_for_lenets():
    TrainConfig(model="lenet5", batchnorm=True, dropout=0.2).validate()
    with pytest.raises(MnistLibError, match="not custom_mlp"):
        TrainConfig(model="custom_mlp", dropout=0.2).validate()


def test_nesterov_needs_sgd_with_momentum():
    TrainConfig(nesterov=True).validate()
    with pytest.raises(MnistLibError, match="nesterov"):
        TrainConfig(nesterov=True, momentum=0.0).validate()
    with pytest.raises(MnistLibError, match="nesterov"):
        TrainConfig(nesterov=True, optimizer="adamw").validate()
