"""benchmarks/op_profile.py profiles a float file and its int8 version op by op, on both runtimes.

The tiny dense classifier of tests/contract/models.py (float and int8, made here) goes through the
script's `main`; the printed table and the JSON must name the ops each runtime really runs: on ONNX
Runtime (Fused)Gemm on the float side and the fused integer op (QGemm) with QuantizeLinear on the int8 side,
from ORT's profiler; on LiteRT FULLY_CONNECTED on both sides, every op of the file timed alone, with
a measured p50 with and without the XNNPACK delegate. A profiler that stops reporting nodes, or an
isolation that stops timing ops, fails here.
"""

from __future__ import annotations

import importlib.util
import json

import pytest

from tests.contract.models import onnx_models, tflite_models
from tests.helpers import ROOT


def _op_profile():
    spec = importlib.util.spec_from_file_location("op_profile", ROOT / "benchmarks" / "op_profile.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(files, tmp_path, capsys) -> tuple[str, dict]:
    out = tmp_path / "profile.json"
    assert _op_profile().main([str(files["float"]), str(files["int8"]), "--runs", "20", "--warmup", "2",
                               "--out", str(out)]) == 0
    return capsys.readouterr().out, json.loads(out.read_text())


def _row(table: str, op: str) -> list[str]:
    """The cells of the op-type table row of `op`."""
    line = next(line for line in table.splitlines() if line.startswith(f"| {op} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_onnx_profile_names_the_float_and_the_integer_kernels(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    printed, result = _run(onnx_models(tmp_path).files, tmp_path, capsys)
    float_ops, int8_ops = set(result["float"]["ops"]), set(result["int8"]["ops"])
    # the optimized graphs: fc1 + Relu fused into FusedGemm; in the int8 file each QDQ Gemm fused into QGemm
    assert {"FusedGemm", "Gemm", "Softmax"} <= float_ops and not float_ops & {"QGemm", "QuantizeLinear"}
    assert {"QGemm", "QuantizeLinear", "QLinearSoftmax"} <= int8_ops and not int8_ops & {"Gemm", "FusedGemm"}
    for side in ("float", "int8"):
        assert result[side]["profiled_runs"] == 20 and result[side]["p50_us"] > 0
        assert all(agg["us"] >= 0 and agg["nodes"] >= 1 for agg in result[side]["ops"].values())
        assert len(result[side]["nodes"]) == sum(agg["nodes"] for agg in result[side]["ops"].values())
    gemm, qgemm = _row(printed, "Gemm"), _row(printed, "QGemm")
    assert gemm[1] == "1" and gemm[4] == "-"  # one float Gemm node (fc2), none left in the int8 graph
    assert qgemm[1] == "-" and qgemm[4] == "2"
    assert "profiled total per run" in printed and result["table"] in printed


def test_tflite_profile_times_every_op_alone(tmp_path, capsys):
    pytest.importorskip("ai_edge_litert")
    models = tflite_models(tmp_path)
    printed, result = _run({"float": models.files["float"], "int8": models.files["int8"]}, tmp_path, capsys)
    for side in ("float", "int8"):
        prof = result[side]
        assert prof["p50_us"] > 0 and prof["p50_builtin_us"] > 0 and not prof["errors"]
        assert prof["ops"]["FULLY_CONNECTED"]["nodes"] == 2 and prof["ops"]["FULLY_CONNECTED"]["builtin_us"] > 0
        assert prof["isolated_sum_auto_us"] > 0 and prof["undelegated_ops"] is not None
        assert set(prof["ops"]) == {"FULLY_CONNECTED", "SOFTMAX"}  # int8 I/O: no QUANTIZE at the edges
    assert _row(printed, "FULLY_CONNECTED")[5] == "2/2"  # XNNPACK takes each float FC, alone too
    assert "builtin kernels only" in printed
