"""The order of `quantize.max_drop`'s remedies and what each starts from (edgekit.run.accuracy_control),
with the export-and-measure step replaced by a table of drops, so no framework is imported. The
real files are measured by tests/contract/test_accuracy_control.py."""

from dataclasses import replace
from types import SimpleNamespace

import pytest

from edgekit.artifact import Artifact
from edgekit.precision import plan_for
from edgekit.progress import Progress
from edgekit.run import accuracy_control

EQUALIZED = "equalized model"


def _key(artifact: Artifact) -> tuple:
    plan = artifact.plan
    return (artifact.model, plan.calibration, "bias" if "bias_corrected" in artifact.details else "",
            tuple(plan.layers))


class FakeSearch:
    """Stands for accuracy_control.Search: a candidate's drop is looked up by (model, calibration,
    bias corrected, layers); anything not in the table drops 0.2."""

    metric = "accuracy"

    def __init__(self, drops: dict):
        self.drops, self.measured = drops, []
        self.ctx = SimpleNamespace(backend=FakeBackend(), dataset=SimpleNamespace(x_calib=None))

    def __call__(self, ctx):
        return self

    def float_metric(self, artifact):
        return 0.9

    def measure(self, name, artifact, reference, timed=True):
        self.measured.append((name, _key(artifact)))
        drop = self.drops.get(_key(artifact), 0.2)
        return accuracy_control.Candidate(name, artifact, {"onnx": {"accuracy": reference - drop, "drop": drop,
                                                                    "bytes": 1, "p50_ms": 1.0}})

    def close(self):
        pass


class FakeBackend:
    def equalize(self, model):
        return EQUALIZED, [{"pair": ["a", "b"]}]

    def correct_bias(self, model, samples, per_channel):
        return model, [{"layer": "a"}]

    def weight_layers(self, model):
        return ["a", "b", "c"]


def _control(monkeypatch, drops: dict, max_drop: float = 0.01) -> tuple[Artifact, list]:
    search = FakeSearch(drops)
    monkeypatch.setattr(accuracy_control, "Search", search)
    ctx = SimpleNamespace(progress=Progress(quiet=True))
    artifact = Artifact("keras", "model", plan=plan_for("int8", "int8"))
    chosen = accuracy_control.control(artifact, max_drop, ctx)
    return chosen, [name for name, _ in search.measured]


def test_equalization_is_tried_under_every_calibration_rule_the_recipe_s_first(monkeypatch):
    """Entropy calibration alone lowers the drop most but equalized weights meet the target only
    with min/max ranges: the search still finds that plan (the held-out benchmark model of issue 12)."""
    drops = {("model", "minmax", "", ()): 0.15, ("model", "percentile", "", ()): 0.16,
             ("model", "entropy", "", ()): 0.014, (EQUALIZED, "entropy", "", ()): 0.02,
             (EQUALIZED, "minmax", "", ()): 0.05, (EQUALIZED, "percentile", "", ()): 0.0}
    chosen, names = _control(monkeypatch, drops)

    assert names == ["as planned", "percentile calibration", "entropy calibration", "cross-layer equalization",
                     "cross-layer equalization, entropy calibration",
                     "cross-layer equalization, percentile calibration"]
    record = chosen.details["accuracy_control"]
    assert record["met"] and record["chosen"] == names[-1]
    assert chosen.model == EQUALIZED and chosen.plan.calibration == "percentile" and "equalized" in chosen.details


def test_bias_correction_and_layer_precisions_start_from_the_best_whole_model_plan(monkeypatch):
    """No whole-model remedy meets the target: bias correction starts from the lowest drop so far
    (equalized, entropy) and the per-layer plans from the best after it."""
    drops = {("model", "minmax", "", ()): 0.15, ("model", "entropy", "", ()): 0.03,
             (EQUALIZED, "entropy", "", ()): 0.02, (EQUALIZED, "entropy", "bias", ()): 0.015,
             (EQUALIZED, "entropy", "bias", (("b", "int16x8"),)): 0.012,
             (EQUALIZED, "entropy", "bias", (("a", "int16x8"), ("b", "int16x8"))): 0.004}
    # the sensitivity ranking: "b" alone costs most, then "a"; "c" costs nothing
    for layer, drop in (("a", 0.01), ("b", 0.02), ("c", 0.0)):
        others = tuple(sorted((other, "float") for other in "abc" if other != layer))
        drops[(EQUALIZED, "entropy", "bias", others)] = drop
    chosen, names = _control(monkeypatch, drops)

    assert names[names.index("bias correction") - 1] == "cross-layer equalization, percentile calibration"
    assert chosen.details["accuracy_control"]["chosen"] == "int16x8 on the 2 most sensitive layers"
    assert [row["layer"] for row in chosen.details["accuracy_control"]["sensitivity"]] == ["b", "a", "c"]
    assert chosen.model == EQUALIZED and chosen.plan.calibration == "entropy" and "bias_corrected" in chosen.details
    assert dict(chosen.plan.layers) == {"a": "int16x8", "b": "int16x8"}


@pytest.mark.parametrize("max_drop", [0.0, 0.001])
def test_when_nothing_meets_the_target_the_smallest_drop_ships(monkeypatch, max_drop):
    drops = {("model", "entropy", "", ()): 0.03, (EQUALIZED, "minmax", "", ()): 0.025}
    chosen, names = _control(monkeypatch, drops, max_drop)

    record = chosen.details["accuracy_control"]
    assert not record["met"] and record["chosen"] == "cross-layer equalization"
    assert len(names) == len(set(names)) == len(record["attempts"]) + 3  # + the 3 layers' sensitivity
    assert replace(chosen, details={}).model == EQUALIZED
