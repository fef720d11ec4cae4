"""Folders and TFRecord shards streamed from disk: real image files made here, real tf.data pipelines."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from search.config import DataConfig
from search.data import files, streaming
from search.data.sources import load_splits, to_datasets
from search.errors import UserError


def _image(rng, h=20, w=24, mode="RGB"):
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    pixels = rng.integers(0, 255, (h, w, channels)).astype("uint8")
    return Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode)


def _folder(root: Path, counts: dict[str, int], seed: int = 0, ext: str = "png") -> Path:
    rng = np.random.default_rng(seed)
    for name, n in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            _image(rng).save(root / name / f"{i:03d}.{ext}")
    return root


def _cfg(path, **kw) -> DataConfig:
    return DataConfig(source=kw.pop("source", "directory"), path=str(path), image_size=kw.pop("size", [16, 16]), **kw)


def _epoch(ds) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = zip(*((x.numpy(), y.numpy()) for x, y in ds), strict=True)
    return np.concatenate(xs), np.concatenate(ys)


def _as_set(x: np.ndarray, y: np.ndarray) -> list[tuple[int, bytes]]:
    return sorted(zip(y.tolist(), (image.astype("uint8").tobytes() for image in x), strict=True))


def _assert_same_images(pipelines, memory) -> None:
    """Each streamed split yields the in-memory split's images and labels (in any order), as float32."""
    xs_ys = ((memory.x_train, memory.x_val, memory.x_test), (memory.y_train, memory.y_val, memory.y_test))
    arrays = zip(*xs_ys, strict=True)
    for ds, (xs, ys) in zip(pipelines, arrays, strict=True):
        images, labels = _epoch(ds)
        assert images.dtype == np.float32 and images.shape[1:] == xs.shape[1:]
        assert _as_set(images, labels) == _as_set(xs, ys)


def test_the_listing_is_keras_image_dataset_from_directory_order(tmp_path):
    """Same files, labels and order as the loader ktsearch used before: runs started then keep their split."""
    import keras

    root = _folder(tmp_path / "imgs", {"b_dogs": 5, "a_cats": 4, "c": 3})
    (root / "a_cats" / "nested" / "deeper").mkdir(parents=True)
    _image(np.random.default_rng(1)).save(root / "a_cats" / "nested" / "deeper" / "x.PNG")
    _image(np.random.default_rng(2)).save(root / "a_cats" / "nested" / "Z.Jpg", format="JPEG")
    (root / "a_cats" / "notes.txt").write_text("not an image")
    (root / ".hidden").mkdir()
    _image(np.random.default_rng(3)).save(root / ".hidden" / "h.png")
    ds = keras.utils.image_dataset_from_directory(
        root, image_size=(8, 8), batch_size=None, shuffle=False, verbose=False
    )
    keras_labels = np.array([int(y) for _, y in ds])
    listing = files.list_directory(str(root))
    assert listing.paths == ds.file_paths
    assert listing.class_names == ds.class_names
    np.testing.assert_array_equal(listing.labels, keras_labels)


def test_the_split_depends_only_on_the_data_and_the_seed(tmp_path):
    root = _folder(tmp_path / "imgs", {"a": 30, "b": 20, "c": 10})
    a, b = load_splits(_cfg(root), seed=1), load_splits(_cfg(root, size=[8, 8], cache="none"), seed=1)
    c = load_splits(_cfg(root), seed=2)
    for name in streaming.SPLITS:
        np.testing.assert_array_equal(a.order[name], b.order[name])  # image size and cache do not matter
    assert not np.array_equal(a.order["train"], c.order["train"])
    assert a.sizes() == {"train": 42, "validation": 12, "test": 6}  # stratified: 70/20/10 of each class
    assert np.bincount(a.labels[a.order["validation"]]).tolist() == [6, 4, 2]


