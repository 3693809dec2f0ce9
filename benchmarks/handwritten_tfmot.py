"""The hand-written chain edgekit is compared with: TF-MOT's "Pruning in Keras" tutorial, as a user writes it.

Plain tf_keras + tensorflow_model_optimization + tf.lite + ai_edge_litert, no edgekit code in the
chain (https://www.tensorflow.org/model_optimization/guide/pruning/pruning_with_keras, followed by the
"Post-training integer quantization" tutorial for the full-integer int8 conversion):

1. load the teacher (sample_models/digits_cnn.keras), clone it;
2. `prune_low_magnitude` with PolynomialDecay(initial_sparsity=0.50, final_sparsity=0.80,
   begin_step=0, end_step=<all training steps>), compiled with the tutorial's `optimizer="adam"`
   (Adam, learning rate 1e-3) and sparse categorical cross-entropy on logits, trained 2 epochs
   (batch 32) with the `UpdatePruningStep` callback;
3. `strip_pruning`;
4. TFLiteConverter with `Optimize.DEFAULT`, a representative dataset, `TFLITE_BUILTINS_INT8` and int8
   input / output types (full integer);
5. write the .tflite and measure its accuracy on LiteRT, quantizing each input with the input
   tensor's scale / zero point, one sample at a time as the tutorial's `evaluate_model` does.

Two deliberate departures from the tutorial text, so that both sides do the same work:
- Data: the arrays come from `edgekit.data.load_dataset` (scikit-learn's digits, scaled by 1/16,
  the same fixed split, the same 10% validation hold-out and the same 256 calibration samples that
  the edgekit recipe uses). That is only array loading (numpy + scikit-learn, no TensorFlow); the
  tutorial loads MNIST and uses `validation_split=0.1`, which here is the pre-split validation set.
- Pruning frequency: the tutorial leaves PolynomialDecay's `frequency` at 100 steps, sized for MNIST
  (844 steps over 2 epochs). Digits gives 82 steps (1,293 training samples, batch 32), so frequency
  100 never prunes within the run and ships a dense model (measured with `--frequency 100`: 0.75%
  zero weights instead of 80%, 150 KB gzipped instead of 55 KB). The script uses edgekit's rule,
  frequency = max(1, min(100, steps // 20)) (4 here), so both sides reach 80%.
The one difference kept on purpose: the tutorial ends the schedule at the last step
(end_step = steps) while edgekit's polynomial schedule reaches the final sparsity at 3/4 of the
steps and holds it for the last quarter (fine-tuning at the final sparsity).

    .venv/bin/python benchmarks/handwritten_tfmot.py --out /tmp/plain.tflite   # prints a JSON line
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEACHER = ROOT / "sample_models" / "digits_cnn.keras"


def load_digits_arrays(seed: int = 0) -> dict:
    """The digits arrays edgekit's recipe sees (data: {source: digits, scale: 0.0625}), as numpy arrays."""
    sys.path.insert(0, str(ROOT))
    from edgekit.data import load_dataset
    from edgekit.recipe import DataConfig

    data = load_dataset(DataConfig(source="digits", scale=0.0625, calibration_samples=256),
                        task="classification", seed=seed, resolve=Path)
    return {name: getattr(data, name) for name in
            ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test", "x_calib")}


def prune_and_quantize(teacher_path: Path, out_path: Path, data: dict, epochs: int = 2, batch_size: int = 32,
                       initial_sparsity: float = 0.50, final_sparsity: float = 0.80, seed: int = 0,
                       frequency: int | None = None) -> dict:
    """The tutorial's chain; returns wall times per step, the file's size and its LiteRT accuracy."""
    import numpy as np

    times = {}
    t0 = time.perf_counter()
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # TF-MOT needs Keras 2 (tf_keras)
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    import tf_keras as keras
    from ai_edge_litert.interpreter import Interpreter

    times["import_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    keras.utils.set_random_seed(seed)
    teacher = keras.models.load_model(teacher_path)
    model = keras.models.clone_model(teacher)
    model.set_weights(teacher.get_weights())

    x_train, y_train = data["x_train"], data["y_train"]
    steps = math.ceil(len(x_train) / batch_size) * epochs
    schedule = tfmot.sparsity.keras.PolynomialDecay(initial_sparsity=initial_sparsity, final_sparsity=final_sparsity,
                                                    begin_step=0, end_step=steps,
                                                    frequency=frequency or max(1, min(100, steps // 20)))
    model_for_pruning = tfmot.sparsity.keras.prune_low_magnitude(model, pruning_schedule=schedule)
    model_for_pruning.compile(optimizer="adam",
                              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                              metrics=["accuracy"])
    model_for_pruning.fit(x_train, y_train, batch_size=batch_size, epochs=epochs,
                          validation_data=(data["x_val"], data["y_val"]),
                          callbacks=[tfmot.sparsity.keras.UpdatePruningStep()], verbose=0)
    model_for_export = tfmot.sparsity.keras.strip_pruning(model_for_pruning)
    times["prune_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    calibration = data["x_calib"].astype(np.float32)

    def representative_data_gen():
        for i in range(len(calibration)):
            yield [calibration[i:i + 1]]

    converter = tf.lite.TFLiteConverter.from_keras_model(model_for_export)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_data_gen
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    tflite_model = converter.convert()
    out_path.write_bytes(tflite_model)
    times["convert_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    interpreter = Interpreter(model_path=str(out_path))
    interpreter.allocate_tensors()
    input_details = interpreter.get_input_details()[0]
    output_details = interpreter.get_output_details()[0]
    scale, zero_point = input_details["quantization"]
    correct = 0
    for image, label in zip(data["x_test"], data["y_test"]):
        q = np.clip(np.round(image / scale) + zero_point, -128, 127).astype(np.int8)
        interpreter.set_tensor(input_details["index"], q[np.newaxis])
        interpreter.invoke()
        correct += int(interpreter.get_tensor(output_details["index"])[0].argmax() == label)
    times["evaluate_s"] = time.perf_counter() - t0

    return {
        "path": str(out_path),
        "bytes": len(tflite_model),
        "gzip_bytes": len(gzip.compress(tflite_model, compresslevel=9)),
        "litert_accuracy": correct / len(data["y_test"]),
        "steps": steps,
        "times": {k: round(v, 3) for k, v in times.items()},
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="where to write the int8 .tflite")
    parser.add_argument("--teacher", type=Path, default=TEACHER)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--frequency", type=int, default=None,
                        help="pruning frequency in steps (default: edgekit's rule; the tutorial's default is 100)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    data = load_digits_arrays()
    result = prune_and_quantize(args.teacher, args.out, data, epochs=args.epochs, frequency=args.frequency)
    result["times"]["data_s"] = round(time.perf_counter() - start - sum(result["times"].values()), 3)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
