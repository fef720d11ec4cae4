"""Image folders and TFRecord shards, streamed from disk through tf.data into a uint8 cache.

A streamed source is never held as floats. Listing it (`search.data.files`) gives labels without
pixels; the split is computed from the labels alone. Images are decoded in a parallel tf.data
`map` (read, decode, EXIF orientation, resize to `data.image_size`, rounded to uint8), either
every epoch (`data.cache: none`) or once into a uint8 cache (`memory`, or `disk` under the run
directory), from which each epoch gathers batches by index. An epoch's order is a permutation
of the split's positions, drawn by the same seeded `shuffle` whichever the cache, so changing
`data.cache` changes neither the images nor their order (TFRecord shards without a cache are
the exception: they are read in shard order, see `_tfrecord_pipeline`).

TensorFlow is imported inside the functions that need it.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from search.data.files import Listing
from search.errors import UserError

SPLITS = ("train", "validation", "test")
MEMORY_BUDGET_FRACTION = 0.25  # data.cache auto: in memory up to this share of the machine's RAM
DECODE_CALLS = max(4, os.cpu_count() or 1)  # parallel decodes: I/O waits overlap even on 2 cores
GATHER_CALLS = 2  # batches gathered from the cache at once
FILL_BATCH = 256
SHUFFLE_RECORDS = 2048  # TFRecord without a cache: serialized records in the shuffle buffer
ABANDONED_AFTER = 600  # seconds after which a cache's temporary file is taken for a killed fill's


def memory_budget() -> int:
    """Bytes a uint8 cache may take in memory under `data.cache: auto`."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 << 30
    return int(total * MEMORY_BUDGET_FRACTION)


