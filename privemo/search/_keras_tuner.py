"""The one module of privemo that imports keras-tuner's private API (``keras_tuner.src...``).

Written against **keras-tuner 1.4.8** (``KERAS_TUNER_VERSION``). keras-tuner keeps these names out of its public API, so
any release may move or change them: on an upgrade, read this list against the new release's source and rerun
``tests/test_tuner_io.py``, ``tests/test_tuning.py``, ``tests/test_packing.py``, ``tests/test_resume.py`` and
``tests/test_distributed.py``. Everything public (``keras_tuner.Tuner``, ``keras_tuner.oracles.GridSearchOracle``,
``keras_tuner.engine.trial.Trial`` / ``TrialStatus``, ``keras_tuner.HyperParameters``, ``keras_tuner.errors``,
``keras_tuner.synchronized`` ...) is imported from ``keras_tuner`` where it is used, not from here. Nothing here
changes keras-tuner: privemo's oracles and tuners override keras-tuner's methods in subclasses
(``privemo.search._tuner_io``).

Per name, why privemo needs it:

* ``kt_backend``: ``io.glob`` (the ``trial_*/trial.json`` files an oracle reloads, also on ``gs://`` paths) and
  ``config.multi_backend`` (whether keras-tuner writes and reads ``build_config.json``): privemo's ``Oracle.reload``,
  ``Tuner._build_and_fit_model`` and ``Tuner.load_model`` do what keras-tuner's do, with atomic writes and named errors.
* ``kt_utils``: keras-tuner's own ``save_json`` / ``load_json``, for remote paths (written through ``tf.io.gfile``,
  where a rename is not atomic anyway) and as the reader under privemo's ``load_json``.
* ``kt_config``: ``DEBUG`` (print a failed trial's traceback), as keras-tuner's ``_try_run_and_update_trial`` does, in
  ``PackedGridSearch``'s version of it for a pack.
* ``dist_utils``: ``has_chief_oracle`` / ``is_chief_oracle`` (whether this process is a distributed worker or chief),
  read from keras-tuner's environment variables the way keras-tuner reads them.
* ``tuner_utils``: ``TunerCallback`` (reports epochs to the oracle), ``validate_trial_results``,
  ``convert_to_metrics_dict``, ``get_best_step``: the pieces of keras-tuner's trial loop that privemo's ``run_trial``
  (one checkpoint per trial) and ``PackedGridSearch`` (several trials at once) call.
* ``tuner_module``: ``maybe_compute_model_size`` (``GridSearch._try_build``'s ``max_model_size`` check) and
  ``maybe_distribute`` (``load_model`` under a distribution strategy).
* ``oracle_module``: ``THREADS`` / ``LOCKS``, the per-oracle lock of ``keras_tuner.synchronized``, which it does not
  release after an exception (``privemo.experiment.distributed_oracle._release_if_held``).
* ``protos`` (imported on first use, as keras-tuner does, so protobuf is only loaded by distributed runs): the gRPC
  messages and stub of the chief's oracle service.
* ``OracleServicer`` (``keras_tuner.src.distribute.oracle_chief``, on first use): the chief's gRPC servicer, which
  ``privemo.experiment.distributed_servicer`` extends with trial leases.
* ``OracleClient`` (``keras_tuner.src.distribute.oracle_client``, on first use): a worker's view of the chief's oracle,
  which ``privemo.experiment.distributed_client`` extends with deadlines and heartbeats.
"""

from __future__ import annotations

from keras_tuner.src import backend as kt_backend
from keras_tuner.src import config as kt_config
from keras_tuner.src import utils as kt_utils
from keras_tuner.src.distribute import utils as dist_utils
from keras_tuner.src.engine import oracle as oracle_module
from keras_tuner.src.engine import tuner as tuner_module
from keras_tuner.src.engine import tuner_utils

#: the keras-tuner release this module (and privemo's overrides of keras-tuner methods) was written against
KERAS_TUNER_VERSION = "1.4.8"

__all__ = ["KERAS_TUNER_VERSION", "kt_backend", "kt_config", "kt_utils", "dist_utils", "oracle_module", "tuner_module",
           "tuner_utils", "protos", "OracleServicer", "OracleClient"]


def __getattr__(name: str):
    """The names imported on first use (``protos``, ``OracleServicer``, ``OracleClient``): they load protobuf and
    grpc, which only distributed runs need (keras-tuner imports them late for the same reason)."""
    if name == "protos":
        from keras_tuner.src import protos

        return protos
    if name == "OracleServicer":
        from keras_tuner.src.distribute.oracle_chief import OracleServicer

        return OracleServicer
    if name == "OracleClient":
        from keras_tuner.src.distribute.oracle_client import OracleClient

        return OracleClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
