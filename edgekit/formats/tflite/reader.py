"""Facts stored in a .tflite file, read with the flatbuffer schema shipped with ai-edge-litert
(`edgekit.formats.tflite.schema`): a .tflite is one self-contained file."""

from __future__ import annotations

from pathlib import Path

from edgekit.formats.tflite.schema import is_sparse_encoded, param_count, weight_layers


def model_files(path: Path) -> list[Path]:
    """A .tflite needs nothing beside itself."""
    return [path]


__all__ = ["is_sparse_encoded", "model_files", "param_count", "weight_layers"]
