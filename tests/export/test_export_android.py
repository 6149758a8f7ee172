"""The Android bundle: metadata embedded in the .tflite, read back, with labels and an I/O description."""

import json
import zipfile

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as model_schema

import tfcompress as tfc
from tfcompress import keras

LABELS = [f"digit {d}" for d in range(10)]


@pytest.fixture(scope="module")
def int8_file(trained_cnn, digits, tmp_path_factory):
    (x_train, _), _ = digits
    folder = tmp_path_factory.mktemp("export")
    return tfc.export.to_tflite(trained_cnn, folder / "digits.tflite", representative_data=x_train[:300]).path


def test_bundle_embeds_metadata_that_reads_back_and_keeps_the_model_intact(int8_file, digits, trained_cnn, tmp_path):
    _, (x_test, y_test) = digits
    bundle = tfc.export.android_bundle(int8_file, tmp_path / "android", labels=LABELS, name="digits")
    assert bundle["model"] == str(tmp_path / "android" / "digits.tflite")
    meta = tfc.export.read_metadata(bundle["model"])
    assert meta == bundle["metadata"]
    assert meta["name"] == "digits" and meta["min_parser_version"] == "1.0.0"
    assert meta["input"] | {"content": None} == {
        "name": "image", "content": None, "color_space": "RGB", "size": (8, 8),
        "mean": [0.0] * 3, "std": [1.0] * 3, "min": [0.0] * 3, "max": [255.0] * 3,
    }  # fmt: skip
    assert meta["output"]["labels_file"] == "labels.txt" and meta["output"]["labels_type"] == 2
    assert meta["files"] == {"labels.txt": "".join(f"{label}\n" for label in LABELS).encode()}
    assert (tmp_path / "android" / "labels.txt").read_text().splitlines() == LABELS

    # The model schema (LiteRT's own) lists the metadata buffer, with the metadata identifier.
    content = open(bundle["model"], "rb").read()
    model = model_schema.Model.GetRootAs(content, 0)
    names = {model.Metadata(i).Name(): model.Metadata(i).Buffer() for i in range(model.MetadataLength())}
    assert model.Buffers(names[b"TFLITE_METADATA"]).DataAsNumpy().tobytes()[4:8] == b"M001"
    assert zipfile.is_zipfile(bundle["model"])

    # The gray model takes RGB now: gray pixels given as R = G = B give exactly the gray file's scores.
    before = tfc.litert.LiteRTModel(int8_file).predict(x_test)
    rgb = np.repeat(x_test, 3, axis=-1)
    np.testing.assert_array_equal(tfc.litert.LiteRTModel(bundle["model"]).predict(rgb), before)


def test_the_rgb_front_converts_colour_to_gray_with_luma_weights(int8_file, digits, tmp_path):
    _, (x_test, _) = digits
    bundle = tfc.export.android_bundle(int8_file, tmp_path / "android", labels=LABELS)
    colour = np.random.default_rng(0).random((40,) + x_test.shape[1:3] + (3,)).astype(np.float32)
    gray = colour @ np.array([0.299, 0.587, 0.114], np.float32)
    expected = tfc.litert.LiteRTModel(int8_file).predict(gray[..., None])
    actual = tfc.litert.LiteRTModel(bundle["model"]).predict(colour)
    assert np.mean(np.argmax(actual, -1) == np.argmax(expected, -1)) >= 0.95
    assert tfc.litert.inspect(bundle["model"])["inputs"][0]["shape"] == [1, 8, 8, 3]


def test_bundle_json_describes_io_for_the_interpreter(int8_file, tmp_path):
    bundle = tfc.export.android_bundle(int8_file, tmp_path, labels=LABELS)
    description = json.loads(open(bundle["json"]).read())
    assert description["signature"] == "serving_default" and description["labels"] == "labels.txt"
    (image,) = description["inputs"]
    assert image["dtype"] == "uint8" and image["shape"] == [1, 8, 8, 3] and description["gray_model_takes_rgb"]
    assert image["scale"] == pytest.approx(1 / 255, rel=1e-3) and image["zero_point"] == 0
    assert description["outputs"][0]["shape"] == [1, 10] and description["normalization"] == {"mean": 0.0, "std": 1.0}


def test_float_rgb_input_gets_its_normalization_from_the_pixel_range(tmp_path, seeded):
    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Flatten(), keras.layers.Dense(3)])
    path = tfc.export.to_tflite(model, tmp_path / "rgb.tflite", mode="float32").path
    bundle = tfc.export.android_bundle(path, tmp_path / "out", labels=["a", "b", "c"], pixel_range=(-1, 1))
    meta = bundle["metadata"]["input"]
    assert meta["color_space"] == "RGB" and meta["size"] == (16, 16)
    assert meta["mean"] == [127.5] * 3 and meta["std"] == [127.5] * 3 and meta["min"] == [-1.0] * 3


def test_nothing_is_overwritten_without_asking(int8_file, tmp_path):
    tfc.export.android_bundle(int8_file, tmp_path, labels=LABELS)
    (tmp_path / "labels.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="digits.tflite already exists"):
        tfc.export.android_bundle(int8_file, tmp_path, labels=LABELS)
    assert (tmp_path / "labels.txt").read_text() == "mine"
    tfc.export.android_bundle(int8_file, tmp_path, labels=LABELS, overwrite=True)
    assert (tmp_path / "labels.txt").read_text().splitlines() == LABELS


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"labels": LABELS[:9]}, "`labels` has 9 names but the model scores 10 classes"),
        ({"labels": "0123456789"}, "`labels` must be a list of non-empty, single-line strings"),
        ({"labels": LABELS[:9] + ["a\nb"]}, "single-line"),
        ({"pixel_range": (-1, 1)}, r"maps pixels 0..255 to \[0, 1\], not `pixel_range` \(-1, 1\)"),
        ({"pixel_range": (1, 0)}, "low < high"),
    ],
)
def test_bad_bundle_requests(int8_file, tmp_path, arguments, message):
    with pytest.raises(ValueError, match=message):
        tfc.export.android_bundle(int8_file, tmp_path / "out", **{"labels": LABELS, **arguments})
    assert not (tmp_path / "out" / "digits.tflite").exists()


def test_models_the_metadata_cannot_describe(trained_cnn, digits, tmp_path):
    (x_train, _), _ = digits
    int8_io = tfc.export.to_tflite(
        trained_cnn, tmp_path / "i.tflite", representative_data=x_train[:100], io_dtype="int8"
    )
    with pytest.raises(ValueError, match=r"takes uint8 or float32. Export with io_dtype=\"uint8\""):
        tfc.export.android_bundle(int8_io.path, tmp_path / "out", labels=LABELS)
    flat = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10)])
    path = tfc.export.to_tflite(flat, tmp_path / "flat.tflite", mode="float32").path
    with pytest.raises(ValueError, match=r"takes \[1, height, width, 1 or 3\]"):
        tfc.export.android_bundle(path, tmp_path / "out", labels=LABELS)
    uint8_io = tfc.export.to_tflite(trained_cnn, tmp_path / "u.tflite", representative_data=x_train[:100])
    with pytest.raises(ValueError, match="must differ from the folder"):
        tfc.export.android_bundle(uint8_io.path, tmp_path, labels=LABELS)
    with pytest.raises(FileNotFoundError, match="No .tflite file"):
        tfc.export.read_metadata(tmp_path / "missing.tflite")
    assert tfc.export.read_metadata(path) is None
