"""The trial loop: `tune` (config -> data -> tuner -> summary; resume, overwrite and extension rules) and
the per-trial parts KerasTuner's tuner is wired to.

`tune`, `tuners` (the KerasTuner tuners and what they add per trial), `context` (`SearchRun`, what one
`tune` call carries down), `pool` (compiled models reused across trials), `records` (`epochs.json`),
`sessions` (each trial's HParams session), `checkpoints` (`tuner.keep_checkpoints`), `seeding`, `progress`
(the line per trial, the ETA), `tensorboard` (the HParams experiment, curves, the server), `repair` (damaged
run files rebuilt by replay before a resume).
"""
