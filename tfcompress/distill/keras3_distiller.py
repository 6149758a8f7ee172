"""The Keras 3 engine's `Distiller`: a Keras 3 model, for Keras 3 students, saved and loaded as Keras 3 saves models."""

from tfcompress._keras3 import is_keras3_model, keras
from tfcompress.distill.distiller import Distiller


@keras.saving.register_keras_serializable(package="tfcompress")
class Keras3Distiller(Distiller, keras.Model):
    """`tfc.Distiller` for a Keras 3 student (see `Distiller`)."""

    keras = keras

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.built = True  # its student and teachers are built: it has nothing left to create

    def _model_of_this_keras(self, model, argument):
        if not is_keras3_model(model):
            raise TypeError(
                f"`{argument}` must be a Keras model (keras.Model). Received: {argument} of type {type(model).__name__}"
            )
        return model

    @property
    def trainable_variables(self):
        # Keras 3 builds and restores the optimizer from these (load_weights, BackupAndRestore): the student's
        # and the adapters', never the teachers'.
        return self.trainable_weights

    @property
    def non_trainable_variables(self):
        trained = {id(variable) for variable in self.trainable_weights}
        return [variable for variable in self.variables if id(variable) not in trained]

    def fit(self, *args, **kwargs):
        workers = _workers(self.distribute_strategy)
        if workers > 1:
            raise ValueError(
                f"This Distiller runs under a MultiWorkerMirroredStrategy of {workers} workers, and Keras "
                f"{keras.__version__}'s fit fails there for every Keras 3 model (it reduces per-replica inputs "
                "eagerly). Train on one machine (MirroredStrategy over its GPUs), or distil tf_keras models: "
                "tfc.from_keras3(model) for the student and the teacher."
            )
        return super().fit(*args, **kwargs)

    fit.__doc__ = keras.Model.fit.__doc__

    def _lock_state(self):
        # compile() makes feature adapters, and may be called again after fit.
        pass

    def _compiled_metrics(self) -> list:
        compiled = getattr(self, "_compile_metrics", None)
        return [compiled] if compiled is not None else []

    def _update_compiled_metrics(self, y, y_pred, sample_weight):
        for compiled in self._compiled_metrics():
            compiled.update_state(y, y_pred, sample_weight)

    def _metric_results(self) -> dict:
        return self.get_metrics_result()

    def train_step(self, data):
        # A student that keeps masks through training (tfcompress's Keras 3 pruning and QAT models) does so in its
        # own train_step, which distillation replaces: its hooks run around this one instead.
        getattr(self.student, "before_train_step", lambda: None)()
        logs = super().train_step(data)
        return {**logs, **(getattr(self.student, "after_train_step", dict)())}

    def _scaled_loss(self, loss):
        return self.optimizer.scale_loss(loss)

    def _apply_gradients(self, tape, loss):
        variables = self.trainable_weights
        self.optimizer.apply(tape.gradient(loss, variables), variables)

    def _keep_compile_arguments(self, arguments):
        # Keras 3 saves what compile was given, for load_model to compile again; the savable ones are kept.
        self.__dict__["_distiller_compile_config"] = {name: value for name, value in arguments.items()
                                                      if value is not None and _savable(value)}  # fmt: skip

    def get_compile_config(self):
        config = self.__dict__.get("_distiller_compile_config")
        return keras.saving.serialize_keras_object(config) if config is not None else {}

    def compile_from_config(self, config):
        if config:
            self.compile(**keras.saving.deserialize_keras_object(config))
            self.optimizer.build(self.trainable_weights)  # for load_model to restore its state

    def get_config(self):
        teachers = [keras.saving.serialize_keras_object(model) for model in self.teachers]
        return {
            "name": self.name,
            "student": keras.saving.serialize_keras_object(self.student),
            "teacher": teachers[0] if len(teachers) == 1 else teachers,
            "teacher_weights": self._teacher_weights,
            "task": self._task_given,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        teachers = config["teacher"] if isinstance(config["teacher"], list) else [config["teacher"]]
        config["student"] = keras.saving.deserialize_keras_object(config["student"], custom_objects=custom_objects)
        teachers = [keras.saving.deserialize_keras_object(model, custom_objects=custom_objects) for model in teachers]
        config["teacher"] = teachers[0] if len(teachers) == 1 else teachers
        return cls(**config)


def _workers(strategy) -> int:
    """How many machines `strategy` spans: more than one only for a multi-worker strategy with a cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    spec = resolver.cluster_spec() if resolver is not None else None
    return spec.num_tasks("worker") if spec is not None and "worker" in spec.jobs else 1


def _savable(value) -> bool:
    """Whether Keras can write `value` into a saved model's configuration (feature and extra losses cannot)."""
    try:
        keras.saving.serialize_keras_object(value)
    except (TypeError, ValueError, NotImplementedError):
        return False
    return True


ENGINE = Keras3Distiller
