"""Honest flags through the CLI (issue 11, point 5): a Keras LSTM whose int8 files do not pay off is
flagged in report.json, report.md, report.html and the console (--json: tests/unit/test_flags.py),
naming the ops and the alternatives measured on the same runtime; a CNN's int8 .tflite is flagged
only where it does not pay off on this CPU."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import (artifact_of, band_dataset, bump_dataset, read_report, recurrent_classifier,
                           run_edgekit)

pytestmark = pytest.mark.slow


def _recipe(tmp_path, name: str, model: str, formats: str) -> str:
    recipe = tmp_path / f"{name}.yaml"
    recipe.write_text(f"version: 1\nname: {name}\n"
                      "data: {source: npz, path: data.npz, calibration_samples: 64}\n"
                      f"teacher: {{path: {model}}}\n"
                      "stages: [{quantize: {method: ptq, precision: int8}}]\n"
                      f"export: {{formats: [{formats}]}}\n"
                      "evaluate: {latency: {warmup: 3, runs: 30}}\n")
    return str(recipe)


def _save_data(tmp_path, data) -> None:
    np.savez(tmp_path / "data.npz", x_train=data.x_train, y_train=data.y_train, x_test=data.x_test,
             y_test=data.y_test)


def test_an_lstm_whose_int8_files_do_not_pay_off_is_flagged_with_ops_and_alternatives(tmp_path):
    data = bump_dataset(n=500)
    _save_data(tmp_path, data)
    recurrent_classifier("LSTM", data).save(tmp_path / "lstm.keras")
    out, cache = tmp_path / "run", str(tmp_path / "cache")
    recipe = _recipe(tmp_path, "lstm", "lstm.keras", "tflite, onnx")
    result = run_edgekit("compress", recipe, "--output", str(out), "--cache-dir", cache, "-q")
    assert result.returncode == 0, result.stderr + result.stdout
    report = read_report(out)

    flagged = [a for a in report["artifacts"] if a.get("flags")]
    for entry in (a for a in report["artifacts"] if a["role"] == "final"):  # flagged exactly when it does not pay off
        baseline = artifact_of(report, f"baseline.{entry['format']}")
        assert bool(entry.get("flags")) == (entry["bytes"] > baseline["bytes"] or
                                            entry["latency_ms"]["p50"] >= baseline["latency_ms"]["p50"])
    assert flagged, [(a["name"], a.get("bytes"), a.get("latency_ms")) for a in report["artifacts"]]
    for entry in flagged:
        flags = entry["flags"]
        baseline = artifact_of(report, flags["baseline"])
        for kind in flags["kinds"]:  # each kind is what the two measured entries say
            assert kind["kind"] in ("larger", "not_faster")
            measured = entry["bytes"] if kind["unit"] == "bytes" else entry["latency_ms"]["p50"]
            assert kind["value"] == measured and kind["ratio"] >= 1.0
        # the ops that run in float, or outside the runtime's fast kernels, are named; when every op runs
        # integer kernels (an .onnx LSTM as DynamicQuantizeLSTM), the file's own ops are
        ops = [o["op"] for o in flags["float_ops"] + flags.get("runtime_ops", [])] or [o["op"] for o in flags["ops"]]
        assert ops, flags
        alternatives = flags["alternatives"]
        measured = {c["precision"]: c for c in alternatives["candidates"] if "error" not in c}
        assert {"float32", "int8"} <= set(measured) and len(measured) >= 3, alternatives
        assert measured["float32"]["p50_ratio"] == 1.0 and measured["int8"]["shipped"]
        assert all(c["p50_ms"] > 0 and c["bytes"] > 0 and c["accuracy"] is not None for c in measured.values())
        assert alternatives["runtime"] == entry["runtime"] and alternatives["samples"] == len(data.x_test)

        markdown = (out / "report.md").read_text()
        assert "## Flags" in markdown and f"**{entry['name']} (int8) on {entry['runtime']}" in markdown
        assert "Measured alternatives (the same model" in markdown and ops[0] in markdown
        assert ops[0] in (out / "report.html").read_text()
        assert f"flag {entry['name']} (int8) on {entry['runtime']}" in result.stdout and ops[0] in result.stdout

    # served from the stage cache, the run rebuilds the final model to measure the alternatives again
    again = run_edgekit("compress", recipe, "--output", str(tmp_path / "again"), "--cache-dir", cache, "-q")
    assert again.returncode == 0, again.stderr + again.stdout
    rerun = read_report(tmp_path / "again")
    assert any(s.get("cached") for s in rerun["stages"])
    reflagged = [a for a in rerun["artifacts"] if a.get("flags")]
    assert reflagged
    for entry in reflagged:
        measured = [c for c in entry["flags"]["alternatives"]["candidates"] if "error" not in c]
        assert len(measured) >= 3, entry["flags"]["alternatives"]


def test_a_tiny_dense_model_whose_int8_onnx_is_larger_than_float_is_flagged(tmp_path):
    from edgekit.backends.keras.compat import keras

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 8)).astype("float32")
    y = x[:, :3].argmax(1)
    np.savez(tmp_path / "data.npz", x_train=x[:240], y_train=y[:240], x_test=x[240:], y_test=y[240:])
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.save(tmp_path / "dense.keras")
    out = tmp_path / "run"
    result = run_edgekit("compress", _recipe(tmp_path, "dense", "dense.keras", "onnx"), "--output", str(out), "-q")
    assert result.returncode == 0, result.stderr + result.stdout
    final = artifact_of(read_report(out), "model.onnx")

    flags = final["flags"]  # 27 weights: the scales, zero points and Q/DQ nodes outweigh them
    larger = next(k for k in flags["kinds"] if k["kind"] == "larger")
    assert larger["ratio"] > 1.5 and larger["value"] == final["bytes"]
    dense_op = next(o["op"] for o in flags["ops"] if o["op"] in ("Gemm", "MatMul"))  # the file's ops are named
    assert flags["float_ops_from"] == "onnxruntime optimized graph"
    measured = {c["precision"]: c for c in flags["alternatives"]["candidates"] if "error" not in c}
    assert set(measured) == {"float32", "int8", "dynamic", "float16"}, flags["alternatives"]
    assert measured["int8"]["bytes"] == final["bytes"] and measured["int8"]["bytes_ratio"] > 1.5
    assert "is larger than its float baseline" in (out / "report.md").read_text()
    assert "flag model.onnx (int8) on onnxruntime is larger than its float baseline" in result.stdout
    assert f"{dense_op} x1" in result.stdout and "Measured alternatives" in result.stdout


def test_a_cnn_int8_tflite_is_flagged_exactly_when_it_does_not_pay_off(tmp_path):
    """A small CNN's int8 .tflite is smaller, and faster where XNNPACK's int8 kernels beat its float
    ones (VNNI CPUs: no flag). On an x86 CPU without VNNI (AVX2 only) it measured 1.4x slower than
    float: then it must be flagged `not_faster`, with the measured ratio."""
    from edgekit.backends.keras.compat import keras

    data = band_dataset(n=300, shape=(32, 32, 1))
    _save_data(tmp_path, data)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((32, 32, 1)), keras.layers.Conv2D(32, 3, activation="relu"),
                              keras.layers.Conv2D(64, 3, activation="relu"), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(4, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(data.x_train, data.y_train, epochs=2, verbose=0)
    model.save(tmp_path / "cnn.keras")
    out = tmp_path / "run"
    result = run_edgekit("compress", _recipe(tmp_path, "cnn", "cnn.keras", "tflite"), "--output", str(out), "-q")
    assert result.returncode == 0, result.stderr + result.stdout
    report = read_report(out)

    final, baseline = artifact_of(report, "model.tflite"), artifact_of(report, "baseline.tflite")
    ratio = final["latency_ms"]["p50"] / baseline["latency_ms"]["p50"]
    assert final["bytes"] < baseline["bytes"]
    markdown = (out / "report.md").read_text()
    if ratio < 1.0:
        assert "flags" not in final
        assert "## Flags" not in markdown and "flag " not in result.stdout
    else:
        (flag,) = final["flags"]["kinds"]
        assert flag["kind"] == "not_faster" and flag["ratio"] == pytest.approx(ratio, abs=1e-3), flag
        assert "## Flags" in markdown and "flag model.tflite (int8) on litert" in result.stdout
