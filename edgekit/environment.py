"""The environment a run measured on: package versions and CPU, recorded in every report."""

from __future__ import annotations

import os
import platform
from importlib import metadata

PACKAGES = ("edgekit", "tensorflow", "tf_keras", "tensorflow-model-optimization", "ai-edge-litert", "onnx",
            "onnxruntime", "tf2onnx", "torch", "litert-torch", "executorch", "numpy", "scikit-learn")


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_environment() -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "packages": versions,
    }
