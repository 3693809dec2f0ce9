"""The mobile bundle: `labels.txt` and `model_card.json`, what an app needs to use the model.

The card is written from what the runtime reports of the exported file (names, shapes, dtypes,
quantization parameters), so an app that follows it feeds the model exactly as edgekit measured it.
"""

from __future__ import annotations

import json
from pathlib import Path

from edgekit import __version__


def write_labels(run_dir: Path, labels: list[str] | None, classes: int) -> Path:
    names = labels if labels else [str(i) for i in range(classes)]
    path = Path(run_dir) / "labels.txt"
    path.write_text("\n".join(names) + "\n", encoding="utf-8")
    return path


def _file_facts(path: Path) -> dict:
    """Op list, serving signature, quantization kind and, when its layers differ, the precision of
    each weight op (`layers`), read from the exported file itself."""
    from edgekit.formats.inspect import inspect_model

    facts = inspect_model(path, top=0)
    signature = next(iter(facts.get("signatures") or []), None)
    out = {"ops": facts["ops"], "quantization": facts["quantization"]["kind"]}
    layers = facts["quantization"].get("layers") or []
    if any(row["precision"] != layers[0]["precision"] for row in layers):  # a mixed plan: say what each layer is
        out["layers"] = [{k: row[k] for k in ("layer", "op", "precision")} for row in layers]
    if facts.get("delegation") is not None:  # .pte: what XNNPACK runs, what ExecuTorch's kernels run
        out["delegation"] = {k: facts["delegation"][k] for k in ("backend", "delegated_ops", "non_delegated_ops")}
    if signature is not None:
        out["signature"] = {k: signature[k] for k in ("name", "inputs", "outputs")}
    return out


def model_card(report: dict, recipe_sha256: str, preprocessing: dict, labels: list[str] | None,
               run_dir: Path | None = None) -> dict:
    """The card: one entry per final artifact, with its I/O as the runtime reports it and its ops
    and signature as the file holds them."""
    models = {}
    for artifact in report["artifacts"]:
        if artifact.get("role") != "final":
            continue
        facts = _file_facts(Path(run_dir) / artifact["name"]) if run_dir else {}
        models[artifact["format"]] = {
            "file": artifact["name"],
            "files": artifact.get("files", [artifact["name"]]),
            "runtime": artifact.get("runtime"),
            "precision": artifact.get("precision"),
            "input_layout": artifact.get("layout", "nhwc"),
            "inputs": (artifact.get("io") or {}).get("inputs", []),
            "outputs": (artifact.get("io") or {}).get("outputs", []),
            "bytes": artifact.get("bytes"),
            **({key: artifact[key] for key in ("calibration", "quantization_choice") if key in artifact}),
            **facts,
        }
    return {
        "name": report.get("name"),
        "task": report.get("task"),
        "models": models,
        "preprocessing": {
            **preprocessing,
            "formula": "x_model = x_raw * scale + offset (then quantize with the input's scale/zero_point if int8/uint8)",
        },
        "output": ("logits or scores per class: argmax is the class id, labels.txt line id"
                   if report.get("task") == "classification" else "regression values"),
        "labels": labels,
        "edgekit_version": __version__,
        "recipe_sha256": recipe_sha256,
    }


def write_model_card(run_dir: Path, card: dict) -> Path:
    path = Path(run_dir) / "model_card.json"
    path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return path
