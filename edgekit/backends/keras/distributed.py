"""Training Keras models on several workers: tf.distribute's MultiWorkerMirroredStrategy.

Every worker runs the whole run (`edgekit.run.pipeline.joined`); `join` creates the strategy from
`TF_CONFIG` (set by `edgekit compress --workers N`, or by the user on a cluster), which TensorFlow
requires before any other op of the process. Within it, every training function of the backend
builds its models, TF-MOT wrappers and optimizers inside `strategy.scope()` (`train.on_device`):
Keras then splits each global batch between the workers and all-reduces the gradients. The model
a stage hands on is a plain copy of the trained one (`plain`): exporting or predicting on a
distributed model would run collectives that the other workers no longer join.
"""

from __future__ import annotations

import contextlib
import json
from typing import Iterator

import numpy as np

from edgekit.backends.keras.compat import keras, tf, tfmot
from edgekit.compute import Compute
from edgekit.workers import Group, Worker

#: the bytes a Group message may take (a stage's tally, a yes/no)
MESSAGE_BYTES = 4096

_ACTIVE: list = []  # the strategy while this process is one worker of a group (TensorFlow allows one per process)


class KerasGroup(Group):
    """A Group on the strategy's collectives: values cross as JSON, one byte per element of a
    fixed-size int32 tensor (what `strategy.gather` takes), its length first."""

    def __init__(self, worker: Worker, strategy):
        super().__init__(worker)
        self.strategy = strategy

    def gather(self, value) -> list:
        encoded = json.dumps(value).encode()
        if len(encoded) > MESSAGE_BYTES:
            raise ValueError(f"a message of {len(encoded)} bytes is over {MESSAGE_BYTES}")
        padded = np.zeros(MESSAGE_BYTES + 1, np.int32)
        padded[0] = len(encoded)
        padded[1:1 + len(encoded)] = np.frombuffer(encoded, np.uint8)
        rows = self.strategy.gather(self.strategy.run(lambda: tf.constant(padded)[None]), axis=0).numpy()
        return [json.loads(bytes(row[1:1 + row[0]].astype(np.uint8)).decode()) for row in rows]

    def broadcast(self, value):
        return self.gather(value)[0]

    def lost(self, error: BaseException) -> bool:
        """TensorFlow's collectives raise Unavailable (a peer's heartbeat stopped, its connection
        reset) or DeadlineExceeded when another worker went away; an aborted or cancelled
        collective whose message names a peer or the coordination service is the same story."""
        if isinstance(error, (tf.errors.UnavailableError, tf.errors.DeadlineExceededError)):
            return True
        text = str(error).lower()
        return isinstance(error, tf.errors.OpError) and any(mark in text for mark in LOST_MARKS)


#: what TensorFlow's errors say when another worker of the collective went away
LOST_MARKS = ("heartbeat", "connection reset", "connection refused", "socket closed", "coordination service")


@contextlib.contextmanager
def join(worker: Worker, compute: Compute) -> Iterator[Group]:
    """Be worker `worker.rank` of the MultiWorkerMirroredStrategy TF_CONFIG describes, for the block.

    The collectives get no `timeout_seconds`: TensorFlow arms each timeout on a thread of its own
    that sleeps the whole timeout (`Env::SchedClosureAfter`), about ten per training step, so a
    30-minute timeout held ten thousand threads after a minute of training and ran the process out
    of them. A dead worker is noticed without it, by TensorFlow's heartbeat in about 10 s and by
    the launcher (`edgekit.run.launch`) at once."""
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    _ACTIVE.append(strategy)
    try:
        yield KerasGroup(worker, strategy)
    finally:
        _ACTIVE.remove(strategy)


def active():
    """The strategy this process trains under, or None in a single process."""
    return _ACTIVE[-1] if _ACTIVE else None


def scope():
    """The strategy's scope (variables made in it are mirrored on every worker), or no context."""
    strategy = active()
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def rank() -> int:
    """This worker's index in the strategy's cluster (0 in a single process)."""
    strategy = active()
    return int(strategy.cluster_resolver.task_id) if strategy is not None else 0


def replicas() -> int:
    strategy = active()
    return int(strategy.num_replicas_in_sync) if strategy is not None else 1


def sync_from_leader(model) -> None:
    """Give every worker worker 0's values of `model`'s variables. Within the scope a copy's
    variables start from worker 0's initial values, but `set_weights` sets each worker's own: a
    model built or loaded differently on one worker would otherwise train apart."""
    strategy = active()
    if strategy is None:
        return
    variables = [v for v in model.weights if v.dtype.is_floating or v.dtype.is_integer]
    leader = 1.0 if rank() == 0 else 0.0

    @tf.function
    def summed():
        context = tf.distribute.get_replica_context()
        return context.all_reduce(tf.distribute.ReduceOp.SUM, [tf.cast(v, tf.float64) * leader for v in variables])

    for variable, value in zip(variables, strategy.run(summed)):
        variable.assign(tf.cast(strategy.experimental_local_results(value)[0], variable.dtype))


def plain(model):
    """A copy of `model` outside any strategy, with its weights (a QAT model's wrappers too)."""
    with tfmot().quantization.keras.quantize_scope():
        copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def average_loss(per_sample):
    """The loss of a custom train step: the mean over this worker's samples, scaled so that the
    gradients the optimizer sums over the workers are those of the mean over the global batch."""
    if replicas() == 1:
        return tf.reduce_mean(per_sample)
    return tf.nn.compute_average_loss(per_sample)
