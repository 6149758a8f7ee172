"""Latency side by side: interleaved rounds, ratios to a baseline with bootstrap intervals."""

import dataclasses
import json

import numpy as np
import pytest

import tfcompress as tfc
from tests.conftest import small_cnn
from tfcompress import keras
from tfcompress.litert import side_by_side


@pytest.fixture(scope="module")
def same_shape_files(tmp_path_factory):
    """Three float32 files of one CNN shape, each with its own random weights."""
    folder = tmp_path_factory.mktemp("compare")
    paths = []
    for seed in range(3):
        keras.utils.set_random_seed(seed)
        model = small_cnn(filters=32, units=128, name=f"weights_{seed}")
        paths.append(tfc.export.to_tflite(model, folder / f"weights_{seed}.tflite", mode="float32").path)
    return paths


def test_same_shape_files_cannot_be_told_apart(same_shape_files):
    result = tfc.litert.time_side_by_side(same_shape_files)
    medians = [row["median_ms"] for row in result.files]
    # Identical work: within 5% in one run here; 10% keeps the test stable on busy CI cores.
    assert max(medians) / min(medians) < 1.10, tfc.litert.format_side_by_side(result)
    assert [row["verdict"] for row in result.files][0] == "baseline"
    for row in result.files[1:]:
        assert row["speedup_low"] <= row["speedup"] <= row["speedup_high"]
        assert 0.9 < row["speedup"] < 1.1
    assert result.rounds == 200 and all(len(row["round_ms"]) == 200 for row in result.files)
    assert result.interpreters == 3 and all(len(row["interpreter_ms"]) == 3 for row in result.files)
    assert "3 interpreters a file" in tfc.litert.format_side_by_side(result)
    assert "AVX" in result.cpu or "cores" in result.cpu


def test_a_model_with_16_times_the_work_is_slower_beyond_doubt(same_shape_files, tmp_path):
    keras.utils.set_random_seed(0)
    wide = tfc.export.to_tflite(small_cnn(filters=128, units=512), tmp_path / "wide.tflite", mode="float32").path
    result = tfc.litert.time_side_by_side({"small": same_shape_files[0], "wide": wide}, baseline="wide")
    small = result.files[0]
    assert small["verdict"] == "faster" and small["speedup_low"] > 1.5, tfc.litert.format_side_by_side(result)
    table = tfc.litert.format_side_by_side(result)
    assert "x faster than wide (95% interval)" in table and result.cpu in table


def test_a_keras_model_is_refused_with_the_export_that_fixes_it(trained_cnn, same_shape_files):
    with pytest.raises(ValueError, match=r"'trained_cnn' is a Sequential. Export it first \(tfc.export.to_tflite"):
        tfc.litert.time_side_by_side([trained_cnn, same_shape_files[0]], rounds=5, invokes=3)


def test_the_deprecated_compare_exports_keras_models_first_and_leaves_them_untouched(trained_cnn, same_shape_files):
    before = [weight.copy() for weight in trained_cnn.get_weights()]
    with pytest.deprecated_call(match="tfc.litert.time_side_by_side"):
        result = tfc.export.compare([trained_cnn, same_shape_files[0]], rounds=5, invokes=3)
    assert [row["label"] for row in result.files] == ["trained_cnn", "weights_0.tflite"]
    assert result.files[0]["path"] is None and result.files[1]["path"] == same_shape_files[0]
    for kept, now in zip(before, trained_cnn.get_weights()):
        np.testing.assert_array_equal(kept, now)


def test_one_interpreter_a_file_still_gives_an_interval(same_shape_files):
    result = tfc.litert.time_side_by_side(same_shape_files[:2], rounds=5, invokes=3, interpreters=1)
    row = result.files[1]
    assert len(row["interpreter_ms"]) == 1 and row["speedup_low"] <= row["speedup"] <= row["speedup_high"]
    assert "1 interpreter a file" in tfc.litert.format_side_by_side(result)


def test_one_slow_interpreter_widens_the_interval_instead_of_deciding_the_verdict():
    # Measured rounds of two files, three interpreters each (round r on interpreter r mod 3): file "a" has one
    # interpreter 30% slower than its others, file "b" is steady in between. Resampling rounds alone would call
    # "a" faster beyond doubt; resampling interpreters first says what is true: it depends on the interpreter.
    rng = np.random.default_rng(0)
    rounds = 90
    a = np.where(np.arange(rounds) % 3 == 1, 1.3, 1.0) + rng.normal(0, 0.005, rounds)
    b = 1.1 + rng.normal(0, 0.005, rounds)
    row = side_by_side._row("a", None, {"a": a, "b": b}, "b", 3, 0.95, rng)
    assert row["speedup"] > 1.05 and row["interpreter_ms"] == pytest.approx([1.0, 1.3, 1.0], abs=0.01)
    assert row["speedup_low"] < 1 < row["speedup_high"] and row["verdict"] == "cannot be told apart"
    steady = side_by_side._row("a", None, {"a": np.where(a > 1.2, 1.0, a), "b": b}, "b", 3, 0.95, rng)
    assert steady["verdict"] == "faster"


def test_rounds_stop_at_the_time_limit_after_five(same_shape_files):
    result = tfc.litert.time_side_by_side(same_shape_files[:2], rounds=10**6, max_seconds=0.01)
    assert 5 <= result.rounds < 10**6


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"rounds": 2}, r"`rounds` >= 5"),
        ({"invokes": 1}, r"`invokes` >= 3"),
        ({"interpreters": 0}, r"`interpreters` >= 1"),
        ({"baseline": "other.tflite"}, r"`baseline` must be one of"),
        ({"baseline": 5}, r"`baseline` must be one of"),
    ],
)
def test_bad_arguments_say_what_is_allowed(same_shape_files, arguments, message):
    with pytest.raises(ValueError, match=message):
        tfc.litert.time_side_by_side(same_shape_files, **arguments)


def test_files_with_one_name_in_two_folders_keep_distinct_labels(same_shape_files, tmp_path):
    copy = tmp_path / "weights_0.tflite"
    copy.write_bytes(open(same_shape_files[0], "rb").read())
    result = tfc.litert.time_side_by_side([same_shape_files[0], str(copy)], rounds=5, invokes=3)
    assert [row["label"] for row in result.files] == [same_shape_files[0], str(copy)]


def test_the_result_is_a_dataclass_with_to_dict_and_item_access_kept_for_a_release(same_shape_files):
    result = tfc.litert.time_side_by_side(same_shape_files[:2], rounds=5, invokes=3, interpreters=1)
    as_dict = json.loads(json.dumps(result.to_dict()))
    assert as_dict["cpu"] == result.cpu and as_dict["files"][1]["speedup"] == result.files[1]["speedup"]
    with pytest.deprecated_call(match=r"use \.rounds instead of \['rounds'\]"):
        assert result["rounds"] == result.rounds == 5
    with pytest.raises(KeyError):
        result["medians"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.rounds = 6
