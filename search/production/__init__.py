"""From a search to a model in production: which configuration to ship, and the files it ships as.

`export` (the best configuration, or the best that fits a device, as `best.yaml`), `statistics` (the
finalists' mean, spread and within-noise rule; no TensorFlow), `finalize` (the top configurations retrained
over seeds), `train` (one training of an export: model.keras, metrics.json), `serving` (SavedModel and
TFLite files checked against the Keras model), `card` (`model_card.md`), `costs` (params, size and latency
per architecture, which `export --max-*` reads).
"""
