"""What a search will do and what it found: `ktsearch plan`, `report` and `simulate`.

`plan` (the calibrated wall-time estimate and the budget's sizing), `report` (top trials, brackets or
rungs, Pareto fronts, plots), `importance` (which knobs mattered: permutation importance over a random
forest), `simulate` (the real oracles over recorded curves, for 1 to 256 workers), `projects` (a plain
KerasTuner project seen as a run, for `report` and `ktsearch tensorboard`).
"""
