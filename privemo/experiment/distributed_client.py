"""A worker's link to the chief: every call with a deadline, asked again with back-off until ``--chief-timeout``
(``Backoff``, ``ChiefClient``), the two ways it stops a worker (``ChiefUnreachable``, ``ChiefFailed``), and the
heartbeat at the end of every epoch that renews a trial's lease (``attach_chief_client``).
``privemo.experiment.distributed`` describes the engine and re-exports every name.
"""

from __future__ import annotations

import time

import grpc
import keras_tuner
from keras_tuner.engine import trial as trial_module

from privemo._util.validation import UserError
from privemo.experiment.distributed_plan import (BACKOFF_FIRST_S, BACKOFF_MAX_S, CALL_TIMEOUT_S, CHIEF_TIMEOUT_S,
                                                 RETRIED_CODES, _one_line)
from privemo.search._keras_tuner import protos


class ChiefUnreachable(UserError, keras_tuner.errors.FatalError):
    """The chief has not answered a worker for ``--chief-timeout`` seconds: one line. A keras-tuner ``FatalError`` too,
    so a trial that meets it stops the worker instead of being recorded as a failed (INVALID) trial."""


class ChiefFailed(UserError, keras_tuner.errors.FatalError):
    """The chief answered a worker's call with an error (e.g. it could not write its state: a full disk): one line with
    the chief's own message; the worker stops (a ``FatalError``, as ``ChiefUnreachable``)."""


class Backoff:
    """Waits between the tries of something that does not answer: ``first_s``, then twice as long each time up to
    ``max_s``, for at most ``timeout_s`` from the first failure. ``failed()`` after each failure: False once
    ``timeout_s`` has passed (give up), else it sleeps (never past the timeout) and returns True; ``reset()`` after a
    success. ``silent_s()`` is how long it has been failing."""

    def __init__(self, timeout_s: float, first_s: float = BACKOFF_FIRST_S, max_s: float = BACKOFF_MAX_S, *,
                 clock=time.monotonic, sleep=time.sleep):
        self.timeout_s, self.first_s, self.max_s = float(timeout_s), float(first_s), float(max_s)
        self.clock, self.sleep = clock, sleep
        self.since: float | None = None  # when the first failed try began
        self.delay = self.first_s
        self.waits: list[float] = []  # every sleep (for the tests)

    def reset(self) -> None:
        self.since, self.delay = None, self.first_s

    def begin(self) -> float:
        """Call before a try; returns the time it began (the silence counts from the first failed try's start)."""
        return self.clock()

    def silent_s(self) -> float:
        return 0.0 if self.since is None else self.clock() - self.since

    def left_s(self) -> float:
        return self.timeout_s - self.silent_s()

    def failed(self, began: float | None = None) -> bool:
        if self.since is None:
            self.since = self.clock() if began is None else began
        left = self.left_s()
        if left <= 0:
            return False
        wait = min(self.delay, left)
        self.waits.append(wait)
        self.sleep(wait)
        self.delay = min(self.delay * 2, self.max_s)
        return True


def _unreachable(host: str, port: int, timeout_s: float, where: str = "") -> ChiefUnreachable:
    return ChiefUnreachable(f"the chief at {host}:{port} has not answered for {timeout_s:.0f} s (--chief-timeout)"
                            f"{where}; start it again with --resume, then this worker")