@dataclass
class StreamedSplits:
    """A file-backed source, split: indices into its listing, nothing decoded yet."""

    source: str  # "directory" | "tfrecord"
    listing: Listing
    labels: np.ndarray  # 0..K-1 per listing entry
    order: dict[str, np.ndarray]  # split -> listing indices in the split's (seeded) order
    class_names: list[str]
    image_size: tuple[int, int]
    channels: int
    cache: str  # data.cache as configured
    features: dict | None = None  # TFRecord feature keys
    stores: dict = field(default_factory=dict)  # split -> filled cache

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (*self.image_size, self.channels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def sizes(self) -> dict[str, int]:
        return {name: len(self.order[name]) for name in SPLITS}

    def indices(self, split: str) -> np.ndarray:
        """The split's listing indices in listing order: the order of its cache and of its epochs' positions."""
        return np.sort(self.order[split])

    def nbytes(self) -> int:
        """Bytes of the uint8 cache of every split."""
        return sum(self.sizes().values()) * int(np.prod(self.input_shape))

    def key(self) -> str:
        """What the cache depends on: the files (names, sizes, times), the image format and the split."""
        digest = hashlib.sha256()
        digest.update(
            json.dumps(
                [self.source, self.listing.fingerprint, self.features, list(self.image_size), self.channels],
                default=str,
            ).encode()
        )
        for name in SPLITS:
            digest.update(self.indices(name).astype("<i8").tobytes())
        return digest.hexdigest()[:16]

    def samples(self, n: int) -> np.ndarray:
        """The first `n` training images (float32, 0-255): the TensorBoard augmentation grid."""
        if self.listing.paths is not None:
            chosen = self.order["train"][:n]
        else:  # a shard is read in order: take the first training records
            chosen = self.indices("train")[:n]
        import tensorflow as tf

        try:
            images = [image for _, image in _decoded(self, chosen).as_numpy_iterator()]
        except tf.errors.OpError as e:
            raise (decode_failure(self, chosen, e) or e) from None
        return np.stack(images).astype("float32")


# -- decoding ---------------------------------------------------------------------------------


def _orient(image, orientation):
    """Undo a JPEG's EXIF orientation (1-8), as PIL's `ImageOps.exif_transpose` does."""
    import tensorflow as tf

    branches = [
        lambda: image,
        lambda: tf.image.flip_left_right(image),
        lambda: tf.image.rot90(image, 2),
        lambda: tf.image.flip_up_down(image),
        lambda: tf.image.transpose(image),
        lambda: tf.image.rot90(image, 3),
        lambda: tf.image.rot90(tf.image.transpose(image), 2),
        lambda: tf.image.rot90(image, 1),
    ]
    return tf.switch_case(tf.clip_by_value(orientation - 1, 0, 7), branches)


def decode_image(data, orientation, image_size, channels):
    """Encoded bytes -> uint8 (H, W, C) at `image_size`: Keras's loader's decode and bilinear resize, rounded."""
    import tensorflow as tf

    if channels == 1:  # GIF and BMP decode to colour only
        colour_only = tf.strings.regex_full_match(tf.strings.substr(data, 0, 2), "GI|BM")
        image = tf.cond(
            colour_only,
            lambda: tf.image.rgb_to_grayscale(tf.io.decode_image(data, channels=3, expand_animations=False)),
            lambda: tf.io.decode_image(data, channels=1, expand_animations=False),
        )
    else:
        image = tf.io.decode_image(data, channels=channels, expand_animations=False)
    image = _orient(image, orientation)
    image = tf.image.resize(image, image_size, method="bilinear")
    image = tf.cast(tf.round(tf.clip_by_value(image, 0.0, 255.0)), tf.uint8)
    image.set_shape((*image_size, channels))
    return image


def _tfrecord_parser(features: dict):
    import tensorflow as tf

    spec = {features["image"]: tf.io.FixedLenFeature([], tf.string)}
    return lambda record: tf.io.parse_single_example(record, spec)[features["image"]]


def _decoded(splits: StreamedSplits, chosen: np.ndarray, ignore_errors: bool = False):
    """(listing index, uint8 image) for each of `chosen` (in listing order for TFRecord), decoded in parallel."""
    import tensorflow as tf

    from search.runtime import tf_options

    size, channels = tuple(splits.image_size), splits.channels
    if splits.listing.paths is not None:
        paths = np.array(splits.listing.paths, dtype=object)[chosen].astype(str)
        ds = tf.data.Dataset.from_tensor_slices((chosen.astype("int64"), paths, splits.listing.orientation[chosen]))
        ds = ds.map(
            lambda i, p, o: (i, decode_image(tf.io.read_file(p), o, size, channels)),
            num_parallel_calls=DECODE_CALLS,
            deterministic=True,
        )
    else:
        wanted = np.zeros(len(splits.listing), dtype=bool)
        wanted[chosen] = True
        member = tf.constant(wanted)
        parse = _tfrecord_parser(splits.features)
        ds = tf.data.TFRecordDataset(splits.listing.shards).enumerate()
        ds = ds.filter(lambda i, r: tf.gather(member, i)).take(len(chosen))
        ds = ds.map(
            lambda i, r: (i, decode_image(parse(r), 1, size, channels)),
            num_parallel_calls=DECODE_CALLS,
            deterministic=True,
        )
    if ignore_errors:
        ds = ds.ignore_errors()
    return ds.with_options(tf_options())


def undecodable(splits: StreamedSplits, chosen: np.ndarray) -> list[int]:
    """The listing indices among `chosen` that do not decode (a full decode: run only after a failure)."""
    import tensorflow as tf

    ok = set()
    with tf.device("/cpu:0"):
        for batch, _ in _decoded(splits, chosen, ignore_errors=True).batch(FILL_BATCH).as_numpy_iterator():
            ok.update(batch.tolist())
    return [int(i) for i in chosen if int(i) not in ok]


def decode_failure(splits: StreamedSplits, chosen: np.ndarray, error: Exception) -> UserError | None:
    """The one-line error for a file that passed the quick check but does not decode; None if none is found."""
    bad = undecodable(splits, chosen)
    if not bad:
        return None
    more = f" ({len(bad) - 1} more files fail too)" if len(bad) > 1 else ""
    message = (str(getattr(error, "message", error)).strip().splitlines() or [""])[0][:120]
    return UserError(
        splits.listing.describe(bad[0]),
        "data.path",
        f"cannot decode this image ({message}){more}; it passed the quick check at the start. Replace or remove "
        "it and rerun the same command: the run resumes",
    )


# -- the cache --------------------------------------------------------------------------------


class MemoryStore:
    """A split's images as one uint8 array in memory."""

    def __init__(self, n: int, shape: tuple[int, ...]):
        self.array = np.empty((n, *shape), dtype="uint8")
        self.filled = 0

    def append(self, images: np.ndarray) -> None:
        self.array[self.filled : self.filled + len(images)] = images
        self.filled += len(images)

    def finish(self) -> MemoryStore:
        return self

    def abort(self) -> None:
        self.array = None

    def take(self, positions: np.ndarray) -> np.ndarray:
        return self.array[positions]


class DiskStore:
    """A split's images as a `.npy` file of uint8 under the run directory, read by position with `pread`.

    Written to a unique temporary name, flushed and renamed, so a file under the final name is
    always complete: a kill leaves only a temporary file, never a partial cache that is trusted,
    and a chief and its workers filling the same cache on a shared disk each rename a whole file.
    Reads use `os.pread`, not a memory map, so the cache stays out of the process's RSS.
    """

    def __init__(self, path: Path, n: int, shape: tuple[int, ...]):
        self.path, self.shape, self.n = Path(path), tuple(shape), n
        self.item = int(np.prod(shape))
        self._tmp: Path | None = None
        self._file = None
        self._fd: int | None = None
        self.offset = 0

    @classmethod
    def open(cls, path: Path, n: int, shape: tuple[int, ...]) -> DiskStore | None:
        """The complete cache at `path`, or None when it is missing or does not match."""
        store = cls(path, n, shape)
        try:
            with open(path, "rb") as f:
                version = np.lib.format.read_magic(f)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                header = read(f)  # (shape, fortran_order, dtype)
                offset = f.tell()
        except (OSError, ValueError):
            return None
        if header[0] != (n, *shape) or header[2] != np.dtype("uint8"):
            return None
        if path.stat().st_size != offset + n * store.item:
            return None
        store.offset = offset
        store._fd = os.open(path, os.O_RDONLY)
        return store

    def create(self) -> DiskStore:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}.tmp")
        self._file = open(self._tmp, "wb")  # noqa: SIM115 (closed in finish/abort)
        header = {"descr": "|u1", "fortran_order": False, "shape": (self.n, *self.shape)}
        np.lib.format.write_array_header_1_0(self._file, header)
        self.offset = self._file.tell()
        return self

    def append(self, images: np.ndarray) -> None:
        self._file.write(np.ascontiguousarray(images, dtype="uint8").tobytes())

    def finish(self) -> DiskStore:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self._tmp, self.path)
        self._fd = os.open(self.path, os.O_RDONLY)
        return self

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)

    def __del__(self):
        if self._fd is not None:
            os.close(self._fd)

    def take(self, positions: np.ndarray) -> np.ndarray:
        out = np.empty((len(positions), *self.shape), dtype="uint8")
        flat = out.reshape(len(positions), self.item)
        for k, position in enumerate(positions.tolist()):
            flat[k] = np.frombuffer(os.pread(self._fd, self.item, self.offset + position * self.item), "uint8")
        return out


