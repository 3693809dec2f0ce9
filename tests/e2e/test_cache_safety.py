"""The stage cache holds no pickles and never unpickles one: a malicious pickle planted where an
entry's model file (or the teacher's outputs) would be is not executed; the run ignores the entry
with a warning, trains the step again and still passes."""

from __future__ import annotations

import json
import pickle

import pytest
import yaml

from tests.helpers import run_edgekit

pytestmark = pytest.mark.slow

MODEL_FILES = ("model.h5", "model.keras", "weights.pt", "model.pt2", "model.ts", "model.pt", "teacher_outputs.npy")


class _Exploit:
    """Unpickling this creates the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _recipe(tmp_path, framework: str):
    recipe = {
        "version": 1, "name": f"safety-{framework}", "seed": 0,
        "data": {"source": "digits", "scale": 0.0625, "validation_split": 0.1},
        "teacher": {"build": {"arch": "cnn_tiny", "width": 1.0},
                    "train": {"epochs": 2, "batch_size": 32, "learning_rate": 0.003}, "framework": framework},
        "stages": [{"prune": {"sparsity": 0.5, "epochs": 1}}, {"quantize": {"method": "ptq", "precision": "dynamic"}}],
        "export": {"formats": ["onnx"]},
        "evaluate": {"runtimes": ["onnxruntime"]},
    }
    path = tmp_path / f"{framework}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _plant(cache, marker) -> list:
    """Replace every model file of every entry (and the legacy torch `model/model.pt`) by the exploit."""
    payload = pickle.dumps(_Exploit(marker))
    planted = []
    for entry in cache.iterdir():
        for path in [p for p in entry.rglob("*") if p.name in MODEL_FILES]:
            path.write_bytes(payload)
            planted.append(path)
        if (entry / "model").is_dir():
            (entry / "model" / "model.pt").write_bytes(payload)
            planted.append(entry / "model" / "model.pt")
    return planted


@pytest.mark.parametrize("framework", ["keras", "torch"])
def test_a_planted_pickle_is_never_loaded(framework, tmp_path):
    recipe, cache, marker = _recipe(tmp_path, framework), tmp_path / "cache", tmp_path / "PWNED"
    first = run_edgekit("compress", str(recipe), "--output", str(tmp_path / "a"), "-q", "--cache-dir", str(cache))
    assert first.returncode == 0, first.stderr
    stored = sorted(p.name for p in cache.rglob("*") if p.is_file())
    assert not any(name.endswith((".pkl", ".pickle")) for name in stored), stored
    planted = _plant(cache, marker)
    assert any(p.parent.name == "model" for p in planted), planted

    second = run_edgekit("compress", str(recipe), "--output", str(tmp_path / "b"), "-q", "--cache-dir", str(cache))
    assert not marker.exists(), "a pickle planted in the stage cache was executed"
    assert second.returncode == 0, second.stderr
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert not any(s.get("cached") for s in report["stages"])  # every planted entry was refused
    ignored = [w for w in report["warnings"] if w.startswith("stage cache: ignored the entry")]
    assert ignored and all("which edgekit cannot read" in w for w in ignored), report["warnings"]


FACTORY = ["--set", "teacher.path=sample_models/digits_cnn_torch.pth",
           "--set", "teacher.factory=digits_torch_factory:build_model"]
PROGRAM = ["--set", "teacher.path=sample_models/digits_cnn_torch.pt2"]  # a dynamic, bounded batch


@pytest.mark.parametrize("teacher, prune, files", [
    (FACTORY, "{structure: channels, sparsity: 0.5, epochs: 2}", ["module.json", "weights.pt"]),
    (PROGRAM, "{sparsity: 0.5, epochs: 1}", ["model.pt2"]),
], ids=["factory-module-channels", "exported-program"])
def test_a_cached_torch_step_gives_the_same_files(teacher, prune, files, tmp_path):
    """A module of the teacher factory's class is cached as its state_dict and layer sizes and
    rebuilt by the recipe's factory (narrowed to the pruned sizes); an exported graph is cached as a
    torch.export program. Exporting again from the reused step gives the same files."""
    cache = tmp_path / "cache"
    args = ["compress", "recipes/quickstart.yaml", "-q", "--cache-dir", str(cache), *teacher,
            "--set", f"stages=[{{prune: {prune}}}]",
            "--set", "export.formats=[onnx]", "--set", "evaluate.runtimes=[onnxruntime]", "--set", "gates={}"]
    first = run_edgekit(*args, "--output", str(tmp_path / "a"))
    assert first.returncode == 0, first.stderr
    assert sorted(p.name for p in cache.rglob("model/*")) == files
    second = run_edgekit(*args, "--output", str(tmp_path / "b"), "--set", "export.bundle=false")  # exports again
    assert second.returncode == 0, second.stderr
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert [s["name"] for s in report["stages"] if s.get("cached")] == ["prune"] and not report["warnings"]
    assert (tmp_path / "a" / "model.onnx").read_bytes() == (tmp_path / "b" / "model.onnx").read_bytes()
