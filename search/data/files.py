"""Image files on disk: listing a class-per-folder tree or TFRecord shards, and checking them cheaply.

Nothing here decodes pixels or imports TensorFlow, except `tfrecord_labels` (a labels-only pass
over the shards). The listing of a folder is the order `keras.utils.image_dataset_from_directory`
(`shuffle=False`) lists it in, which ktsearch used before it streamed folders: classes are the
sorted subfolders (hidden ones skipped), and each class's files are walked recursively, folders
in sorted order, files sorted by name, extensions matched case-insensitively. The same listing
gives the same labels, so a run started before keeps its split (`tests/search/test_streaming.py`
compares the two listings).

The quick check reads each file's first 64 KiB and last 1 KiB: the format's signature (JPEG, PNG,
GIF, BMP), its end marker (a truncated JPEG or PNG fails here), and a JPEG's EXIF orientation. It
finds the usual broken files (empty, truncated, another format renamed) without decoding; a file
that passes it and still fails to decode stops the search when it is reached, naming the file.
"""

from __future__ import annotations

import glob
import os
import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from search.errors import UserError

IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")  # Keras's image_dataset_from_directory allowlist
HEAD_BYTES, TAIL_BYTES = 65536, 1024
CHECK_THREADS = 16  # I/O bound: many files at once help on network file systems


@dataclass
class Listing:
    """What a source holds, without pixels: one entry per image, in the source's order."""

    labels: np.ndarray  # int64, as the source gives them (a folder: class index; TFRecord: its label)
    class_names: list[str]
    paths: list[str] | None = None  # a folder's files
    orientation: np.ndarray | None = None  # EXIF orientation per file (1: as stored), folders only
    shards: list[str] | None = None  # TFRecord files, in order
    shard_sizes: list[int] | None = None  # records per shard
    fingerprint: list | None = None  # (name, size, mtime_ns) per file: what the cache key hashes

    def __len__(self) -> int:
        return len(self.labels)

    def describe(self, index: int) -> str:
        """A person's name for image `index`: its file, or its shard and record number."""
        if self.paths is not None:
            return self.paths[index]
        offset = 0
        for shard, size in zip(self.shards, self.shard_sizes, strict=True):
            if index < offset + size:
                return f"{shard} (record {index - offset})"
            offset += size
        return f"record {index}"


def _stat(path: str) -> tuple[str, int, int]:
    st = os.stat(path)
    return path, st.st_size, st.st_mtime_ns


def list_directory(root: str) -> Listing:
    """The folder's images and labels (class = subfolder), in Keras's order; UserError when unusable."""
    try:
        entries = sorted(os.listdir(root))
    except OSError as e:
        raise UserError(root, "data.path", f"cannot list the folder ({e.strerror})") from None
    classes = [d for d in entries if not d.startswith(".") and os.path.isdir(os.path.join(root, d))]
    if len(classes) < 2:
        raise UserError(root, "data.path", f"expected one subfolder per class (at least 2), found {len(classes)}")
    paths: list[str] = []
    labels: list[int] = []
    for index, name in enumerate(classes):
        folder = os.path.join(root, name)
        found = [
            os.path.join(dirpath, f)
            for dirpath, _, files in sorted(os.walk(folder), key=lambda walk: walk[0])
            for f in sorted(files)
            if f.lower().endswith(IMAGE_EXTENSIONS)
        ]
        if not found:
            raise UserError(
                folder,
                "data.path",
                "this class folder holds no images (jpeg, png, bmp or gif); add images or move the folder out "
                f"of {root}",
            )
        paths += found
        labels += [index] * len(found)
    return Listing(np.array(labels, dtype="int64"), classes, paths=paths)


def check_images(listing: Listing, root: str) -> None:
    """The quick check of every file (signature, end marker, EXIF orientation); one UserError for the bad ones."""
    with ThreadPoolExecutor(CHECK_THREADS) as pool:
        results = list(pool.map(_check_file, listing.paths))  # (problem, orientation, size, mtime_ns)
    bad = [(path, result[0]) for path, result in zip(listing.paths, results, strict=True) if result[0]]
    if bad:
        path, problem = bad[0]
        more = f"; {len(bad) - 1} more files fail this check" if len(bad) > 1 else ""
        raise UserError(
            path, "data.path", f"not a readable image: {problem}{more}; replace or remove it (nothing was written)"
        )
    listing.orientation = np.array([result[1] for result in results], dtype="int32")
    listing.fingerprint = [
        (os.path.relpath(path, root), size, mtime)
        for path, (_, _, size, mtime) in zip(listing.paths, results, strict=True)
    ]


def _check_file(path: str) -> tuple[str | None, int, int, int]:
    """(problem or None, EXIF orientation, size, mtime_ns) of one image file, from one open of it."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            head = f.read(HEAD_BYTES)
            f.seek(max(0, st.st_size - TAIL_BYTES))
            tail = f.read()
    except OSError as e:
        return f"cannot read it ({e.strerror})", 1, 0, 0
    return (*check_bytes(head, tail, st.st_size), st.st_size, st.st_mtime_ns)


def check_bytes(head: bytes, tail: bytes, size: int) -> tuple[str | None, int]:
    """(problem or None, EXIF orientation) from an image's first bytes, last bytes and size."""
    if size == 0:
        return "the file is empty", 1
    if head.startswith(b"\xff\xd8\xff"):
        if b"\xff\xd9" not in tail:
            return "truncated JPEG (no end-of-image marker)", 1
        return None, jpeg_orientation(head)
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return (None if b"IEND" in tail else "truncated PNG (no IEND chunk)"), 1
    if head.startswith((b"GIF87a", b"GIF89a")):
        return (None if tail.rstrip(b"\x00").endswith(b";") else "truncated GIF (no trailer)"), 1
    if head.startswith(b"BM") and len(head) >= 6:
        declared = struct.unpack("<I", head[2:6])[0]
        return (None if size >= declared else f"truncated BMP ({size} of {declared} bytes)"), 1
    return f"not a JPEG, PNG, GIF or BMP file (it starts with {head[:8]!r})", 1


