"""The report: aligned and Markdown tables, JSON and plots written atomically, TensorBoard scalars."""

import json
import os

import pytest

from tfcompress import report

PNG = b"\x89PNG\r\n\x1a\n"
ROWS = [
    {"stage": "teacher", "seconds": 12.5, "parameters": 416266, "nonzero_parameters": 416266, "keras_accuracy": 0.98,
     "tflite_bytes": 1668160, "gzip_bytes": 1540398, "tflite_accuracy": 0.98, "latency_ms": 0.073,
     "layers": [{"layer": "dense", "parameters": 10, "zeros": 0, "sparsity": 0.0}]},
    {"stage": "qat", "seconds": 6.0, "parameters": 105226, "nonzero_parameters": 21243, "keras_accuracy": 0.975,
     "tflite_bytes": None, "gzip_bytes": None, "tflite_accuracy": None, "latency_ms": None,
     "layers": [{"layer": "dense", "parameters": 10, "zeros": 8, "sparsity": 0.8}]},
]  # fmt: skip


def test_the_text_table_aligns_numbers_right_and_leaves_missing_cells_empty():
    lines = report.format_table(ROWS, report.STAGE_COLUMNS).splitlines()
    assert lines[0].split()[:3] == ["stage", "seconds", "parameters"]
    assert set(lines[1]) == {"-", " "} and len({len(line) for line in lines}) == 1
    assert "416,266" in lines[2] and "1,668,160" in lines[2] and "0.073" in lines[2]
    assert lines[3].startswith("qat ") and lines[3].rstrip().endswith("0.975")


def test_the_markdown_table_has_a_row_per_stage():
    markdown = report.format_markdown(ROWS, report.STAGE_COLUMNS).splitlines()
    assert markdown[0].startswith("| stage | seconds |") and markdown[1].startswith("|---|---:|")
    assert markdown[2].startswith("| teacher | 12.500 | 416,266 |") and "|  |" in markdown[3]


def test_write_all_writes_json_markdown_and_plots_and_never_replaces_them(tmp_path):
    paths = {key: str(tmp_path / name) for key, name in report.REPORT_FILES.items()}
    content = {"rows": ROWS, "widths": {"conv": [32, 16], "dense": [64, 0]}, "files": {"model": "m.tflite"}}
    written = report.write_all(content, paths)
    assert set(written) == set(report.REPORT_FILES)
    for key in ("accuracy_vs_size", "sparsity", "latency", "widths"):
        assert open(written[key], "rb").read(8) == PNG
    saved = json.loads(open(written["json"]).read())
    assert saved["rows"][0]["stage"] == "teacher" and saved["files"]["markdown"] == written["markdown"]
    with pytest.raises(FileExistsError):
        report.write_all(content, paths)
    assert sorted(os.listdir(tmp_path)) == sorted(report.REPORT_FILES.values())  # no temporary file left


def test_log_stages_writes_one_scalar_event_file(tmp_path):
    report.log_stages(ROWS, tmp_path)
    assert [name.startswith("events.out.tfevents") for name in os.listdir(tmp_path / "stages")] == [True]
