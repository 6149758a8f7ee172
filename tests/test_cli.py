"""`tfcompress` on the command line, run as a user runs it: in a new process."""

import json
import os
import subprocess
import sys

import pytest

# Subprocesses: minutes on 2 cores, run as CI's slow step; on one xdist worker, which runs the demo once.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("cli")]


def _tfcompress(*arguments, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "tfcompress", *arguments], capture_output=True, text=True, timeout=600, cwd=cwd
    )


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    output = tmp_path_factory.mktemp("demo")
    return output, _tfcompress("demo", "--quick", f"--output_dir={output}")


def test_demo_writes_verified_int8_model_and_report(quick_demo):
    output, result = quick_demo
    assert result.returncode == 0, result.stderr[-3000:]
    for stage in ("teacher", "distill", "prune", "qat", "export (int8)"):
        assert f"\n{stage} " in result.stdout
    assert "[4/4] Exporting int8" in result.stdout and f"Android model: {output}" in result.stdout
    assert "top-1 agreement" in result.stdout and "smaller than the float32 teacher" in result.stdout
    assert "as fast as the float32 teacher (95% interval" in result.stdout
    report = json.loads((output / "report.json").read_text())
    assert [row["parameters"] for row in report["rows"]][:2] == [416266, 105226]
    assert report["rows"][-1]["tflite_bytes"] == os.path.getsize(output / "model_int8.tflite")
    assert report["rows"][-1]["nonzero_parameters"] < 0.25 * report["rows"][-1]["parameters"]
    assert report["final"]["top1_agreement"] >= 0.97
    for stage in ("teacher", "distill", "prune"):  # each stage's model, kept as float32
        assert report["files"][f"{stage} (float32)"] == str(output / f"{stage}_float32.tflite")
        assert (output / f"{stage}_float32.tflite").stat().st_size > 10_000


def test_demo_never_overwrites_an_earlier_run(quick_demo):
    output, _ = quick_demo
    before = (output / "model_int8.tflite").read_bytes()
    result = _tfcompress("demo", "--quick", f"--output_dir={output}")
    assert result.returncode == 1
    assert "already exists" in result.stdout and "--overwrite" in result.stdout
    assert (output / "model_int8.tflite").read_bytes() == before


@pytest.mark.parametrize(
    "arguments, code, message",
    [
        (["--help"], 0, "tfcompress demo"),
        ([], 2, "Usage:"),
        (["distill"], 2, "unknown command 'distill'"),
        (["demo", "extra"], 2, "takes no positional arguments"),
        (["inspect"], 2, "takes one argument: the .tflite file"),
        (["inspect", "missing.tflite"], 1, "No .tflite file at missing.tflite"),
        (["bench", "missing.tflite"], 1, "No .tflite file at missing.tflite"),
        (["bench", "m.tflite", "--threads=one"], 2, "--threads takes thread counts or 'all'"),
    ],
)
def test_usage_and_exit_codes(arguments, code, message):
    result = _tfcompress(*arguments)
    assert result.returncode == code
    assert message in result.stdout + result.stderr


def test_inspect_prints_io_ops_int8_share_and_delegation(quick_demo):
    output, _ = quick_demo
    result = _tfcompress("inspect", str(output / "model_int8.tflite"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert " input " in result.stdout and "output " in result.stdout
    assert "uint8 [1, 8, 8, 1], scale 0.00392" in result.stdout
    assert "CONV_2D" in result.stdout and "in int8: 100%" in result.stdout
    assert "not delegated to XNNPACK: none" in result.stdout


def test_bench_prints_latency_per_setting_and_sizes(quick_demo):
    output, _ = quick_demo
    result = _tfcompress("bench", str(output / "model_int8.tflite"), "--threads=1,2", "--runs=10")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "gzipped; batch 1" in result.stdout and "median ms" in result.stdout
    lines = [line.split() for line in result.stdout.splitlines()]
    settings = [line[:2] for line in lines if line[:1] in (["1"], ["2"])]
    assert settings == [["1", "yes"], ["2", "yes"], ["1", "no"], ["2", "no"]]
    assert "cores (" in result.stdout.splitlines()[0]  # the CPU, named


def test_bench_compares_several_files_side_by_side(quick_demo):
    output, _ = quick_demo
    files = [str(output / "model_int8.tflite"), str(output / "model_int8.tflite")]
    result = _tfcompress("bench", *files, "--threads=1", "--rounds=5")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "5 interleaved rounds" in result.stdout and "x faster than" in result.stdout
    assert "cannot be told apart" in result.stdout or "faster" in result.stdout


def test_inspect_and_bench_take_a_keras3_model_file(tmp_path):
    import keras as keras3

    model = keras3.Sequential([keras3.Input((8, 8, 1)), keras3.layers.Conv2D(4, 3), keras3.layers.Flatten(),
                               keras3.layers.Dense(1)])  # fmt: skip
    model.save(tmp_path / "user.keras")
    result = _tfcompress("inspect", "user.keras", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "user.keras: a Keras model file; this is its float32 .tflite" in result.stdout
    assert "float32 [1, 8, 8, 1]" in result.stdout and "CONV_2D" in result.stdout
    result = _tfcompress("bench", "user.keras", "--threads=1", "--runs=5", cwd=tmp_path)
    assert result.returncode == 0 and "median ms" in result.stdout, result.stderr[-3000:]
    assert sorted(os.listdir(tmp_path)) == ["user.keras"]  # the float32 file lived in a temporary folder
