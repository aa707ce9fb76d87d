"""The oracle of privemo's searches: which trial is next (keras-tuner's ``Oracle`` role).

``ConcurrentGridSearchOracle`` walks keras-tuner's grid in ``GridSearchOracle``'s order and hands out the first untried
combination, so interrupted projects resume and several workers share one grid; ``privemo.search.packed_tuner`` extends
it to hand out packs of one network shape. ``GridSearchOracle`` is keras-tuner's, writing its state atomically
(``privemo.search._tuner_io.AtomicStateOracle``); every oracle privemo builds is one of these.
"""

from __future__ import annotations

import keras_tuner
from keras_tuner.engine import trial as trial_module

from privemo.search._tuner_io import AtomicStateOracle

__all__ = ["GridSearchOracle", "ConcurrentGridSearchOracle"]


class GridSearchOracle(AtomicStateOracle, keras_tuner.oracles.GridSearchOracle):
    """keras-tuner's ``GridSearchOracle`` whose ``oracle.json`` and ``trial_*/trial.json`` are written atomically, and
    a damaged one named on reload (``privemo.search._tuner_io``)."""


class ConcurrentGridSearchOracle(GridSearchOracle):
    """A GridSearch oracle that hands out the first untried combination at once (keras-tuner 1.4.8's GridSearchOracle walks the grid from its last trial, so a project interrupted between trials reloads as finished, and one interrupted inside a trial fails on reload; this oracle always hands out the first untried combination).

    The order is GridSearchOracle's (defaults first, then its own successor function), so a single process gets the same
    trial ids with the same values as with ``keras_tuner.GridSearch``; with several workers every combination is handed
    out exactly once, and the search ends (STOPPED) as soon as every combination has been handed out and no interrupted
    trial waits for a retry. Its state is keras-tuner's ``Oracle`` state (tried-value hashes, trials, retry queue), so a
    reloaded project continues where it stopped.
    """

    def populate_space(self, trial_id: str) -> dict:
        values = self._first_untried()
        if values is None:
            return {"status": trial_module.TrialStatus.STOPPED, "values": None}
        return {"status": trial_module.TrialStatus.RUNNING, "values": values}

    def _combinations(self):
        space = self.get_space()
        values: dict | None = {hp.name: hp.default for hp in space.space if space.is_active(hp)}
        while values is not None:
            yield values
            values = self._get_next_combination(values)

    def _first_untried(self) -> dict | None:
        for values in self._combinations():
            if not self._duplicate(values):
                return values
        return None

    @keras_tuner.synchronized
    def end_trial(self, trial) -> None:
        super().end_trial(trial)
        # keras-tuner saves the oracle before it drops the trial from its ongoing trials, and relies on the tuner's
        # next save; a distributed worker's tuner never saves the chief's oracle, so a reloaded project would rerun
        # its last trial. Save again now that the trial is no longer ongoing.
        self.save()

    @keras_tuner.synchronized
    def progress(self) -> dict:
        """{"trials", "ongoing", "retry", "done" (ended trials), "complete" (nothing left to hand out or wait for)}."""
        exhausted = self._first_untried() is None or bool(self.max_trials and len(self.trials) >= self.max_trials)
        return {
            "trials": len(self.trials),
            "ongoing": len(self.ongoing_trials),
            "retry": len(self._retry_queue),
            "done": len(self.end_order),
            "complete": exhausted and not self.ongoing_trials and not self._retry_queue,
        }