class _ChiefCalls:
    """The body of ``_oracle_client_class``'s ``ChiefClient``, which puts it before keras-tuner's ``OracleClient`` in
    its bases: every call of keras-tuner's client through ``_call`` (deadline, back-off, one-line errors), and
    ``heartbeat``."""

    def __init__(self, oracle, host: str, port: int, tuner_id: str, chief_timeout_s: float = CHIEF_TIMEOUT_S,
                 call_timeout_s: float = CALL_TIMEOUT_S, log=None, *, sleep=time.sleep):
        self._oracle = oracle
        self.host, self.port, self.tuner_id = host, int(port), tuner_id
        self.chief_timeout_s, self.call_timeout_s = float(chief_timeout_s), float(call_timeout_s)
        self.log = log or (lambda message: None)
        self.sleep = sleep
        self.multi_worker, self.should_report = False, True
        self.channel = self.stub = None
        self.trial_id: str | None = None  # the trial this worker is in (for the error message)
        self._connect()

    def _connect(self) -> None:
        if self.channel is not None:
            self.channel.close()
        self.channel = grpc.insecure_channel(f"{self.host}:{self.port}")
        self.stub = protos.get_service_grpc().OracleStub(self.channel)

    def close(self) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None

    def _call(self, method: str, request):
        backoff = Backoff(self.chief_timeout_s, sleep=self.sleep)
        while True:
            began = backoff.begin()
            timeout = self.call_timeout_s if backoff.since is None else max(1.0, min(self.call_timeout_s,
                                                                                     backoff.left_s()))
            try:
                response = getattr(self.stub, method)(request, timeout=timeout)
            except grpc.RpcError as exc:
                code = exc.code()
                if code is None or code.name not in RETRIED_CODES:
                    raise ChiefFailed(f"the chief at {self.host}:{self.port} answered {method} with "
                                      f"{getattr(code, 'name', code)}: {_one_line(exc.details())}") from None
                first = backoff.since is None
                if not backoff.failed(began):
                    where = f" during trial {self.trial_id}" if self.trial_id else ""
                    raise _unreachable(self.host, self.port, self.chief_timeout_s, where) from None
                if first:
                    self.log(f"[worker {self.tuner_id}] the chief at {self.host}:{self.port} does not answer "
                             f"({method}: {code.name}); asking again for up to {self.chief_timeout_s:.0f} s")
                self._connect()  # a new channel: no wait in gRPC's own reconnection back-off
                continue
            if backoff.since is not None:
                self.log(f"[worker {self.tuner_id}] the chief at {self.host}:{self.port} answers again after "
                         f"{backoff.silent_s():.0f} s")
            return response

    def get_space(self):
        from keras_tuner.engine import hyperparameters as hp_module

        response = self._call("GetSpace", protos.get_service().GetSpaceRequest())
        return hp_module.HyperParameters.from_proto(response.hyperparameters)

    def update_space(self, hyperparameters):
        if self.should_report:
            self._call("UpdateSpace",
                       protos.get_service().UpdateSpaceRequest(hyperparameters=hyperparameters.to_proto()))

    def create_trial(self, tuner_id):
        response = self._call("CreateTrial", protos.get_service().CreateTrialRequest(tuner_id=tuner_id))
        trial = trial_module.Trial.from_proto(response.trial)
        if trial.status == trial_module.TrialStatus.RUNNING:
            self.trial_id = trial.trial_id
        return trial

    def update_trial(self, trial_id, metrics, step=0):
        if self.should_report:
            response = self._call("UpdateTrial", protos.get_service().UpdateTrialRequest(
                trial_id=trial_id, metrics=metrics, step=step))
            if not self.multi_worker:
                return trial_module.Trial.from_proto(response.trial)
        return trial_module.Trial(self.get_space(), status="RUNNING")

    def heartbeat(self, trial_id: str, step: int = 0) -> None:
        """A report without metrics: the chief renews the trial's lease and changes nothing else."""
        if self.should_report:
            self._call("UpdateTrial", protos.get_service().UpdateTrialRequest(trial_id=trial_id, step=step))

    def end_trial(self, trial):
        if self.should_report:
            self._call("EndTrial", protos.get_service().EndTrialRequest(trial=trial.to_proto()))
        self.trial_id = None

    def get_trial(self, trial_id):
        response = self._call("GetTrial", protos.get_service().GetTrialRequest(trial_id=trial_id))
        return trial_module.Trial.from_proto(response.trial)

    def get_best_trials(self, num_trials=1):
        response = self._call("GetBestTrials", protos.get_service().GetBestTrialsRequest(num_trials=num_trials))
        return [trial_module.Trial.from_proto(trial) for trial in response.trials]


def _oracle_client_class():
    from privemo.search._keras_tuner import OracleClient

    class ChiefClient(_ChiefCalls, OracleClient):
        """keras-tuner's ``OracleClient`` (a worker's view of the chief's oracle) with a deadline on every call
        (``call_timeout_s``, keras-tuner's is an hour) and, when the chief does not answer (``RETRIED_CODES``), the
        same call again on a new channel after 1, 2, 4, .. 30 s (``Backoff``) until ``chief_timeout_s`` have passed:
        then ``ChiefUnreachable``, one line. A chief started again with ``--resume`` on the same port answers the next
        try, also in the middle of a trial (the trial's reports reach the reloaded oracle, which gives the trial back
        to this worker). Any other error from the chief is ``ChiefFailed`` with the chief's message. Every call is
        safe to repeat (keras-tuner hands a tuner id its ongoing trial again; an ended trial's reports are ignored).
        ``heartbeat(trial_id, step)`` tells the chief the trial is alive (a report without metrics: the trial lease).
        """

    return ChiefClient


def attach_chief_client(tuner, host: str, port: int, tuner_id: str, chief_timeout_s: float = CHIEF_TIMEOUT_S,
                        log=None, **kwargs):
    """Give a keras-tuner worker tuner (made with the ``KERASTUNER_*`` variables set: its oracle is keras-tuner's
    ``OracleClient``) a ``ChiefClient`` instead, and a heartbeat at the end of every epoch of its trials (keras-tuner
    1.4.8's ``Tuner.on_epoch_end`` reports nothing, so without it a healthy trial longer than ``--trial-timeout`` would
    be taken back). keras-tuner's tuner makes no call to the chief before its search, so nothing has used the old
    client. Returns the new client (``kwargs``: ``ChiefClient``'s)."""
    local = getattr(tuner.oracle, "_oracle", tuner.oracle)
    client = _oracle_client_class()(local, host, port, tuner_id, chief_timeout_s, log=log, **kwargs)
    tuner.oracle = client
    on_epoch_end = tuner.on_epoch_end

    def heartbeat(trial, model, epoch, logs=None):
        on_epoch_end(trial, model, epoch, logs=logs)
        client.heartbeat(trial.trial_id, int(epoch))

    tuner.on_epoch_end = heartbeat
    return client
