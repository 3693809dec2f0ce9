"""edgekit compress on image folders of 2,000 and 20,000 images: peak memory stays flat.

Two folders of 32x32 RGB PNGs (10 classes, stripes whose period and colour follow the class, under
noise) are written once into the scratch directory; `edgekit compress` then runs on each as a fresh
process with an empty cache: it decodes the folder into its on-disk data cache, trains a torch
cnn_tiny teacher for two epochs from it, quantizes to int8 (PTQ) and measures model.onnx on ONNX
Runtime over the test split. Each child's peak resident memory is the `ru_maxrss` that `os.wait4`
returns for that child alone. Target: the 20,000-image run peaks at ≤ 1.3× the 2,000-image run.
`--quick`: 500 and 5,000 images.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import PYTHON, ROOT, clean_env, md_table, scratch, target  # noqa: E402

SIDE, CLASSES = 32, 10

RECIPE = """\
version: 1
name: streaming-{count}
seed: 0
data:
  source: image_folder
  path: {folder}
  image_size: [{side}, {side}]
  scale: 0.00392156862745098
  validation_split: 0.1
  calibration_samples: 128
teacher:
  build: {{arch: cnn_tiny, width: 0.5}}
  framework: torch
  train: {{epochs: 2, batch_size: 32, learning_rate: 0.01}}
stages:
  - quantize: {{method: ptq, precision: int8}}
export:
  formats: [onnx]
evaluate:
  runtimes: [onnxruntime]
  latency: {{warmup: 1, runs: 5, threads: 1, batch: 1}}
"""


def write_image_folder(root: Path, count: int, seed: int = 0) -> Path:
    """`count` PNGs, `count / CLASSES` per class: class c has horizontal stripes of period c + 2 in
    its own colour plus Gaussian noise, so two epochs of a small CNN learn most of it."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    rows = np.arange(SIDE)[:, None, None]
    for c in range(CLASSES):
        (root / f"class{c}").mkdir(parents=True, exist_ok=True)
    for i in range(count):
        c = i % CLASSES
        colour = np.array([(c * 70) % 256, (c * 130 + 60) % 256, (255 - c * 25) % 256], np.float32)
        pixels = (rows % (c + 2) == 0) * colour + rng.normal(0, 50, (SIDE, SIDE, 3))
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(root / f"class{c}" / f"{i:06d}.png")
    return root


def _compress(count: int, base: Path) -> dict:
    """Run edgekit compress on a folder of `count` images; its peak RSS (MiB), wall time and results."""
    folder = write_image_folder(base / f"images{count}", count)
    recipe = base / f"streaming{count}.yaml"
    recipe.write_text(RECIPE.format(count=count, folder=folder, side=SIDE))
    out, log = base / f"run{count}", base / f"run{count}.log"
    args = [PYTHON, "-m", "edgekit.cli", "compress", str(recipe), "--output", str(out),
            "--cache-dir", str(base / f"cache{count}"), "-q"]
    start = time.perf_counter()
    with open(log, "wb") as sink:
        child = subprocess.Popen(args, cwd=ROOT, env=clean_env(), stdout=sink, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own peak, not any other process's
        child.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    if child.returncode != 0:
        raise RuntimeError(f"edgekit compress on {count} images exited with {child.returncode}:\n"
                           f"{log.read_text(errors='replace')[-3000:]}")
    report = json.loads((out / "report.json").read_text())
    final = next(a for a in report["artifacts"] if a["name"] == "model.onnx")
    cached = sum(f.stat().st_size for f in (base / f"cache{count}" / "data").rglob("*.npy"))
    return {"images": count, "peak_rss_mib": round(usage.ru_maxrss / 1024, 1), "wall_s": round(seconds, 2),
            "train": report["data"]["train"], "test": report["data"]["test"],
            "in_memory_float32_mib": round(count * SIDE * SIDE * 3 * 4 / 2**20, 1),
            "decoded_cache_mib": round(cached / 2**20, 1), "int8_accuracy": final["accuracy"]}


def run(quick: bool = False) -> dict:
    base = scratch() / "streaming"
    sizes = (500, 5000) if quick else (2000, 20000)
    rows = [_compress(count, base) for count in sizes]
    small, large = rows
    ratio = round(large["peak_rss_mib"] / small["peak_rss_mib"], 3)
    targets = [target("image_folder_streams", f"edgekit compress: peak RSS on {large['images']:,} images ≤ 1.3× "
                      f"that on {small['images']:,}", ratio, ratio <= 1.3,
                      f"{small['peak_rss_mib']} MiB → {large['peak_rss_mib']} MiB")]
    table = md_table(["images", "train / test", "peak RSS MiB", "float32 images MiB (the old in-memory load)",
                      "decoded cache MiB (uint8 on disk)", "wall s", "model.onnx int8 accuracy"],
                     [[f"{r['images']:,}", f"{r['train']} / {r['test']}", r["peak_rss_mib"], r["in_memory_float32_mib"],
                       r["decoded_cache_mib"], r["wall_s"], f"{100 * r['int8_accuracy']:.1f}%"] for r in rows])
    return {"title": "image_folder streaming: peak memory against folder size", "runs": rows, "ratio": ratio,
            "targets": targets, "table": table,
            "notes": [f"{SIDE}x{SIDE} RGB PNGs, {CLASSES} classes; a fresh `edgekit compress` process per size with "
                      "an empty cache (decoding included): torch cnn_tiny (width 0.5) trained 2 epochs, int8 PTQ, "
                      "model.onnx on ONNX Runtime. Peak RSS is the child's ru_maxrss (os.wait4). "
                      f"{large['images']:,} / {small['images']:,} images: {ratio:.2f}× the peak RSS."]}


if __name__ == "__main__":
    print(run("--quick" in sys.argv)["table"])
