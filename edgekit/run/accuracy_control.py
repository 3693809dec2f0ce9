"""Accuracy-controlled post-training quantization: `quantize: {method: ptq, max_drop: 0.01}`.

Like NNCF's `quantize_with_accuracy_control`, but on the shipped files: every candidate plan is
exported to every format of the recipe by the format's own export flow and run on the format's
default runtime, on the **validation split** (the test split never chooses anything). A plan meets
the target when, for every format, the file's metric is within `max_drop` of the float model's on
the same samples (accuracy points for classification, added MAE for regression).

The remedies are tried in order of cost, each starting from the best candidate so far, and the
search stops at the first plan that meets the target:
1. the plan as the recipe wrote it;
2. better calibration: the activation ranges chosen by the percentile and the entropy rule instead
   of the recipe's (`Plan.calibration`, `edgekit.precision.CALIBRATIONS`);
3. cross-layer equalization of the float weights (`Backend.equalize`, `edgekit.equalization`):
   same function, channel ranges balanced, still all int8. Equalization changes the activation
   ranges the calibration rules clip, so it is tried under every rule: the recipe's first, then the
   others in order of the drop they reached in step 2;
4. bias correction (`Backend.correct_bias`, `edgekit.bias_correction`): each layer's bias shifted
   by the expected error of its int8 weights on the calibration samples;
5. int16x8 on the k layers whose quantization alone costs most (the sensitivity ranking: each
   layer quantized with every other layer float, on the validation split), for k = 1, 2, ...;
6. float on the k most sensitive layers, for k = 1, 2, ...
Remedies 2 to 4 are kept only when they lower the drop; 5 and 6 start from the best plan of 1 to 4.
It never ends empty: when no plan meets the target, the one with the smallest drop ships and the
gates decide. Every attempt (plan, drop per format, bytes, p50) is recorded in the quantize stage's
details as `accuracy_control`, and so reaches report.json and the report pages.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from edgekit.artifact import Artifact
from edgekit.errors import InputError
from edgekit.formats.base import ExportOptions
from edgekit.formats.registry import get_format
from edgekit.layouts import to_layout
from edgekit.precision import CALIBRATIONS, FLOAT_LAYER

MAX_LAYERS = 6  # remedies 5 and 6 try at most this many of the most sensitive layers
WHOLE_MODEL_REMEDIES = 2 * len(CALIBRATIONS)  # remedies 2 to 4: other calibrations, equalization under each, bias correction
LATENCY = {"warmup": 3, "runs": 30, "batch": 1}


@dataclass
class Candidate:
    """One plan tried: what it is, the artifact that realizes it and what its files measured."""

    name: str
    artifact: Artifact
    figures: dict  # format -> {"metric", "drop", "bytes", "p50_ms"}

    @property
    def drop(self) -> float:
        return max(f["drop"] for f in self.figures.values())

    def record(self) -> dict:
        plan = self.artifact.plan
        return {"attempt": self.name, "plan": {"precision": plan.precision, "calibration": plan.calibration,
                                               "layers": dict(plan.layers)},
                "drop": round(self.drop, 5), "formats": self.figures}


class Search:
    """Exports and measures candidates of one run on its validation split."""

    def __init__(self, ctx):
        data, recipe = ctx.dataset, ctx.recipe
        if len(data.x_val) == 0:
            raise InputError(f"{recipe.where('stages')}: quantize.max_drop and edgekit analyze measure plans on "
                             "the validation split, which is empty; set data.validation_split above 0")
        self.ctx, self.task = ctx, recipe.task
        self.metric = "accuracy" if self.task == "classification" else "mae"
        self.directory = tempfile.TemporaryDirectory(prefix="edgekit-max-drop-")
        self.options = ExportOptions(calibration=data.x_calib, sparse=recipe.export.sparse,
                                     channels_last=bool(recipe.export.channels_last),
                                     threads=recipe.evaluate.latency.threads)
        self.count = 0

    def float_metric(self, artifact: Artifact) -> float:
        from edgekit.evaluate import METRICS

        outputs = self.ctx.backend.predict(artifact.model, self.ctx.dataset.x_val)
        return float(METRICS[self.task](outputs, self.ctx.dataset.y_val)[self.metric])

    def measure(self, name: str, artifact: Artifact, reference: float, timed: bool = True) -> Candidate:
        """Export `artifact` to every recipe format and measure each file on the validation split."""
        from edgekit.evaluate import measure_file

        data, figures = self.ctx.dataset, {}
        for fmt_name in self.ctx.recipe.export.formats:
            fmt = get_format(fmt_name)
            self.count += 1
            path = Path(self.directory.name) / f"candidate{self.count}{fmt.suffix}"
            fmt.export(artifact, path, self.options, {}, {})
            x = to_layout(data.x_val, fmt.writer(artifact.framework).input_layout(self.options.channels_last))
            found = measure_file(path, fmt.default_runtime, x, data.y_val, self.task,
                                 latency_cfg=LATENCY if timed else None, threads=self.options.threads)
            value = float(found[self.metric])
            drop = reference - value if self.metric == "accuracy" else value - reference
            figures[fmt_name] = {self.metric: round(value, 5), "drop": round(drop, 5), "bytes": found["bytes"],
                                 "p50_ms": (found.get("latency_ms") or {}).get("p50")}
            path.unlink(missing_ok=True)
        return Candidate(name, artifact, figures)

    def close(self) -> None:
        self.directory.cleanup()


def _with_layers(artifact: Artifact, layers: dict) -> Artifact:
    return replace(artifact, plan=artifact.plan.with_layers({**dict(artifact.plan.layers), **layers}))


def sensitivity(search: Search, artifact: Artifact, reference: float) -> list[dict]:
    """Each layer's drop when it alone is quantized (every other layer float), largest first."""
    layers = search.ctx.backend.weight_layers(artifact.model)
    rows = []
    for layer in layers:
        alone = replace(artifact, plan=artifact.plan.quantizing_only(layer, layers))
        found = search.measure(f"only {layer} quantized", alone, reference, timed=False)
        rows.append({"layer": layer, "drop": round(found.drop, 5)})
    return sorted(rows, key=lambda r: -r["drop"])