def resolve_cache(splits: StreamedSplits, cache_dir: Path | None) -> str:
    """memory, disk or none: what `data.cache` means for this source on this machine."""
    mode = splits.cache
    if mode == "auto":
        mode = "memory" if splits.nbytes() <= memory_budget() else "disk"
    if mode == "disk" and cache_dir is None:  # nowhere to write (plan's calibration): stream instead
        mode = "none"
    return mode


def fill_cache(splits: StreamedSplits, cache_dir: Path | None, log=print) -> str:
    """Decode every split once into its cache (or reuse the disk cache); returns the mode used."""
    mode = resolve_cache(splits, cache_dir)
    if mode == "none" or splits.stores:
        return mode
    shape, key = splits.input_shape, splits.key()
    if mode == "disk":
        found = {name: DiskStore.open(cache_dir / f"{name}-{key}.npy", splits.sizes()[name], shape) for name in SPLITS}
        if all(found.values()):
            splits.stores = found
            log(f"data: reusing the uint8 cache in {cache_dir} ({_mb(splits.nbytes())})")
            return mode
        _remove_abandoned(cache_dir)
        stores = {name: DiskStore(cache_dir / f"{name}-{key}.npy", splits.sizes()[name], shape) for name in SPLITS}
        stores = {name: store.create() for name, store in stores.items()}
    else:
        stores = {name: MemoryStore(splits.sizes()[name], shape) for name in SPLITS}
    where = "memory" if mode == "memory" else str(cache_dir)
    log(
        f"data: decoding {len(np.concatenate(list(splits.order.values())))} images into a uint8 cache in {where} "
        f"({_mb(splits.nbytes())}, data.cache: {splits.cache})"
    )
    try:
        _fill(splits, stores)
    except BaseException:
        for store in stores.values():
            store.abort()
        raise
    splits.stores = {name: store.finish() for name, store in stores.items()}
    if mode == "disk":
        _remove_stale(cache_dir, key)
    return mode


