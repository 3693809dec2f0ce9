"""The Transformer-encoder and recurrent families through `edgekit compress` in both frameworks
(issue 11): a zoo teacher built and trained on the digits, magnitude-pruned (attention and recurrent
weights included) and quantized to PTQ int8, measured as .tflite on LiteRT and .onnx on ONNX Runtime;
and the stages a family cannot take refused by `edgekit validate` and `compress` with exit 2, naming
the layer, before anything trains."""

from __future__ import annotations

import pytest

from tests.helpers import artifact_of, compressed_report, run_edgekit, stage_of

RECIPE = """version: 1
name: {arch}-{framework}
data: {{source: digits, scale: 0.0625, calibration_samples: 128}}
teacher:
  framework: {framework}
  build: {{arch: {arch}, width: 0.5}}
  train: {{epochs: 12, learning_rate: 0.003}}
stages:
{stages}
evaluate: {{latency: {{warmup: 2, runs: 20}}}}
"""
PRUNE_INT8 = "  - prune: {sparsity: 0.5, epochs: 3}\n  - quantize: {method: ptq, precision: int8}"
# the layers magnitude pruning must reach in each family (Keras layer names; torch module names)
PRUNED = {("transformer", "keras"): "multi_head_attention", ("transformer", "torch"): "encoder1.self_attn.in_proj",
          ("lstm", "keras"): "lstm", ("lstm", "torch"): "lstm.rnn.weight_hh_l0",
          ("gru", "keras"): "gru", ("gru", "torch"): "gru.rnn.weight_hh_l0"}


def _write(tmp_path, arch, framework, stages):
    recipe = tmp_path / f"{arch}-{framework}.yaml"
    recipe.write_text(RECIPE.format(arch=arch, framework=framework, stages=stages))
    return recipe


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["keras", "torch"])
@pytest.mark.parametrize("arch", ["transformer", "lstm", "gru"])
def test_the_family_prunes_and_quantizes_to_int8_on_both_runtimes(tmp_path, arch, framework):
    recipe = _write(tmp_path, arch, framework, PRUNE_INT8)
    report, teacher = compressed_report(recipe, tmp_path / "run")
    assert teacher["accuracy"] >= 0.85, teacher
    pruned = stage_of(report, "prune")["details"]["pruned_layers"]
    assert any(name.startswith(PRUNED[arch, framework]) for name in pruned), pruned
    for fmt in ("tflite", "onnx"):
        final, baseline = artifact_of(report, f"model.{fmt}"), artifact_of(report, f"baseline.{fmt}")
        assert final["accuracy"] >= teacher["accuracy"] - 0.03, (fmt, final, teacher)
        assert final["latency_ms"]["p50"] > 0 and final["bytes"] > 0, final
        print(arch, framework, fmt, f"accuracy {final['accuracy']:.3f} (teacher {teacher['accuracy']:.3f}),",
              f"bytes {final['bytes'] / baseline['bytes']:.2f}x, p50 "
              f"{final['latency_ms']['p50'] / baseline['latency_ms']['p50']:.2f}x float")


REFUSED = [
    ("keras", "transformer", "  - quantize: {method: qat}", r"quantize.qat \(.*\) cannot take the MultiHeadAttention layers"),
    ("keras", "lstm", "  - quantize: {method: qat}", r"quantize.qat \(.*\) cannot take the LSTM layers"),
    ("keras", "gru", "  - quantize: {method: qat}", r"quantize.qat \(.*\) cannot take the GRU layers"),
    ("torch", "transformer", "  - prune: {structure: channels}", r"prune \(channels.*\) cannot take the MultiheadAttention layers"),
    ("keras", "lstm", "  - prune: {structure: channels}", r"prune \(channels.*\) cannot take the LSTM layers"),
    ("torch", "gru", "  - prune: {structure: channels}", r"prune \(channels.*\) cannot take the GRU layers"),
    ("torch", "gru", "  - quantize: {method: qat}", r"quantize.qat \(.*\) cannot take the GRU layers"),
]


@pytest.mark.parametrize("framework, arch, stages, message", REFUSED)
def test_a_stage_the_family_cannot_take_exits_2_at_validation_naming_the_layer(tmp_path, framework, arch, stages,
                                                                                message):
    import re

    recipe = _write(tmp_path, arch, framework, stages)
    for command in (("validate", str(recipe)), ("compress", str(recipe), "--output", str(tmp_path / "run"))):
        result = run_edgekit(*command, cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert re.search(rf"stages\[0\]: {message} of the {arch} arch \({framework}\)", result.stderr), result.stderr
        assert not (tmp_path / "run").exists()