def control(artifact: Artifact, max_drop: float, ctx) -> Artifact:
    """The artifact of the first plan whose files meet `max_drop`, else of the one closest to it; its
    details carry the search (see the module docstring)."""
    search = Search(ctx)
    attempts: list[Candidate] = []
    ranking: list[dict] = []
    try:
        reference = search.float_metric(artifact)
        best = search.measure("as planned", artifact, reference)
        with ctx.progress.task(f"max_drop {max_drop:g}: plans tried on the validation split", MAX_LAYERS * 2 + WHOLE_MODEL_REMEDIES + 1) as done:
            def tried(candidate: Candidate) -> bool:
                attempts.append(candidate)
                per_format = ", ".join(f"{k} {v['drop']:.4f}" for k, v in candidate.figures.items())
                ctx.progress.message(f"  {candidate.name}: drop {candidate.drop:.4f} ({per_format})")
                done(1, drop=candidate.drop)
                return candidate.drop <= max_drop

            if not tried(best):
                best = _remedies(search, artifact, reference, best, tried, ranking)
    finally:
        search.close()
    chosen = best
    record = {"max_drop": max_drop, "split": "validation", "float_" + search.metric: round(reference, 5),
              "met": chosen.drop <= max_drop, "chosen": chosen.name,
              "attempts": [a.record() for a in attempts], "sensitivity": ranking}
    details = {**dict(chosen.artifact.details), "accuracy_control": record}
    if chosen.artifact.plan.layers:
        details["layers"] = dict(chosen.artifact.plan.layers)
    return replace(chosen.artifact, details=details)


def _remedies(search: Search, artifact: Artifact, reference: float, best: Candidate, tried, ranking: list) -> Candidate:
    """Remedies 2-6 of the module docstring; returns the first candidate that meets the target, else
    the best one."""
    backend, plan = search.ctx.backend, artifact.plan

    def attempt(name: str, candidate_artifact: Artifact) -> tuple[Candidate, bool]:
        """Measure one candidate: (it, whether it meets the target); it becomes the best when it lowers
        the drop."""
        nonlocal best
        candidate = search.measure(name, candidate_artifact, reference)
        met = tried(candidate)
        if not met and candidate.drop < best.drop:
            best = candidate
        return candidate, met

    drops = {plan.calibration: best.drop}
    for calibration in (c for c in CALIBRATIONS if c != plan.calibration):
        candidate, met = attempt(f"{calibration} calibration", replace(artifact, plan=plan.with_calibration(calibration)))
        if met:
            return candidate
        drops[calibration] = candidate.drop
    equalized, records = backend.equalize(artifact.model)
    if records:
        details = {**dict(artifact.details), "equalized": records}
        for calibration in sorted(drops, key=lambda c: (c != plan.calibration, drops[c])):
            name = "cross-layer equalization" + ("" if calibration == plan.calibration else f", {calibration} calibration")
            candidate, met = attempt(name, replace(artifact, model=equalized, plan=plan.with_calibration(calibration),
                                                     details=details))
            if met:
                return candidate
    start = best.artifact
    model, records = backend.correct_bias(start.model, search.ctx.dataset.x_calib, start.plan.per_channel)
    if records:
        candidate, met = attempt("bias correction",
                                 replace(start, model=model, details={**dict(start.details), "bias_corrected": records}))
        if met:
            return candidate
    base = best.artifact
    ranking.extend(sensitivity(search, base, reference))
    order = [row["layer"] for row in ranking if row["drop"] > 0][:MAX_LAYERS]
    precisions = [p for p in ("int16x8", FLOAT_LAYER) if p != base.plan.precision]
    for precision in precisions:
        for k in range(1, len(order) + 1):
            layers = {layer: precision for layer in order[:k]}
            candidate, met = attempt(f"{precision} on the {k} most sensitive layer{'s' if k > 1 else ''}",
                                     _with_layers(base, layers))
            if met:
                return candidate
    return best
