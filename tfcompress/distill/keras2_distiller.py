"""The Keras 2 engine's `Distiller`: a tf_keras model, for tf_keras students."""

from tfcompress._keras import keras
from tfcompress._model_guards import ensure_keras2_model
from tfcompress.distill.distiller import Distiller


class Keras2Distiller(Distiller, keras.Model):
    """`tfc.Distiller` for a tf_keras student (see `Distiller`)."""

    keras = keras

    def _model_of_this_keras(self, model, argument):
        return ensure_keras2_model(model, argument)

    def _compiled_metrics(self) -> list:
        return self.compiled_metrics.metrics if self.compiled_metrics is not None else []

    def _update_compiled_metrics(self, y, y_pred, sample_weight):
        self.compiled_metrics.update_state(y, y_pred, sample_weight)

    def _metric_results(self) -> dict:
        return {metric.name: metric.result() for metric in self.metrics}

    def _apply_gradients(self, tape, loss):
        self.optimizer.minimize(loss, self.trainable_weights, tape=tape)

    def get_config(self):
        raise NotImplementedError("A Distiller is not saved as a whole: save `distiller.student`, the model you ship.")


ENGINE = Keras2Distiller
