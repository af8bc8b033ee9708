"""The read models' engine: the runner that feeds them from the log, their store and positions,
rebuilds, point-in-time folds, replay, and the read side's one seam."""
