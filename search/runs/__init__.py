"""The run directory: what a search leaves on disk, and what reads it back.

`layout` (the files' names and their readers: trials, records, the ranking; no TensorFlow), `lock` (one
`tune` or `finalize` per run), `integrity` (damaged files told from missing ones, and what each costs),
`warmstart` (`tune --from`: an earlier run's best configurations, checked against the new space). Nothing
on disk names a Python module, so the code can move without stopping a run from resuming.
"""
