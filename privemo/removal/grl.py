"""Gradient reversal: the paper's jointly trained GRL ("grl", ``build_model`` as is), the same network with the DANN
lambda ramp ("grl_dann", ``ScheduledGRLModel``), and the network without adversary that the post-hoc erasers start from
("baseline")."""

from __future__ import annotations

import keras

from privemo._util.validation import check_choice
from privemo.nn.layers import LambdaSchedule, check_lambda
from privemo.nn.models import build_model
from privemo.removal._common import DANN_UPDATE, SCHEDULE_UPDATES, RemovalSettings, require_adversary

__all__ = ["ScheduledGRLModel", "build_grl", "build_grl_dann", "build_baseline"]


@keras.saving.register_keras_serializable(package="privemo")
class ScheduledGRLModel(keras.Model):
    """``build_model``'s network whose GradientReversal layers follow a lambda schedule during every ``fit``.

    A functional model (same inputs, outputs and layer names as ``build_model``) that adds a
    ``privemo.nn.layers.LambdaSchedule`` to the callbacks of each ``fit`` call (unless one is passed), so
    ``privemo.nn.training.fit`` and keras-tuner drive the DANN ramp without knowing about it.

    Args (keyword, besides the functional ``inputs``, ``outputs``, ``name``):
        lambda_max: Float >= 0, the lambda reached at the end of the ramp.
        schedule: "dann" (ramp ``lambda_max * (2 / (1 + exp(-10 p)) - 1)``) or "constant".
        update: "batch" (the ramp advances every batch) or "epoch".
    """

    def __init__(self, inputs, outputs, name=None, **kwargs):
        lambda_max = check_lambda(kwargs.pop("lambda_max", 1.0), "lambda_max")
        schedule = check_choice("schedule", kwargs.pop("schedule", "dann"), ("dann", "constant"))
        update = check_choice("update", kwargs.pop("update", DANN_UPDATE), SCHEDULE_UPDATES)
        super().__init__(inputs, outputs, name=name, **kwargs)
        self.lambda_max, self.schedule, self.update = lambda_max, schedule, update

    def schedule_callback(self) -> LambdaSchedule:
        """A fresh LambdaSchedule for this model's GRLs."""
        return LambdaSchedule(lambda_max=self.lambda_max, schedule=self.schedule, update=self.update)

    def fit(self, *args, callbacks=None, **kwargs):
        callbacks = list(callbacks or [])
        if not any(isinstance(c, LambdaSchedule) for c in callbacks):
            callbacks.insert(0, self.schedule_callback())
        return super().fit(*args, callbacks=callbacks, **kwargs)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(lambda_max=self.lambda_max, schedule=self.schedule, update=self.update)
        return config


def build_grl(build_kwargs: dict, settings: RemovalSettings) -> keras.Model:
    """"grl": the paper's network, ``build_model(**build_kwargs)``."""
    return build_model(**build_kwargs)


def build_baseline(build_kwargs: dict, settings: RemovalSettings) -> keras.Model:
    """"baseline": ``build_model`` without adversary (the network the post-hoc erasers "inlp" / "leace" erase)."""
    return build_model(**{**build_kwargs, "adversary": None})


def build_grl_dann(build_kwargs: dict, settings: RemovalSettings) -> ScheduledGRLModel:
    """"grl_dann": ``build_model``'s network as a ``ScheduledGRLModel`` ramping lambda up to ``grl_lambda``."""
    require_adversary(build_kwargs, "grl_dann")
    base = build_model(**build_kwargs)
    return ScheduledGRLModel(base.input, base.output, name=f"{base.name}_dann",
                             lambda_max=build_kwargs.get("grl_lambda", 1.0), schedule="dann",
                             update=settings.schedule_update)
