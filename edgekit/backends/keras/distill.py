"""Knowledge distillation: train a student against a frozen teacher.

Classification loss (Hinton et al.): alpha · T² · KL(softmax(t/T) ‖ softmax(s/T)) + (1 − alpha) · CE(y, s).
Regression: alpha · MSE(t, s) + (1 − alpha) · MSE(y, s). Teachers that end in a softmax give
probabilities; their logs serve as logits (softmax is invariant to the constant they differ by).

Under mixed precision student and teacher are `train.training_copy`s computing in 16 bits; the loss
casts both outputs to float32 (a 16-bit softmax and log lose the small probabilities the soft targets
carry), and the student returned is float32 (`train.float_copy`).
"""

from __future__ import annotations

from edgekit.artifact import Artifact
from edgekit.errors import InputError
from edgekit.backends.keras import distributed, loading, train, zoo
from edgekit.backends.keras.compat import keras, tf
from edgekit.backends.keras.streaming import fit_inputs


class Distiller(keras.Model):
    """Wraps student and teacher so `fit` trains the student with the distillation loss."""

    def __init__(self, student, teacher, temperature: float, alpha: float, task: str):
        super().__init__()
        self.student, self.teacher = student, teacher
        self.teacher.trainable = False
        self.temperature, self.alpha, self.task = float(temperature), float(alpha), task
        self.teacher_gives_probabilities = train.ends_with_softmax(teacher)
        self.student_gives_probabilities = train.ends_with_softmax(student)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.quality = (keras.metrics.SparseCategoricalAccuracy(name="accuracy") if task == "classification"
                        else keras.metrics.MeanAbsoluteError(name="mae"))

    @property
    def metrics(self):
        return [self.loss_tracker, self.quality]

    def _logits(self, outputs, probabilities: bool):
        return tf.math.log(tf.clip_by_value(outputs, 1e-7, 1.0)) if probabilities else outputs

    def _loss(self, y, teacher_out, student_out):
        """The distillation loss per sample, computed in float32 whatever the models compute in."""
        teacher_out, student_out = tf.cast(teacher_out, tf.float32), tf.cast(student_out, tf.float32)
        if self.task == "regression":
            mse = keras.losses.mean_squared_error
            return self.alpha * mse(teacher_out, student_out) + (1 - self.alpha) * mse(tf.cast(y, student_out.dtype), student_out)
        t = self._logits(teacher_out, self.teacher_gives_probabilities)
        s = self._logits(student_out, self.student_gives_probabilities)
        T = self.temperature
        soft = keras.losses.kl_divergence(tf.nn.softmax(t / T), tf.nn.softmax(s / T)) * (T * T)
        hard = keras.losses.sparse_categorical_crossentropy(y, s, from_logits=True)
        return self.alpha * soft + (1 - self.alpha) * hard

    def train_step(self, data):
        x, y = data
        teacher_out = self.teacher(x, training=False)
        with tf.GradientTape() as tape:
            student_out = self.student(x, training=True)
            per_sample = self._loss(y, teacher_out, student_out)
            loss = distributed.average_loss(per_sample)
        # minimize scales the loss and unscales the gradients when the optimizer is a LossScaleOptimizer
        self.optimizer.minimize(loss, self.student.trainable_variables, tape=tape)
        self.loss_tracker.update_state(tf.reduce_mean(per_sample))
        self.quality.update_state(y, student_out)
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        x, y = data
        student_out = self.student(x, training=False)
        self.loss_tracker.update_state(tf.reduce_mean(self._loss(y, self.teacher(x, training=False), student_out)))
        self.quality.update_state(y, student_out)
        return {m.name: m.result() for m in self.metrics}

    def call(self, x, training=False):
        return self.student(x, training=training)


def make_student(config, teacher, dataset, recipe):
    """A new zoo student shaped like the teacher's input and output, or a loaded model."""
    student_cfg = config.student
    if student_cfg.path:
        student = loading.load(recipe.resolve_path(student_cfg.path), student_cfg.trust_code,
                               key="distill.student.path", custom_objects=student_cfg.custom_objects)
        if student.output_shape[-1] != teacher.output_shape[-1]:
            raise InputError(f"{student_cfg.path}: the student has {student.output_shape[-1]} outputs but the "
                             f"teacher has {teacher.output_shape[-1]} (distill.student.path)")
        return train.clone(student)
    keras.utils.set_random_seed(recipe.seed)
    return zoo.build(student_cfg.arch, student_cfg.width, tuple(teacher.input_shape[1:]),
                     int(teacher.output_shape[-1]), recipe.task)


@train.on_device
def distill(artifact: Artifact, config, ctx) -> Artifact:
    """Train a student on the dataset with the frozen teacher `artifact.model`, under the current
    compute; the teacher is untouched and the student returned is float32."""
    teacher = train.training_copy(artifact.model)
    student = train.training_copy(make_student(config, artifact.model, ctx.dataset, ctx.recipe))
    distiller = Distiller(student, teacher, config.temperature, config.alpha, ctx.recipe.task)
    keras.utils.set_random_seed(ctx.recipe.seed)
    for model in (student, teacher):
        distributed.sync_from_leader(model)
    distiller.compile(optimizer=train.optimizer(config.learning_rate))
    data = ctx.dataset
    inputs, kwargs = fit_inputs(data.x_train, data.y_train, data.x_val, data.y_val, config.batch_size, ctx.recipe.seed)
    with ctx.progress.task("distill", config.epochs) as advance:
        history = distiller.fit(*inputs, epochs=config.epochs, verbose=0, **kwargs,
                                callbacks=[train.ProgressCallback(advance),
                                           train.StepCounter(len(data.x_train), config.batch_size)])
    details = {"student": student.name, "student_params": int(student.count_params()),
               "teacher_params": int(artifact.model.count_params()),
               "final_epoch": {k: round(float(v[-1]), 5) for k, v in history.history.items()}}
    return artifact.evolve("distill", model=train.float_copy(student), details=details)
