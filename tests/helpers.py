"""Shared test helpers: where the repository and the third-party models are, and a CLI runner.

Imported as `tests.helpers` (the repository root is on pytest's pythonpath)."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_MODELS = ROOT.parent / "shared" / "models"


def shared_model(relative: str) -> Path:
    """A file under ../shared/models, or a clean skip when that folder is not beside the repo."""
    path = SHARED_MODELS / relative
    if not path.exists():
        pytest.skip(f"third-party model {relative} not found under {SHARED_MODELS} (the shared folder is absent)")
    return path


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> dict:
        return json.loads(self.stdout)


def run_edgekit(*args: str, cwd: Path = ROOT, timeout: int = 600) -> CliResult:
    """Run `edgekit ARGS` in a fresh process, as a user would, and capture everything it prints."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEKIT_")}
    # A fresh stage cache per call: tests measure real training unless they share a --cache-dir.
    with tempfile.TemporaryDirectory(prefix="edgekit-test-cache-") as cache:
        env["EDGEKIT_CACHE_DIR"] = cache
        proc = subprocess.run([sys.executable, "-m", "edgekit.cli", *args], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=timeout)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def read_report(out: Path) -> dict:
    """The report.json of the run directory `out`."""
    return json.loads((Path(out) / "report.json").read_text())


def artifact_of(report: dict, name: str) -> dict:
    """The report's entry for the artifact called `name` ("teacher", "model.tflite", ...)."""
    return next(a for a in report["artifacts"] if a["name"] == name)


def stage_of(report: dict, name: str) -> dict:
    """The report's entry for the stage called `name` ("distill", "quantize", ...)."""
    return next(s for s in report["stages"] if s["name"] == name)


def band_dataset(n=400, shape=(8, 8, 1), classes=4, seed=0, task="classification", validation=0.1, noise=0.1):
    """A separable toy problem built in code (NHWC float32): the class is which vertical band of the
    image is bright (+1 over Gaussian noise of std `noise`); for regression the target is the mean
    pixel. 20% test, `validation` of n held out."""
    import numpy as np

    from edgekit.data import Dataset

    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, size=n)
    x = rng.normal(0, noise, size=(n,) + tuple(shape)).astype(np.float32)
    band = shape[1] // classes
    for i, label in enumerate(y):
        x[i, :, label * band:(label + 1) * band] += 1.0
    if task == "regression":
        y = x.reshape(n, -1).mean(axis=1).astype(np.float32)
    a, b = int(round((0.8 - validation) * n)), int(round(0.8 * n))
    return Dataset(x[:a], y[:a], x[a:b], y[a:b], x[b:], y[b:], x[:64], task=task)


def colour_dataset(n=300, side=32, seed=0, validation=0.1):
    """RGB images (n, side, side, 3) in [0, 1] whose class (0, 1, 2) is the colour channel that is
    brighter (by 0.5, over uniform noise in [0.1, 0.4]): what an ImageNet base separates at once. 20% test."""
    import numpy as np

    from edgekit.data import Dataset

    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    x = rng.uniform(0.1, 0.4, size=(n, side, side, 3)).astype(np.float32)
    x[np.arange(n), :, :, y] += 0.5
    a, b = int(round((0.8 - validation) * n)), int(round(0.8 * n))
    return Dataset(x[:a], y[:a], x[a:b], y[a:b], x[b:], y[b:], x[:64], task="classification")


def save_pretrained_mobilenet_v2(path, width, data=None, seed=1) -> dict:
    """A stand-in for ImageNet weights (no network): a keras.applications MobileNetV2 base
    (include_top=False, 32x32x3) saved as the 'no top' HDF5 that keras.applications loads; returns
    {layer name: weights}. With `data`, the base first trains 3 epochs with a temporary head
    (BatchNorm momentum lowered so that its statistics settle in so few steps), which makes it a
    feature extractor for that data, as an ImageNet base is for photos."""
    from edgekit.backends.keras.compat import keras

    keras.utils.set_random_seed(seed)
    base = keras.applications.MobileNetV2(input_shape=(32, 32, 3), include_top=False, weights=None, alpha=width)
    if data is not None:
        for layer in base.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = 0.5
        head = keras.layers.Dense(data.num_classes)(keras.layers.GlobalAveragePooling2D()(base.output))
        model = keras.Model(base.input, head)
        model.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(data.x_train, data.y_train, epochs=3, batch_size=32, verbose=0)
    base.save_weights(str(path))
    return {layer.name: layer.get_weights() for layer in base.layers if layer.get_weights()}