def _fill(splits: StreamedSplits, stores: dict) -> None:
    import tensorflow as tf

    split_of = np.full(len(splits.listing), -1, dtype="int64")
    for k, name in enumerate(SPLITS):
        split_of[splits.order[name]] = k
    chosen = np.flatnonzero(split_of >= 0)
    try:
        for index, images in _decoded(splits, chosen).batch(FILL_BATCH).prefetch(2).as_numpy_iterator():
            owner = split_of[index]
            for k, name in enumerate(SPLITS):
                mine = owner == k
                if mine.any():
                    stores[name].append(images[mine])
    except tf.errors.OpError as e:
        problem = decode_failure(splits, chosen, e)
        if problem is None:
            raise
        raise problem from None


def _remove_stale(cache_dir: Path, key: str) -> None:
    """Caches of earlier data or image sizes: the current one replaces them."""
    for path in cache_dir.glob("*.npy"):
        if path.stem.rpartition("-")[2] != key and path.stem.partition("-")[0] in SPLITS:
            path.unlink(missing_ok=True)


def _remove_abandoned(cache_dir: Path) -> None:
    """Temporary files of fills that were killed: untouched for `ABANDONED_AFTER` s (a live fill writes on)."""
    if not cache_dir.is_dir():
        return
    now = time.time()
    for path in cache_dir.glob(".*.tmp"):
        try:
            if now - path.stat().st_mtime > ABANDONED_AFTER:
                path.unlink()
        except FileNotFoundError:
            pass


def _mb(n: int) -> str:
    return f"{n / 1e6:,.0f} MB" if n >= 1e6 else f"{n / 1e3:,.0f} kB"


# -- pipelines --------------------------------------------------------------------------------


def pipelines(splits: StreamedSplits, batch_size: int, cache_dir: Path | None, log=print, full_data: bool = False):
    """(seed -> train, validation, test): tf.data pipelines of float32 0-255 batches; the train one
    reshuffles every epoch from the seed it is built with (`search.data.sources.seeded_datasets`).

    `full_data`: the train pipeline draws from the training and validation images together (from
    the same cache: nothing is decoded again) and the validation one is None.
    """
    mode = fill_cache(splits, cache_dir, log)
    if mode != "none":
        build = lambda names, shuffle, seed: _cached_pipeline(splits, names, batch_size, seed, shuffle)  # noqa: E731
    elif splits.listing.paths is not None:
        build = lambda names, shuffle, seed: _file_pipeline(splits, names, batch_size, seed, shuffle)  # noqa: E731
    else:
        build = lambda names, shuffle, seed: _tfrecord_pipeline(splits, names, batch_size, seed, shuffle)  # noqa: E731
    train = ("train", "validation") if full_data else ("train",)
    val = None if full_data else build(("validation",), False, 0)
    return (lambda seed: build(train, True, seed)), val, build(("test",), False, 0)


def _positions(n: int, seed: int, shuffle: bool):
    """The split's positions 0..n-1, in a fresh seeded permutation every epoch when training."""
    import tensorflow as tf

    ds = tf.data.Dataset.range(n)
    return ds.shuffle(n, seed=seed, reshuffle_each_iteration=True) if shuffle else ds


def _finish(ds, batched: bool, batch_size: int):
    import tensorflow as tf

    from search.runtime import PREFETCH_BATCHES, tf_options

    if not batched:
        ds = ds.batch(batch_size)
    ds = ds.map(lambda x, y: (tf.cast(x, tf.float32), y))
    return ds.prefetch(PREFETCH_BATCHES).with_options(tf_options())


