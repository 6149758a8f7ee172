"""The built-in models a recipe can name: their sizes, shapes and names."""

import pytest

import tfcompress as tfc


@pytest.mark.parametrize(
    "name, parameters", [("builtin:teacher", 416_266), ("builtin:student", 105_226), ("builtin:resnet", 14_698)]
)
def test_each_built_in_model_has_its_documented_size_on_digits(name, parameters):
    model = tfc.models.builtin(name)
    assert model.count_params() == parameters and model.name == name.split(":")[1]
    assert model.input_shape == (None, 8, 8, 1) and model.output_shape == (None, 10)


def test_larger_images_are_pooled_early_and_the_classes_follow_the_data():
    model = tfc.models.builtin("builtin:student", input_shape=(28, 28, 3), classes=4)
    assert model.input_shape == (None, 28, 28, 3) and model.output_shape == (None, 4)
    assert model.count_params() < 3 * tfc.models.builtin("builtin:student").count_params()


def test_an_unknown_built_in_name_lists_the_ones_there_are():
    with pytest.raises(ValueError, match=r"`builtin:vgg` is not a built-in model; those are \['builtin:teacher'"):
        tfc.models.builtin("builtin:vgg")
