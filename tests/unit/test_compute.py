"""The `compute:` block: reading it, resolving its device, the --device/--precision flags, the
stage cache keys and the validation refusals, without importing a framework."""

from __future__ import annotations

import pytest

from edgekit.backends.base import Backend
from edgekit.compute import CPU, Compute, cache_key
from edgekit.errors import InputError, RecipeError
from edgekit.recipe import parse_recipe
from edgekit.run.reuse import stage_keys, teacher_key
from edgekit.stages.prune import PruneConfig
from tests.helpers import run_edgekit, support_refusal

TEACHER = {"build": {"arch": "cnn_tiny"}, "framework": "torch"}


def _recipe(**extra):
    return parse_recipe({"version": 1, "teacher": TEACHER, "stages": [{"prune": {"sparsity": 0.5}}], **extra})


class _Sees(Backend):
    """A backend whose framework sees `count` GPUs; every other method is irrelevant here."""

    framework = "fake"

    def __init__(self, count: int):
        self.count = count
        self.asked = 0

    def gpus(self) -> int:
        self.asked += 1
        return self.count


_Sees.__abstractmethods__ = frozenset()


def test_the_default_block_is_float32_on_the_best_device():
    recipe = _recipe()
    assert (recipe.compute.device, recipe.compute.precision) == ("auto", "float32")
    assert _Sees(0).resolve_compute(recipe.compute) == CPU
    assert _Sees(2).resolve_compute(recipe.compute) == Compute("cuda:0", "float32")


def test_mixed_precision_is_bfloat16_on_the_cpu_and_float16_with_loss_scaling_on_a_gpu():
    on_cpu, on_gpu = Compute("cpu", "mixed"), Compute("cuda:1", "mixed")
    assert (on_cpu.compute_dtype, on_cpu.loss_scaling) == ("bfloat16", False)
    assert (on_gpu.compute_dtype, on_gpu.loss_scaling, on_gpu.on_gpu) == ("float16", True, True)
    assert Compute("cuda:0").compute_dtype == "float32"
    assert on_gpu.describe() == {"device": "cuda:1", "precision": "mixed", "workers": 1, "compute_dtype": "float16"}


def test_a_named_gpu_resolves_to_its_index_and_cpu_never_asks_the_framework():
    recipe = _recipe(compute={"device": "cuda:1", "precision": "mixed"})
    assert _Sees(2).resolve_compute(recipe.compute) == Compute("cuda:1", "mixed")
    assert _Sees(1).resolve_compute(_recipe(compute={"device": "cuda"}).compute).device == "cuda:0"
    backend = _Sees(4)
    assert backend.resolve_compute(_recipe(compute={"device": "cpu"}).compute) == CPU
    assert backend.asked == 0


def test_a_gpu_the_framework_does_not_see_is_refused_naming_the_key_and_the_count():
    recipe = _recipe(compute={"device": "cuda:1"})
    with pytest.raises(InputError, match=r"compute.device: cuda:1 was asked for, but fake sees 1 GPU here"):
        _Sees(1).resolve_compute(recipe.compute)
    with pytest.raises(InputError, match="sees no GPU"):
        _Sees(0).resolve_compute(_recipe(compute={"device": "cuda"}).compute)


@pytest.mark.parametrize("block, key, words", [
    ({"device": "gpu"}, "compute.device", "'gpu' is not a device"),
    ({"device": "cuda:x"}, "compute.device", "cuda:N"),
    ({"precision": "float16"}, "compute.precision", "float32"),
])
def test_bad_values_are_refused_when_the_recipe_is_read(block, key, words):
    with pytest.raises(RecipeError) as refused:
        _recipe(compute=block)
    assert key in str(refused.value) and words in str(refused.value)


def test_the_cache_keys_change_only_for_a_non_default_compute():
    default, on_cpu, mixed = _recipe(), _recipe(compute={"device": "cpu"}), _recipe(compute={"precision": "mixed"})
    assert cache_key(default.compute) == cache_key(on_cpu.compute) == []
    assert cache_key(_recipe(compute={"device": "cuda:0"}).compute) == [{"device": "cuda:0", "precision": "float32"}]

    class _Data:
        def fingerprint(self):
            return "same data"

    keys = {name: teacher_key(r, _Data(), "torch") for name, r in
            (("default", default), ("cpu", on_cpu), ("mixed", mixed))}
    assert keys["default"] == keys["cpu"] != keys["mixed"]
    assert stage_keys(default, "t") != stage_keys(mixed, "t")


def test_a_stage_that_cannot_train_in_mixed_precision_is_refused_at_validation(monkeypatch):
    monkeypatch.setattr(PruneConfig, "compute_refusals",
                        {"prune": {"torch": {"mixed": "the masks are bfloat16; set compute.precision: float32"}}})
    message = support_refusal(_recipe(compute={"precision": "mixed"}))
    assert "stages[0]" in message and "compute.precision: mixed" in message and "masks are bfloat16" in message
    assert support_refusal(_recipe(compute={"precision": "mixed"})) == message  # not only once
    from edgekit.recipe.support import check_support

    assert check_support(_recipe()) == "torch"  # float32 is not refused


def test_the_device_and_precision_flags_set_the_compute_block(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("version: 1\nteacher: {build: {arch: cnn_tiny}}\n")
    result = run_edgekit("compress", str(recipe), "--device", "tpu", "--no-cache", timeout=120)
    assert result.returncode == 2
    assert "compute.device" in result.stderr and "'tpu' is not a device" in result.stderr
    result = run_edgekit("compress", str(recipe), "--precision", "half", timeout=120)
    assert result.returncode == 2 and "half" in result.stderr