class _Joined:
    """Several splits' stores read as one: position p of the join is in the first store that holds it."""

    def __init__(self, stores: list, sizes: list[int]):
        self.stores = stores
        self.starts = np.cumsum([0, *sizes])

    def take(self, positions: np.ndarray) -> np.ndarray:
        if len(self.stores) == 1:
            return self.stores[0].take(positions)
        owner = np.searchsorted(self.starts, positions, side="right") - 1
        parts = [self.stores[k].take(positions[owner == k] - self.starts[k]) for k in range(len(self.stores))]
        out = np.empty((len(positions), *parts[0].shape[1:]), dtype=parts[0].dtype)
        for k, part in enumerate(parts):
            out[owner == k] = part
        return out


def _chosen(splits: StreamedSplits, names: tuple[str, ...]) -> np.ndarray:
    """Listing indices of the named splits, each split's in listing order, one after the other."""
    return np.concatenate([splits.indices(name) for name in names])


def _cached_pipeline(splits: StreamedSplits, names: tuple[str, ...], batch_size: int, seed: int, shuffle: bool):
    import tensorflow as tf

    store = _Joined([splits.stores[name] for name in names], [splits.sizes()[name] for name in names])
    labels = tf.constant(splits.labels[_chosen(splits, names)])
    shape = splits.input_shape

    def gather(positions):
        images = tf.numpy_function(store.take, [positions], tf.uint8, stateful=False)
        images.set_shape((None, *shape))
        return images, tf.gather(labels, positions)

    ds = _positions(int(labels.shape[0]), seed, shuffle).batch(batch_size)
    ds = ds.map(gather, num_parallel_calls=GATHER_CALLS, deterministic=True)
    return _finish(ds, True, batch_size)


def _file_pipeline(splits: StreamedSplits, names: tuple[str, ...], batch_size: int, seed: int, shuffle: bool):
    """No cache, a folder: the file names are shuffled, then decoded in parallel."""
    import tensorflow as tf

    chosen = _chosen(splits, names)
    paths = tf.constant(np.array(splits.listing.paths, dtype=object)[chosen].astype(str))
    orientation = tf.constant(splits.listing.orientation[chosen])
    labels = tf.constant(splits.labels[chosen])
    size, channels = tuple(splits.image_size), splits.channels

    def load(position):
        data = tf.io.read_file(tf.gather(paths, position))
        return decode_image(data, tf.gather(orientation, position), size, channels), tf.gather(labels, position)

    ds = _positions(len(chosen), seed, shuffle).map(load, num_parallel_calls=DECODE_CALLS, deterministic=True)
    return _finish(ds, False, batch_size)


def _tfrecord_pipeline(splits: StreamedSplits, names: tuple[str, ...], batch_size: int, seed: int, shuffle: bool):
    """No cache, TFRecord: shards in a fresh order every epoch, read four at a time, the split's records
    kept, shuffled in a buffer of `SHUFFLE_RECORDS` serialized records, then decoded in parallel."""
    import tensorflow as tf

    wanted = np.zeros(len(splits.listing), dtype=bool)
    wanted[_chosen(splits, names)] = True
    member, labels = tf.constant(wanted), tf.constant(splits.labels)
    offsets = np.concatenate([[0], np.cumsum(splits.listing.shard_sizes)[:-1]]).astype("int64")
    files = tf.data.Dataset.from_tensor_slices((splits.listing.shards, offsets))
    if shuffle:
        files = files.shuffle(len(offsets), seed=seed, reshuffle_each_iteration=True)
    ds = files.interleave(
        lambda f, start: tf.data.TFRecordDataset(f).enumerate(start),
        cycle_length=min(4, len(offsets)),
    ).filter(lambda i, r: tf.gather(member, i))
    if shuffle:
        ds = ds.shuffle(min(SHUFFLE_RECORDS, int(wanted.sum())), seed=seed, reshuffle_each_iteration=True)
    parse, size, channels = _tfrecord_parser(splits.features), tuple(splits.image_size), splits.channels
    ds = ds.map(
        lambda i, r: (decode_image(parse(r), 1, size, channels), tf.gather(labels, i)),
        num_parallel_calls=DECODE_CALLS,
        deterministic=True,
    )
    return _finish(ds, False, batch_size)