def bump_dataset(n=360, steps=12, features=3, classes=3, seed=0):
    """Sequences (n, steps, features) of Gaussian noise; the class is which third of the time steps
    carries a +1 bump. 20% test, 10% validation, the first 64 samples for calibration."""
    import numpy as np

    from edgekit.data import Dataset

    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, size=n)
    x = rng.normal(0, 0.3, size=(n, steps, features)).astype(np.float32)
    window = steps // classes
    for i, label in enumerate(y):
        x[i, label * window:(label + 1) * window] += 1.0
    a, b = int(0.7 * n), int(0.8 * n)
    return Dataset(x[:a], y[:a], x[a:b], y[a:b], x[b:], y[b:], x[:64], task="classification")


def recurrent_classifier(layer: str, data, epochs: int = 15):
    """A trained `layer` ("LSTM" | "GRU", 16 units) + softmax classifier of `data`."""
    from edgekit.backends.keras.compat import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(data.input_shape), getattr(keras.layers, layer)(16),
                              keras.layers.Dense(data.num_classes, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(data.x_train, data.y_train, epochs=epochs, batch_size=32, verbose=0)
    return model


#: a "previous good run" that a failed or interrupted run must leave byte-identical
PREVIOUS_RUN = {
    "model.tflite": bytes(range(256)) * 4,
    "report.json": b'{"passed": true, "exit_code": 0}\n',
    "report.md": b"# previous run\n",
    "extra/labels.txt": b"0\n1\n2\n",
}


def make_previous_run(run: Path) -> None:
    for rel, content in PREVIOUS_RUN.items():
        (run / rel).parent.mkdir(parents=True, exist_ok=True)
        (run / rel).write_bytes(content)


def snapshot(root: Path) -> dict:
    """Every path under root (relative) with its bytes; None for directories."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def stage_context(data, framework: str):
    """A RunContext for calling stages directly on `data` with `framework`'s backend."""
    from edgekit.recipe import parse_recipe
    from edgekit.run.context import RunContext

    recipe = parse_recipe({"version": 1, "task": data.task,
                           "teacher": {"build": {"arch": "cnn_small"}, "framework": framework}})
    return RunContext(recipe, data, framework)


def trained_artifact(framework: str, data, epochs: int, arch: str = "cnn_small", width: float = 1.0,
                     outputs: int = 4):
    """A zoo model of `framework` trained on `data` (seed 0), as the Artifact a stage receives."""
    from edgekit.artifact import Artifact
    from edgekit.backends import get_backend

    backend = get_backend(framework)
    model = backend.build(arch, width, data.input_shape, outputs, data.task, seed=0)
    model = backend.train(model, data, epochs=epochs, batch_size=32, learning_rate=0.003, seed=0)
    return Artifact(framework, model)


def support_refusal(recipe) -> str:
    """The RecipeError message `check_support` gives `recipe` (asserting it is one, with exit code 2)."""
    from edgekit.errors import RecipeError
    from edgekit.recipe.support import check_support

    with pytest.raises(RecipeError) as refused:
        check_support(recipe)
    assert refused.value.exit_code == 2
    return str(refused.value)


def compressed_report(recipe: Path, out: Path) -> tuple[dict, dict]:
    """`edgekit compress RECIPE --output OUT`, which must exit 0: (report.json, its teacher entry)."""
    result = run_edgekit("compress", str(recipe), "--output", str(out), "-q")
    assert result.returncode == 0, result.stderr + result.stdout
    report = read_report(out)
    return report, artifact_of(report, "teacher")


# Built-in families of issue 11 on the bundled digits (8x8x1, 10 classes): parameters at width 1,
# the same in both frameworks (tests/contract/test_family_contract.py).
FAMILY_PARAMS = {"transformer": 68_682, "lstm": 19_338, "gru": 14_858}


def digits_dataset(calibration_samples: int = 128):
    """The bundled digits as a recipe reads them (scale 1/16), seed 0."""
    from edgekit.data import load_dataset
    from edgekit.recipe import parse_recipe

    recipe = parse_recipe({"version": 1, "data": {"source": "digits", "scale": 0.0625,
                                                  "calibration_samples": calibration_samples},
                           "teacher": {"build": {"arch": "mlp"}}})
    return load_dataset(recipe.data, task="classification", seed=0, resolve=recipe.resolve_path)


# ---- a model with an outlier channel (issue 12) --------------------------------------------------

def _rescale_keras(model, first, second, data, factor):
    import numpy as np

    from edgekit.backends.keras.compat import keras

    acts = keras.Model(model.input, model.get_layer(first).output).predict(data.x_calib, verbose=0)
    channel = int(np.argmax(acts.mean(axis=(0, 1, 2))))
    w1, w2 = model.get_layer(first).get_weights(), model.get_layer(second).get_weights()
    w1[0][..., channel] *= factor
    w1[1][channel] *= factor
    w2[0][:, :, channel, :] /= factor
    model.get_layer(first).set_weights(w1)
    model.get_layer(second).set_weights(w2)
    return channel


def _rescale_torch(model, first, second, data, factor):
    import torch

    modules = dict(model.named_modules())
    seen = {}
    hook = modules[first].register_forward_hook(lambda m, i, o: seen.setdefault("out", o.detach()))
    with torch.no_grad():
        model(torch.from_numpy(data.x_calib.transpose(0, 3, 1, 2).copy()))
    hook.remove()
    channel = int(torch.relu(seen["out"]).mean(dim=(0, 2, 3)).argmax())
    with torch.no_grad():
        modules[first].weight[channel] *= factor
        modules[first].bias[channel] *= factor
        modules[second].weight[:, channel] /= factor
    return channel


_RESCALE = {"keras": _rescale_keras, "torch": _rescale_torch}


def rescale_outlier_channel(framework: str, model, first: str, second: str, data, factor: float = 300.0) -> int:
    """Scale the most active output channel of layer `first` (weights and bias) by `factor` and the
    weights of layer `second` that read it by 1/factor, in place: the same function, but one channel's
    activations `factor` times larger than the rest, which ruins a per-tensor int8 activation scale.
    Returns the channel. (benchmarks/accuracy_control.py builds its models with it too.)"""
    return _RESCALE[framework](model, first, second, data, factor)


def pattern_image_folder(root: Path, count: int, classes: int = 4, side: int = 16, seed: int = 0) -> Path:
    """`count` RGB PNGs in one sub-folder per class: class c has stripes of period c + 2, in its own
    colour, under noise, so a small CNN learns it in an epoch or two but not perfectly."""
    from PIL import Image
    import numpy as np

    rng = np.random.default_rng(seed)
    rows = np.arange(side)[:, None]
    for i in range(count):
        c = i % classes
        stripes = ((rows + np.zeros((1, side))) // 1 % (c + 2) == 0).astype(np.float32)
        colour = np.array([(c * 70) % 256, (c * 130 + 60) % 256, (255 - c * 50) % 256], np.float32)
        pixels = stripes[..., None] * colour + rng.normal(0, 60, (side, side, 3))
        (root / f"class{c}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(root / f"class{c}" / f"{i:05d}.png")
    return root


def image_folder_dataset(root: Path, side: int = 16, seed: int = 0, validation: float = 0.1):
    """(streamed, in_memory): the Dataset edgekit loads from `root` (splits on disk) and the same
    Dataset with every split read into memory."""
    import dataclasses

    import numpy as np

    from edgekit.data import load_dataset
    from edgekit.recipe import DataConfig

    config = DataConfig(source="image_folder", path=str(root), image_size=[side, side], scale=1 / 255,
                        validation_split=validation, calibration_samples=32)
    streamed = load_dataset(config, "classification", seed=seed, resolve=Path)
    in_memory = dataclasses.replace(streamed, **{k: np.asarray(getattr(streamed, k)) for k in ("x_train", "x_val", "x_test")})
    return streamed, in_memory


def compiled_c_array(directory: Path, symbol: str = "g_model_data") -> bytes:
    """Compile `directory`/model_data.cc with the system C compiler (`cc -c`, as a firmware build
    would) and return the bytes its object file holds for `symbol`, checking they are 16-byte aligned."""
    import re

    subprocess.run(["cc", "-c", "model_data.cc", "-o", "model_data.o"], cwd=directory, check=True, capture_output=True)
    subprocess.run(["objcopy", "-O", "binary", "--only-section=.rodata", "model_data.o", "rodata.bin"],
                   cwd=directory, check=True)
    symbols = subprocess.run(["nm", "-S", "--defined-only", "model_data.o"], cwd=directory, check=True,
                             capture_output=True, text=True).stdout
    (offset, size), = [(int(m[1], 16), int(m[2], 16)) for m in re.finditer(rf"(\w+) (\w+) R {symbol}$", symbols, re.M)]
    assert offset % 16 == 0, f"{symbol} at offset {offset} is not 16-byte aligned"
    return (Path(directory) / "rodata.bin").read_bytes()[offset:offset + size]
