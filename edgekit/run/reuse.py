"""What a run can take from the stage cache (edgekit.run.cache), and what it leaves there.

Keys chain: the teacher's key covers its file (or build and train settings), the data, the seed
and the framework; each stage's key covers the previous key and its own config; the exports' key
covers the final key, the export settings and the converter versions. A model entry holds the
model (saved by its backend) and the artifact's info and stage record; the exports entry holds the
exported files, the teacher's outputs on the test set and every stage record, so a fully cached
run measures the files without importing the training framework at all.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Optional

import numpy as np

from edgekit import usercode
from edgekit.artifact import Artifact
from edgekit.compute import cache_key
from edgekit.run.cache import file_digest, make_key
from edgekit.environment import describe_environment
from edgekit.run.exporting import Export



def teacher_key(recipe, dataset, framework: str, workers: int = 1) -> str:
    teacher = recipe.teacher
    if teacher.path:
        path = recipe.resolve_path(teacher.path)
        digest = file_digest(path) if path.exists() else f"missing:{path}"  # loading reports it
        source = ["file", digest, teacher.factory, teacher.trust_code]
        if teacher.custom_objects:  # the layers' module: its name and its code (keys without it are unchanged)
            source += [teacher.custom_objects, usercode.digest_source(teacher.custom_objects, path.parent)]
    else:
        source = ["build", teacher.build.model_dump(mode="json"),
                  teacher.train.model_dump(mode="json") if teacher.train else None]
        if teacher.build.weights:  # the pretrained base: its bytes, not its name
            weights = recipe.resolve_path(teacher.build.weights)
            source.append(file_digest(weights) if weights.exists() else f"missing:{weights}")
    return make_key("teacher", source, framework, dataset.fingerprint(), recipe.seed, recipe.task,
                    *cache_key(recipe.compute, workers))


def stage_keys(recipe, first: str, workers: int = 1) -> list[str]:
    keys, previous = [], first
    for stage in recipe.stages:
        previous = make_key("stage", previous, stage.model_dump(mode="json"), recipe.seed,
                            *cache_key(recipe.compute, workers))
        keys.append(previous)
    return keys


def exports_key(recipe, teacher: str, final: str) -> str:
    return make_key("exports", teacher, final, recipe.export.model_dump(mode="json"),
                    describe_environment()["packages"], "teacher-validation")


# ---- model entries ---------------------------------------------------------------------------

def _state_json(artifact: Artifact) -> dict:
    """The artifact's typed state, as JSON (the plan is the recipe's and is taken from it on load,
    with the per-layer precisions and the calibration the run chose: `max_drop` picks them on the
    validation split)."""
    return {"source": artifact.source, "pruned": artifact.pruned, "clustered": artifact.clustered,
            "quantization_aware": artifact.qat is not None, "planned": artifact.plan is not None,
            "layers": dict(artifact.plan.layers) if artifact.plan is not None else {},
            "calibration": artifact.plan.calibration if artifact.plan is not None else None,
            "details": dict(artifact.details)}


def store_model(cache, key: str, artifact: Artifact, backend, record: dict) -> Optional[str]:
    float_model = artifact.qat.float_model if artifact.qat is not None else None

    def write(directory: Path) -> None:
        backend.save_cached(artifact.model, directory / "model")
        if float_model is not None:
            backend.save_cached(float_model, directory / "float_model")

    meta = {"state": _state_json(artifact), "record": record, "name": artifact.name,
            "history": list(artifact.history)}
    return cache.store(key, meta, write)


def load_model(cache, key: str, backend, context) -> tuple[Optional[tuple[Artifact, dict]], Optional[str]]:
    """((artifact, stage record), None) from the entry for `key`; (None, why) when the entry cannot
    be read as one edgekit wrote (it is then discarded, so this run's result replaces it)."""
    entry = cache.entry(key)
    if entry is None:
        return None, None
    try:
        meta = json.loads((entry / "meta.json").read_text())
        state = meta["state"]
        model = backend.load_cached(entry / "model", context, bool(state["quantization_aware"]))
        qat = None
        if state["quantization_aware"]:
            float_dir = entry / "float_model"
            float_model = backend.load_cached(float_dir, context) if float_dir.exists() else None
            qat = backend.qat_state(float_model)
        plan = None
        if state["planned"]:
            plan = context.recipe.quantize.plan().with_layers(state.get("layers") or {})
            plan = plan.with_calibration(state.get("calibration") or plan.calibration)
        artifact = Artifact(backend.framework, model, name=meta["name"], plan=plan,
                            history=tuple(meta["history"]), source=state["source"], pruned=state["pruned"],
                            clustered=state["clustered"], qat=qat, details=state["details"])
        return (artifact, meta["record"]), None
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        cache.discard(key)
        return None, (f"stage cache: ignored the entry {entry.name} in {cache.root}, which edgekit cannot read "
                      f"({type(exc).__name__}: {' '.join(str(exc).split())[:300]}); the step runs again")


# ---- the exports entry -----------------------------------------------------------------------

def store_exports(cache, key: str, exports: list[Export], teacher_entry: dict, teacher_outputs: np.ndarray,
                  stages: list[dict]) -> Optional[str]:
    def write(directory: Path) -> None:
        files = directory / "files"
        files.mkdir()
        for export in exports:
            for path in sorted(export.path.parent.glob(export.path.name + "*")):  # model.onnx + .data
                shutil.copy2(path, files / path.name)
        np.save(directory / "teacher_outputs.npy", teacher_outputs)

    meta = {"exports": [{"role": e.role, "fmt": e.fmt, "file": e.path.name, "precision": e.precision,
                         "io": e.io, "layout": e.layout, "facts": e.facts} for e in exports],
            "teacher": teacher_entry, "stages": stages}
    return cache.store(key, meta, write)


def restore_exports(cache, key: str, workdir: Path):
    """(exports, teacher entry, teacher outputs, stage records) copied from the cache, or None."""
    entry = cache.entry(key)
    if entry is None:
        return None
    start = time.perf_counter()
    try:
        meta = json.loads((entry / "meta.json").read_text())
        exports = [Export(e["role"], e["fmt"], workdir / e["file"], e["precision"], e["io"], e["layout"],
                          e.get("facts", {})) for e in meta["exports"]]
        outputs = np.load(entry / "teacher_outputs.npy", allow_pickle=False)
        for path in (entry / "files").iterdir():
            shutil.copy2(path, workdir / path.name)
    except (OSError, ValueError, KeyError, TypeError):  # not an entry edgekit wrote: train and export again
        cache.discard(key)
        return None
    restored = round(time.perf_counter() - start, 3)
    stages = [{**record, "cached": True, "trained_wall_s": record.get("trained_wall_s", record["wall_s"]),
               "wall_s": 0.0} for record in meta["stages"]]
    if stages:
        stages[0]["wall_s"] = restored
    return exports, meta["teacher"], outputs, stages
