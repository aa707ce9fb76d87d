"""The chief's gRPC side: keras-tuner's ``OracleServicer`` for one tuner project with trial leases (which tuner runs
which trial and when it last reported; ``expire()`` takes back a trial whose worker went silent), late and adopted
reports, errors that leave the oracle's lock free (``_guarded``), and ``_start_server``.
``privemo.experiment.distributed`` describes the engine and re-exports every name.
"""

from __future__ import annotations

import functools
import time

from keras_tuner.engine import trial as trial_module

from privemo._util.validation import UserError
from privemo.experiment.distributed_oracle import _ENDED, _adopt, _release_if_held, _take_back, _unqueue
from privemo.experiment.distributed_plan import TRIAL_TIMEOUT_S, _one_line
from privemo.search._keras_tuner import protos


def _guarded(method):
    """A servicer call that raises leaves the oracle's lock free (``_release_if_held``); one that meets a ``UserError``
    (the chief cannot write its state: ``privemo._util.io.WriteError``) answers the worker with that line
    (FAILED_PRECONDITION; the worker stops with it) and keeps the error for the chief's main loop, which stops the chief
    with it (``_wait_for_searches``)."""

    @functools.wraps(method)
    def call(self, request, context):
        import grpc

        try:
            return method(self, request, context)
        except UserError as exc:
            _release_if_held(self.oracle)
            if self.failure is None:
                self.failure = exc
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, _one_line(exc))
        except BaseException:
            _release_if_held(self.oracle)
            raise

    return call


class _LeaseCalls:
    """The calls ``_servicer_class``'s ``Servicer`` adds to or changes in keras-tuner's ``OracleServicer`` (it comes
    first in the servicer's bases, so ``super()`` is keras-tuner's servicer): the records, the leases and ``expire``.
    """

    def __init__(self, oracle, name: str, log, trial_timeout_s: float = TRIAL_TIMEOUT_S):
        super().__init__(oracle)
        self.name = name
        self.log = log
        self.trial_timeout_s = float(trial_timeout_s)
        self.seen: set[str] = set()
        self.stopped: set[str] = set()
        self.handed: dict[str, list[str]] = {}
        self.leases: dict[str, tuple[str, float]] = {}  # trial id -> (tuner id, time of its last report)
        self.taken_back: list[str] = []  # trial ids, once per expiry
        self.ignored: list[str] = []  # trial ids of reports that came after the trial had ended
        self.adopted: list[str] = []  # trial ids given back to the worker that reported on them (_adopt)
        self.failure: UserError | None = None  # the first error that stops the chief (a call could not write)

    @_guarded
    def CreateTrial(self, request, context):
        response = super().CreateTrial(request, context)
        tuner_id = request.tuner_id
        self.seen.add(tuner_id)
        status = trial_module.TrialStatus.from_proto(response.trial.status)
        if status == trial_module.TrialStatus.STOPPED:
            self.stopped.add(tuner_id)
        elif status == trial_module.TrialStatus.RUNNING:
            trial_id = response.trial.trial_id
            self.leases[trial_id] = (tuner_id, time.monotonic())
            ids = self.handed.setdefault(tuner_id, [])
            if trial_id not in ids:
                ids.append(trial_id)
                self.log(f"[chief] {self.name}: trial {trial_id} -> {tuner_id}")
        return response

    @_guarded
    def UpdateTrial(self, request, context):
        trial_id = request.trial_id
        trial = self.oracle.trials.get(trial_id)
        if trial is not None and trial.status in _ENDED:  # a late report: leave the ended trial as it is
            return protos.get_service().UpdateTrialResponse(trial=trial.to_proto())
        key = _adopt(self.oracle, trial_id)
        if key is not None:
            self.adopted.append(trial_id)
            self.leases[trial_id] = (key, time.monotonic())
            self.log(f"[chief] {self.name}: trial {trial_id} reported on while waiting for a retry: "
                     "left to the worker that reports")
        if trial_id in self.leases:
            self.leases[trial_id] = (self.leases[trial_id][0], time.monotonic())
        if not request.metrics and trial is not None:  # a heartbeat (ChiefClient.heartbeat): the lease only
            return protos.get_service().UpdateTrialResponse(trial=trial.to_proto())
        return super().UpdateTrial(request, context)

    @_guarded
    def EndTrial(self, request, context):
        trial_id = request.trial.trial_id
        trial = self.oracle.trials.get(trial_id)
        if trial is not None and trial.status in _ENDED:
            self.ignored.append(trial_id)
            self.log(f"[chief] {self.name}: trial {trial_id} ended again (a worker it was taken back from): "
                     "report ignored")
            return protos.get_service().EndTrialResponse()
        _unqueue(self.oracle, trial_id)
        response = super().EndTrial(request, context)
        self.leases.pop(trial_id, None)
        trial = self.oracle.trials.get(trial_id)
        score = getattr(trial, "score", None)
        self.log(f"[chief] {self.name}: trial {trial_id} ended "
                 f"({trial.status if trial else '?'}{'' if score is None else f', val_objective {score:.4f}'})")
        return response

    def expire(self, now: float | None = None) -> list[str]:
        """Take back every trial whose worker has not reported for ``trial_timeout_s``; returns their ids."""
        now = time.monotonic() if now is None else now
        expired = []
        for trial_id, (tuner_id, seen) in list(self.leases.items()):
            if now - seen <= self.trial_timeout_s:
                continue
            del self.leases[trial_id]
            if _take_back(self.oracle, tuner_id, trial_id):
                expired.append(trial_id)
                self.taken_back.append(trial_id)
                self.log(f"[chief] {self.name}: trial {trial_id}: no report from {tuner_id} for "
                         f"{now - seen:.0f} s; handed out again")
        return expired


def _servicer_class():
    from privemo.search._keras_tuner import OracleServicer

    class Servicer(_LeaseCalls, OracleServicer):
        """keras-tuner's servicer, recording which tuner ran which trial and which tuners were told to stop, with trial
        leases (``privemo.experiment.distributed``): ``expire()`` takes back trials not reported for
        ``trial_timeout_s``; a report without metrics is a worker's heartbeat; a report on a trial waiting for a retry
        gives it back to its worker (``_adopt``). A call that cannot write the chief's state sets ``failure``."""

        GetSpace = _guarded(OracleServicer.GetSpace)
        UpdateSpace = _guarded(OracleServicer.UpdateSpace)
        GetTrial = _guarded(OracleServicer.GetTrial)
        GetBestTrials = _guarded(OracleServicer.GetBestTrials)

    return Servicer


def _start_server(servicer, host: str, port: int):
    import concurrent.futures

    import grpc

    # so_reuseport off: a port another process already serves must fail here, not share its traffic.
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=4), options=[("grpc.so_reuseport", 0)])
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError:
        bound = 0
    if not bound:
        raise UserError(f"cannot serve on {host}:{port} (port in use or address not on this machine); "
                          "choose another --port")
    server.start()
    return server
