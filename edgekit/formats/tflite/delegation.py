"""Which ops of a .tflite LiteRT's default XNNPACK delegate leaves to its builtin kernels.

    delegation(Path("model.tflite"))
    # {"partitions": 21, "builtin_ops": {"BATCH_MATMUL": 4, "SOFTMAX": 2, ...}}

Why: on CPU, LiteRT hands every op XNNPACK supports (for the tensor types it has) to XNNPACK, in as
many DELEGATE partitions as the unsupported ops cut the graph into; those run on LiteRT's builtin
kernels, with a hand-over at each cut. That is the op-level reason an int8 file runs slower than its
float file (issue 11: a full-integer Transformer had 21 partitions and its BATCH_MATMUL / SOFTMAX /
LayerNorm ops on builtin int8 kernels, against one partition for the float file), and what a report
names when int8 does not pay off.

How: LiteRT's Python interpreter lists the model's ops plus one DELEGATE node per partition
(`Interpreter._get_ops_details`, which TensorFlow's own quantization debugger uses too). An op is
delegated when it lies between a DELEGATE node's outputs and its inputs: walking producers back
from the outputs, stopping at the inputs, collects each partition's ops; the ops left over run on
the builtin kernels.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path


def _partitions(ops: list[dict]) -> tuple[int, list[dict]]:
    """(number of DELEGATE nodes, the original ops no partition contains)."""
    original = [op for op in ops if op["op_name"] != "DELEGATE"]
    delegates = [op for op in ops if op["op_name"] == "DELEGATE"]
    producer = {int(t): op["index"] for op in original for t in op["outputs"]}
    by_index = {op["index"]: op for op in original}
    delegated: set[int] = set()
    for node in delegates:
        boundary = {int(t) for t in node["inputs"]}
        stack = [int(t) for t in node["outputs"]]
        while stack:
            index = producer.get(stack.pop())
            if index is None or index in delegated:
                continue
            delegated.add(index)
            stack.extend(int(t) for t in by_index[index]["inputs"] if t >= 0 and int(t) not in boundary)
    return len(delegates), [op for op in original if op["index"] not in delegated]


def delegation(path: Path, threads: int = 1) -> dict:
    """{"partitions": XNNPACK partitions, "builtin_ops": {op name: count} of the ops it leaves to
    LiteRT's builtin kernels} for the .tflite at `path`, as LiteRT prepares it on this CPU."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    count, builtin = _partitions(interpreter._get_ops_details())
    names = Counter(op["op_name"] for op in builtin)
    return {"partitions": count, "builtin_ops": dict(sorted(names.items(), key=lambda kv: (-kv[1], kv[0])))}


__all__ = ["delegation"]
