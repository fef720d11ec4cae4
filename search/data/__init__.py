"""Images in: the data sources, the stratified split and the tf.data pipelines every trial reads.

`sources` (in-memory sources: digits, mnist5k, npz, keras.datasets; the split from the labels alone;
pipelines), `files` (listing a class-per-folder tree or TFRecord shards without decoding; the quick check
of image files), `streaming` (streamed sources: parallel decode into a uint8 cache in memory or on disk).
It reads a `DataConfig` and imports nothing of ktsearch above `errors` and `runtime`.
"""
