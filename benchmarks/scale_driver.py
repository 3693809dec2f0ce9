"""Evaluate a .tflite on N synthetic samples through edgekit's session, streamed in batches of 1000.

One fresh process per N (benchmarks/scale.py starts it), so the peak RSS it reports belongs to that
N alone. The samples are generated batch by batch inside the loop: at most one batch of 1000
exists at a time, and only a running total is kept (how often each class is predicted), never the
predictions.

`--materialise` instead builds all N samples as one array and calls `edgekit.evaluate.measure_file`,
the function `edgekit compress` uses, which takes the whole test set as an array: the contrast shows
what streaming saves.

    .venv/bin/python benchmarks/scale_driver.py 100000 --model runs/quickstart/model.tflite   # one JSON line
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BATCH = 1000


def _rss_mib() -> float:
    """Peak resident set of this process so far, MiB.

    VmHWM from /proc/self/status: it belongs to this program's own address space. (`ru_maxrss` is
    not used: Linux carries it over from the parent through fork + exec, so a child of a big
    process would report its parent's peak.)"""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # elsewhere: the best there is


def _batch(rng, n: int, shape: list[int]):
    import numpy as np

    return rng.random((n, *shape), dtype=np.float32)


def stream(model: Path, n: int, seed: int = 0) -> dict:
    import numpy as np

    from edgekit.formats.registry import runtime_for_path

    session = runtime_for_path(model).open(model, threads=1)
    shape = [d if d > 0 else 1 for d in session.input.shape[1:]]
    rng = np.random.default_rng(seed)
    rss_open = _rss_mib()
    counts = None
    first = None
    start = time.perf_counter()
    done = 0
    while done < n:
        k = min(BATCH, n - done)
        scores = session.predict(_batch(rng, k, shape))
        top = scores.argmax(axis=-1)
        counts = np.bincount(top, minlength=scores.shape[-1]) + (0 if counts is None else counts)
        done += k
        if first is None:  # the first batch also pays one-time costs (tensor allocation, XNNPACK weight packing)
            first = time.perf_counter() - start
    loop = time.perf_counter() - start
    session.close()
    return {"mode": "streamed", "samples": n, "loop_s": loop, "first_batch_s": first, "rss_after_open_mib": rss_open,
            "peak_rss_mib": _rss_mib(), "classes_seen": int(np.count_nonzero(counts))}


def materialise(model: Path, n: int, seed: int = 0) -> dict:
    import numpy as np

    from edgekit.evaluate import measure_file
    from edgekit.formats.registry import runtime_for_path

    session = runtime_for_path(model).open(model, threads=1)
    shape = [d if d > 0 else 1 for d in session.input.shape[1:]]
    classes = session.outputs[0].shape[-1]
    session.close()
    rng = np.random.default_rng(seed)
    rss_open = _rss_mib()
    start = time.perf_counter()
    x = np.concatenate([_batch(rng, min(BATCH, n - i), shape) for i in range(0, n, BATCH)])
    y = rng.integers(0, classes, size=n)
    figures = measure_file(model, runtime_for_path(model).name, x, y, "classification")
    loop = time.perf_counter() - start
    return {"mode": "materialised (measure_file)", "samples": n, "loop_s": loop, "rss_after_open_mib": rss_open,
            "peak_rss_mib": _rss_mib(), "accuracy_vs_random_labels": figures["accuracy"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("samples", type=int, help="N, the number of synthetic samples")
    parser.add_argument("--model", type=Path, required=True, help="the .tflite (or .onnx) to evaluate")
    parser.add_argument("--materialise", action="store_true")
    args = parser.parse_args(argv)
    result = (materialise if args.materialise else stream)(args.model, args.samples)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
