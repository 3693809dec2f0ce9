"""Quantization-aware training with TF-MOT, preserving what earlier stages made.

The scheme follows the artifact's history, as TF-MOT's collaborative optimization recommends:
prune + cluster → PCQAT, cluster → CQAT, prune → PQAT, otherwise the default 8-bit scheme. The
QAT model keeps its fake-quant ranges; the TFLite converter turns them into a full-integer model
and tf2onnx into QDQ nodes, so both files carry the trained quantization.

QAT trains in float32 on the run's device: TF-MOT's fake-quantization ops take float32 tensors only,
so `QuantizeConfig.compute_refusals` refuses `compute.precision: mixed` at validation.
"""

from __future__ import annotations

from edgekit.artifact import Artifact, QuantizationAware
from edgekit.backends.keras import train
from edgekit.backends.keras.compat import tfmot


def _scheme(artifact: Artifact):
    """(name, TF-MOT quantize scheme) for what earlier stages did."""
    mot = tfmot()
    combine = mot.experimental.combine
    pruned, clustered = bool(artifact.pruned), bool(artifact.clustered)
    if clustered:
        name = "PCQAT (sparsity- and cluster-preserving)" if pruned else "CQAT (cluster-preserving)"
        return name, combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=pruned)
    if pruned:
        return "PQAT (sparsity-preserving)", combine.Default8BitPrunePreserveQuantizeScheme()
    return "QAT (default 8-bit)", mot.quantization.keras.default_8bit.Default8BitQuantizeScheme()


@train.on_device
def qat(artifact: Artifact, config, ctx) -> Artifact:
    mot = tfmot().quantization.keras
    name, scheme = _scheme(artifact)
    annotated = mot.quantize_annotate_model(train.clone(artifact.model))
    with mot.quantize_scope():
        model = mot.quantize_apply(annotated, scheme)
    train.compile_and_fit(model, ctx.dataset, config.epochs, config.batch_size, config.learning_rate,
                          ctx.recipe.seed, ctx.progress.task, "quantization-aware training")
    return artifact.evolve("quantize", model=model, plan=config.plan(), qat=QuantizationAware(),
                           details={"scheme": name})