def jpeg_orientation(head: bytes) -> int:
    """The EXIF orientation (1-8) of a JPEG from its first bytes; 1 when there is none."""
    i = 2
    while i + 4 <= len(head) and head[i] == 0xFF:
        marker = head[i + 1]
        length = struct.unpack(">H", head[i + 2 : i + 4])[0]
        if marker == 0xE1 and head[i + 4 : i + 10] == b"Exif\x00\x00":
            return _tiff_orientation(head[i + 10 : i + 2 + length])
        if marker in (0xDA, 0xD9):  # start of scan: no more metadata
            break
        i += 2 + length
    return 1


def _tiff_orientation(tiff: bytes) -> int:
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return 1
    order = "<" if tiff[:2] == b"II" else ">"
    ifd = struct.unpack(order + "I", tiff[4:8])[0]
    if ifd + 2 > len(tiff):
        return 1
    count = struct.unpack(order + "H", tiff[ifd : ifd + 2])[0]
    for k in range(count):
        entry = ifd + 2 + 12 * k
        if entry + 12 > len(tiff):
            break
        tag, kind = struct.unpack(order + "HH", tiff[entry : entry + 4])
        if tag == 0x0112 and kind == 3:  # Orientation, SHORT
            value = struct.unpack(order + "H", tiff[entry + 8 : entry + 10])[0]
            return value if 1 <= value <= 8 else 1
    return 1


def is_glob(path: str) -> bool:
    return any(ch in path for ch in "*?[")


def tfrecord_files(path: str) -> list[str]:
    """The shards `data.path` names: a file, a folder (its files, sorted, hidden ones skipped) or a glob.

    Empty when there are none (config validation says why, naming the key).
    """
    if is_glob(path):
        return sorted(p for p in glob.glob(path) if os.path.isfile(p))
    if os.path.isdir(path):
        return sorted(
            os.path.join(path, f)
            for f in os.listdir(path)
            if not f.startswith(".") and os.path.isfile(os.path.join(path, f))
        )
    return [path] if os.path.isfile(path) else []


def tfrecord_labels(path: str, features: dict) -> Listing:
    """A labels-only pass over the shards (image bytes are read, never decoded): labels, class names, sizes.

    Each record's `features['image']` is checked for an image signature on the way (its first bytes).
    """
    import tensorflow as tf

    image_key, label_key, name_key = features["image"], features["label"], features.get("class_name")
    spec = {image_key: tf.io.FixedLenFeature([], tf.string), label_key: tf.io.FixedLenFeature([], tf.int64)}
    if name_key:
        spec[name_key] = tf.io.FixedLenFeature([], tf.string, default_value="")

    def parse(record):
        parsed = tf.io.parse_single_example(record, spec)
        head = tf.strings.substr(parsed[image_key], 0, 3)
        return parsed[label_key], parsed.get(name_key, tf.constant("")), head

    shards = tfrecord_files(path)
    if not shards:  # validated before; gone since
        raise UserError(path, "data.path", "expected TFRecord files here, found none")
    labels, names, sizes, fingerprint = [], {}, [], []
    for shard in shards:
        ds = tf.data.TFRecordDataset(shard).map(parse, num_parallel_calls=2).batch(4096)
        count = 0
        try:
            for label, name, head in ds.as_numpy_iterator():
                for k, h in enumerate(head):
                    if not h.startswith((b"\xff\xd8\xff", b"\x89PN", b"GIF", b"BM")):
                        raise UserError(
                            f"{shard} (record {count + k})",
                            f"data.tfrecord.image ({image_key})",
                            f"not a JPEG, PNG, GIF or BMP image (starts with {bytes(h)!r})",
                        )
                for value, text in zip(label.tolist(), name.tolist(), strict=True):
                    if text and names.setdefault(value, text) != text:
                        raise UserError(
                            shard,
                            f"data.tfrecord.class_name ({name_key})",
                            f"label {value} is named both {names[value].decode()!r} and {text.decode()!r}",
                        )
                labels += label.tolist()
                count += len(label)
        except tf.errors.OpError as e:
            message = (str(e.message).strip().splitlines() or [""])[0]
            raise UserError(shard, "data.path", f"cannot read it as TFRecord examples: {message}") from None
        sizes.append(count)
        fingerprint.append(_stat(shard))
    if not labels:
        raise UserError(path, "data.path", "the TFRecord files hold no records")
    y = np.array(labels, dtype="int64")
    distinct = np.unique(y)
    class_names = [names[v].decode() if v in names else str(v) for v in distinct.tolist()]
    return Listing(y, class_names, shards=shards, shard_sizes=sizes, fingerprint=fingerprint)