@pytest.mark.parametrize("cache", ["none", "memory", "disk"])
def test_streamed_and_in_memory_pipelines_give_the_same_images_and_labels(tmp_path, cache):
    """A folder of PNGs (lossless) against the same pixels as an .npz: same split, same images, every cache."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (60, 16, 16, 3)).astype("uint8")
    y = np.repeat([0, 1, 2], 20)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y)
    for i, (image, label) in enumerate(zip(x, y, strict=True)):
        (tmp_path / "imgs" / f"class{label}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(tmp_path / "imgs" / f"class{label}" / f"{i:03d}.png")
    memory = load_splits(DataConfig(source="npz", path=str(tmp_path / "d.npz")), seed=4)
    streamed = load_splits(_cfg(tmp_path / "imgs", cache=cache), seed=4)
    assert memory.x_train.dtype == np.uint8  # an uint8 source stays uint8 in memory
    pipelines = to_datasets(streamed, 8, seed=4, cache_dir=tmp_path / "cache", log=lambda line: None)
    _assert_same_images(pipelines, memory)
    first, second = (_epoch(pipelines[0])[1] for _ in range(2))
    assert not np.array_equal(first, second)  # training reshuffles every epoch
    val_a, val_b = _epoch(pipelines[1])[1], _epoch(pipelines[1])[1]
    np.testing.assert_array_equal(val_a, val_b)


def test_changing_the_cache_changes_neither_the_images_nor_their_order(tmp_path):
    root = _folder(tmp_path / "imgs", {"a": 12, "b": 12}, ext="jpg")
    epochs = {}
    for cache in ("none", "memory", "disk"):
        splits = load_splits(_cfg(root, cache=cache), seed=3)
        train, _, _ = to_datasets(splits, 5, seed=3, cache_dir=tmp_path / "cache", log=lambda line: None)
        epochs[cache] = _epoch(train)
    for cache in ("memory", "disk"):
        np.testing.assert_array_equal(epochs[cache][0], epochs["none"][0])
        np.testing.assert_array_equal(epochs[cache][1], epochs["none"][1])


def test_the_disk_cache_is_reused_and_rebuilt_when_the_data_or_size_changes(tmp_path):
    root = _folder(tmp_path / "imgs", {"a": 10, "b": 10})
    cache_dir = tmp_path / "run" / "cache"
    lines: list[str] = []

    def fill(**kw):
        splits = load_splits(_cfg(root, cache="disk", **kw), seed=1)
        to_datasets(splits, 4, seed=1, cache_dir=cache_dir, log=lines.append)
        return {p.name: p.stat().st_ino for p in cache_dir.iterdir()}

    first = fill()
    assert len(first) == 3 and all(name.endswith(".npy") for name in first)
    assert fill() == first and "reusing" in lines[-1]
    resized = fill(size=[12, 12])
    assert "decoding" in lines[-1] and not set(resized) & set(first)  # the old size's files are gone
    _image(np.random.default_rng(9)).save(root / "a" / "new.png")
    assert not set(fill(size=[12, 12])) & set(resized)  # a file more: another cache
    assert not list(cache_dir.glob(".*.tmp"))


def test_a_partial_or_foreign_cache_file_is_never_trusted(tmp_path):
    root = _folder(tmp_path / "imgs", {"a": 10, "b": 10})
    cache_dir = tmp_path / "cache"
    splits = load_splits(_cfg(root, cache="disk"), seed=1)
    expected = _epoch(to_datasets(splits, 4, seed=1, cache_dir=cache_dir, log=lambda line: None)[1])
    victim = next(cache_dir.glob("validation-*.npy"))
    victim.write_bytes(victim.read_bytes()[:-100])  # as if a writer had been killed mid-file under the final name
    (cache_dir / ".train-junk.tmp").write_bytes(b"left by a killed writer an hour ago")
    os.utime(cache_dir / ".train-junk.tmp", (time.time() - 3600,) * 2)
    (cache_dir / ".train-live.tmp").write_bytes(b"another process is writing this one now")
    lines: list[str] = []
    splits = load_splits(_cfg(root, cache="disk"), seed=1)
    again = _epoch(to_datasets(splits, 4, seed=1, cache_dir=cache_dir, log=lines.append)[1])
    assert "decoding" in lines[-1]
    np.testing.assert_array_equal(again[0], expected[0])
    assert sorted(p.name for p in cache_dir.glob(".*.tmp")) == [".train-live.tmp"]


def test_auto_keeps_a_small_cache_in_memory_and_plan_writes_nothing(tmp_path):
    root = _folder(tmp_path / "imgs", {"a": 6, "b": 6})
    splits = load_splits(_cfg(root), seed=1)
    assert streaming.resolve_cache(splits, tmp_path / "cache") == "memory"
    assert streaming.resolve_cache(load_splits(_cfg(root, cache="disk"), seed=1), None) == "none"
    to_datasets(splits, 4, seed=1, cache_dir=tmp_path / "cache", log=lambda line: None)
    assert not (tmp_path / "cache").exists()


def test_odd_files_decode_to_the_configured_shape(tmp_path):
    """Mixed sizes; grayscale, RGBA, GIF and BMP files in an RGB set; a class with one image."""
    rng = np.random.default_rng(0)
    root = tmp_path / "imgs"
    (root / "mixed").mkdir(parents=True)
    _image(rng, 40, 10).save(root / "mixed" / "tall.jpg")
    _image(rng, 7, 33).save(root / "mixed" / "wide.png")
    _image(rng, 16, 16, "L").save(root / "mixed" / "gray.png")
    _image(rng, 16, 16, "RGBA").save(root / "mixed" / "alpha.png")
    _image(rng, 16, 16).save(root / "mixed" / "anim.gif")
    _image(rng, 16, 16).save(root / "mixed" / "bitmap.bmp")
    for i in range(8):
        _image(rng).save(root / "mixed" / f"more{i}.png")
    (root / "single").mkdir()
    _image(rng).save(root / "single" / "only.png")
    for color_mode, channels in (("rgb", 3), ("grayscale", 1)):
        splits = load_splits(_cfg(root, color_mode=color_mode, cache="none"), seed=0)
        assert splits.sizes()["train"] + splits.sizes()["validation"] + splits.sizes()["test"] == 15
        assert splits.labels[splits.order["train"]].tolist().count(1) == 1  # the lone image trains
        for ds in to_datasets(splits, 4, seed=0, log=lambda line: None):
            images, _ = _epoch(ds)
            assert images.shape[1:] == (16, 16, channels)
    gray = np.asarray(Image.open(root / "mixed" / "gray.png").resize((16, 16), Image.BILINEAR))
    splits = load_splits(_cfg(root, cache="none"), seed=0)
    index = splits.listing.paths.index(str(root / "mixed" / "gray.png"))
    decoded = next(iter(streaming._decoded(splits, np.array([index]))))[1].numpy()
    assert np.all(decoded[..., 0] == decoded[..., 1]) and abs(float(decoded.mean()) - float(gray.mean())) < 8


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_rotated_jpegs_are_turned_upright_as_pil_does(tmp_path, orientation):
    rng = np.random.default_rng(orientation)
    pixels = np.zeros((12, 20, 3), "uint8")
    pixels[:6, :10] = (255, 0, 0)  # quadrants in different colours: every orientation looks different
    pixels[:6, 10:] = (0, 255, 0)
    pixels[6:, :10] = (0, 0, 255)
    pixels[6:, 10:] = rng.integers(200, 255, 3)
    exif = Image.Exif()
    exif[0x0112] = orientation
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        Image.fromarray(pixels).save(tmp_path / name / "photo.jpg", exif=exif.tobytes(), quality=95)
    upright = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "a" / "photo.jpg")))
    listing = files.list_directory(str(tmp_path))
    files.check_images(listing, str(tmp_path))
    assert listing.orientation.tolist() == [orientation, orientation]
    splits = load_splits(_cfg(tmp_path, size=list(upright.shape[:2]), cache="none", max_examples=None), seed=0)
    decoded = next(iter(streaming._decoded(splits, np.array([0]))))[1].numpy()
    assert decoded.shape == upright.shape
    assert np.abs(decoded.astype(int) - upright.astype(int)).mean() < 4


def test_max_examples_takes_a_stratified_subset_without_decoding(tmp_path):
    root = _folder(tmp_path / "imgs", {"a": 40, "b": 20})
    splits = load_splits(_cfg(root, max_examples=30), seed=1)
    assert sum(splits.sizes().values()) == 30
    used = np.concatenate(list(splits.order.values()))
    assert np.bincount(splits.labels[used]).tolist() == [20, 10]


@pytest.mark.parametrize(
    "setup, fragments",
    [
        (
            lambda r: (r / "b" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 50),
            ["broken.jpg", "truncated JPEG"],
        ),
        (lambda r: (r / "b" / "empty.png").write_bytes(b""), ["empty.png", "empty"]),
        (lambda r: (r / "b" / "text.png").write_text("hello"), ["text.png", "not a JPEG, PNG, GIF or BMP"]),
        (lambda r: (r / "c").mkdir(), ["imgs/c", "holds no images"]),
    ],
    ids=["truncated-jpeg", "empty-file", "renamed-text", "empty-class-folder"],
)
def test_broken_files_are_found_before_anything_is_decoded(tmp_path, setup, fragments):
    root = _folder(tmp_path / "imgs", {"a": 3, "b": 3})
    setup(root)
    with pytest.raises(UserError) as caught:
        load_splits(_cfg(root), seed=0)
    line = str(caught.value)
    assert "\n" not in line and "data.path" in line
    for fragment in fragments:
        assert fragment in line, line


def test_a_file_that_passes_the_quick_check_but_does_not_decode_is_named(tmp_path):
    root = _folder(tmp_path / "imgs", {"a": 6, "b": 6})
    (root / "b" / "003.png").unlink()
    (root / "b" / "003.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4 + b"\xff\xd9")
    for cache in ("memory", "disk"):
        splits = load_splits(_cfg(root, cache=cache), seed=0)
        with pytest.raises(UserError, match=r"b/003\.jpg: data\.path: cannot decode this image"):
            to_datasets(splits, 4, seed=0, cache_dir=tmp_path / "cache", log=lambda line: None)
    assert not list((tmp_path / "cache").glob("*"))  # no cache, not even a temporary file, is left


# -- TFRecord -------------------------------------------------------------------------------------


def _shards(root: Path, x: np.ndarray, y: np.ndarray, names=None, per_shard=25, base=1) -> Path:
    import tensorflow as tf

    root.mkdir(parents=True)
    for start in range(0, len(y), per_shard):
        with tf.io.TFRecordWriter(str(root / f"train-{start // per_shard:05d}")) as writer:
            for image, label in zip(x[start : start + per_shard], y[start : start + per_shard], strict=True):
                buffer = io.BytesIO()
                Image.fromarray(image).save(buffer, format="PNG")
                feature = {
                    "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[buffer.getvalue()])),
                    "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label) + base])),
                }
                if names:
                    text = names[label].encode()
                    feature["image/class/text"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[text]))
                writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return root


@pytest.mark.parametrize("cache", ["none", "memory", "disk"])
def test_tfrecord_shards_give_the_same_split_and_images_as_the_arrays(tmp_path, cache):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (90, 16, 16, 3)).astype("uint8")
    y = rng.permutation(np.repeat([0, 1, 2], 30))
    shards = _shards(tmp_path / "shards", x, y, names=["cat", "dog", "eel"])  # labels 1-based, as ImageNet's
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y)
    memory = load_splits(DataConfig(source="npz", path=str(tmp_path / "d.npz")), seed=2)
    streamed = load_splits(_cfg(shards, source="tfrecord", cache=cache), seed=2)
    assert streamed.class_names == ["cat", "dog", "eel"]
    assert streamed.listing.shard_sizes == [25, 25, 25, 15]
    _assert_same_images(to_datasets(streamed, 8, seed=2, cache_dir=tmp_path / "cache", log=lambda line: None), memory)


def test_tfrecord_without_names_and_a_glob(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 255, (40, 8, 8, 3)).astype("uint8")
    y = np.repeat([3, 7], 20)  # any integers: the sorted distinct labels become classes 0 and 1
    _shards(tmp_path / "shards", x, y - 1, per_shard=10)
    splits = load_splits(_cfg(str(tmp_path / "shards" / "train-0000[0-2]"), source="tfrecord", size=[8, 8]), seed=0)
    assert splits.class_names == ["3", "7"] and sum(splits.sizes().values()) == 30


def test_tfrecord_problems_name_the_shard(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "shard-0").write_bytes(b"not a tfrecord file at all")
    with pytest.raises(UserError, match="shard-0: data.path: cannot read it as TFRecord examples"):
        load_splits(_cfg(tmp_path / "bad", source="tfrecord"), seed=0)
    rng = np.random.default_rng(1)
    _shards(tmp_path / "good", rng.integers(0, 255, (20, 8, 8, 3)).astype("uint8"), np.repeat([0, 1], 10))
    features = {"image": "image/encoded", "label": "label/missing", "class_name": None}
    with pytest.raises(UserError, match="label/missing"):
        load_splits(_cfg(tmp_path / "good", source="tfrecord", tfrecord=features), seed=0)


@pytest.mark.slow
def test_a_file_that_fails_mid_search_stops_it_naming_the_file_and_the_run_resumes(tmp_path):
    """`data.cache: none`: the file is first decoded inside a trial; `tune` stops (exit 2), naming it."""
    import yaml

    from tests.conftest import CONFIGS, run_cli

    root = _folder(tmp_path / "imgs", {"a": 30, "b": 30})
    raw = yaml.safe_load((CONFIGS / "digits_smoke.yaml").read_text())
    raw["data"] = {"source": "directory", "path": "imgs", "image_size": [12, 12], "cache": "none"}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    splits = load_splits(_cfg(root, size=[12, 12], cache="none"), seed=raw["seed"])
    victim = Path(splits.listing.paths[int(splits.order["train"][-1])])  # not among the TensorBoard samples
    good = victim.read_bytes()
    victim.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64 + b"IEND\xaeB`\x82")  # passes the quick check
    proc = run_cli("tune", "c.yaml", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert f"{victim.relative_to(tmp_path)}: data.path: cannot decode this image" in lines[0]
    assert "rerun the same command" in lines[0]
    victim.write_bytes(good)
    proc = run_cli("tune", "c.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "resuming run" in proc.stdout


@pytest.mark.parametrize(
    "source, cache",
    [
        ("npz", None),
        ("directory", "none"),
        ("directory", "memory"),
        ("directory", "disk"),
        ("tfrecord", "none"),
        ("tfrecord", "memory"),
    ],
)
def test_full_data_trains_on_train_and_validation_and_keeps_the_test_split_out(tmp_path, source, cache):
    """`train --full-data`: one shuffled pipeline over exactly the train + validation images, the same test."""
    rng = np.random.default_rng(1)
    x = rng.integers(0, 255, (60, 16, 16, 3)).astype("uint8")
    y = rng.permutation(np.repeat([0, 1, 2], 20))
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y)
    memory = load_splits(DataConfig(source="npz", path=str(tmp_path / "d.npz")), seed=5)
    if source == "npz":
        splits = memory
    elif source == "directory":
        for i, (image, label) in enumerate(zip(x, y, strict=True)):
            (tmp_path / "imgs" / f"class{label}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(tmp_path / "imgs" / f"class{label}" / f"{i:03d}.png")
        splits = load_splits(_cfg(tmp_path / "imgs", cache=cache), seed=5)
    else:
        splits = load_splits(_cfg(_shards(tmp_path / "shards", x, y), source="tfrecord", cache=cache), seed=5)
    quiet = lambda line: None  # noqa: E731
    train, val, test = to_datasets(splits, 8, seed=5, cache_dir=tmp_path / "cache", log=quiet, full_data=True)
    assert val is None
    images, labels = _epoch(train)
    seen = np.concatenate([memory.x_train, memory.x_val]), np.concatenate([memory.y_train, memory.y_val])
    assert _as_set(images, labels) == _as_set(*seen)
    assert _as_set(*_epoch(test)) == _as_set(memory.x_test, memory.y_test)
    # Shuffled across the two splits every epoch: validation images are not all at the end.
    val_keys = set(_as_set(memory.x_val, memory.y_val))
    keys = [(int(label), image.astype("uint8").tobytes()) for image, label in zip(images, labels, strict=True)]
    assert min(i for i, k in enumerate(keys) if k in val_keys) < len(memory.y_train)
    second = _epoch(train)[1]
    assert not np.array_equal(labels, second)
