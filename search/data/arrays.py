"""Data from Python (`tune(config, data=...)`): checked, written once into the run, fingerprinted.

A KerasTuner script holds its data in memory: `(x, y)`, or `{"train": (x, y), "validation": ...,
"test": ...}` (the user's own split is kept; ktsearch's stratified split makes only what is not
given), or a `tf.data.Dataset` of `(image, label)` elements or batches. Images `(N, H, W)` or
`(N, H, W, C)`, uint8 or float in any range: the model sees the values the user passed. Labels
are class indices or one-hot rows; the pipeline feeds them back in the form given, so a model
compiled with `categorical_crossentropy` trains as it did in the user's script.

The arrays go into `<run>/data/` (`source: arrays`): uint8 where every value is a whole number
in [0, 255] (as ktsearch's uint8 caches keep images), float32 otherwise, written and hashed in
chunks so that no second full copy is made in memory. `data.json` holds each array's shape,
stored dtype and SHA-256, so a resume with other arrays is refused naming what differs, and
`finalize`, `export`, `train` and `costs` read that saved copy (memory-mapped).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from search.errors import UserError

SPLITS = ("train", "validation", "test")
META_FILE = "data.json"
CHUNK = 4096  # images per chunk when converting, hashing and writing
WHERE = "data="  # how a Python caller gave it


@dataclass
class ArraysInput:
    """Checked arrays: split -> (images NHWC in their stored dtype, class indices), and what they hold."""

    parts: dict[str, tuple[np.ndarray, np.ndarray]]
    label_form: str  # "index" or "one_hot"
    num_classes: int
    meta: dict = field(default_factory=dict)

    def stored(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """A split's images in their stored dtype (what the saved copy holds: converted in chunks, or as given
        when they have it already) and its class indices."""
        x, y = self.parts[split]
        dtype = np.dtype(self.meta["splits"][split]["x"]["dtype"])
        if x.dtype != dtype:
            x = copy_in_chunks(x, np.empty(x.shape, dtype=dtype))
        return x, np.asarray(y, dtype="int64")


def copy_in_chunks(source: np.ndarray, out: np.ndarray) -> np.ndarray:
    """`out[:] = source`, converting `CHUNK` images at a time (no full-size temporary); returns `out`."""
    for start in range(0, len(source), CHUNK):
        out[start : start + CHUNK] = source[start : start + CHUNK]
    return out


def _fail(key: str, message: str) -> UserError:
    return UserError(WHERE, key, message)


def _is_dataset(obj: Any) -> bool:
    return type(obj).__module__.startswith("tensorflow") and hasattr(obj, "element_spec")


def _from_dataset(ds, split: str) -> tuple[np.ndarray, np.ndarray]:
    """All `(image, label)` elements or batches of a dataset, as two arrays."""
    spec = ds.element_spec
    if not isinstance(spec, tuple) or len(spec) != 2:
        raise _fail(split, f"expected a tf.data.Dataset of (image, label) pairs, got elements {spec}")
    images, labels = spec
    rank_x, rank_y = images.shape.rank, labels.shape.rank
    batched = rank_x == 4 or rank_y == 2 or (rank_x == 3 and rank_y == 1 and labels.shape[0] is None)
    if rank_y == 0 or (rank_x == 2 and rank_y == 1):
        batched = False
    xs, ys = [], []
    for x, y in ds.as_numpy_iterator():
        xs.append(x if batched else x[None])
        ys.append(y if batched else np.asarray(y)[None])
    if not xs:
        raise _fail(split, "the dataset is empty")
    return np.concatenate(xs), np.concatenate(ys)


def _pair(value: Any, split: str) -> tuple[np.ndarray, np.ndarray]:
    if _is_dataset(value):
        return _from_dataset(value, split)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise _fail(split, f"expected (x, y) arrays or a tf.data.Dataset, got {type(value).__name__}")
    return np.asarray(value[0]), np.asarray(value[1])


def _images(x: np.ndarray, split: str) -> np.ndarray:
    if x.dtype.kind not in "uif":
        raise _fail(f"{split} x", f"expected numeric images, got dtype {x.dtype}")
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or not 1 <= x.shape[-1] <= 4:
        raise _fail(f"{split} x", f"expected images of shape (N, H, W) or (N, H, W, C) with C 1-4, got {x.shape}")
    image = first_non_finite(x)
    if image is not None:
        raise _fail(f"{split} x", f"image {image} has NaN or infinite pixel values")
    return x


def first_non_finite(x: np.ndarray) -> int | None:
    """The index of the first image with a NaN or infinite value (checked in chunks), else None."""
    if x.dtype.kind != "f":
        return None
    for start in range(0, len(x), CHUNK):
        bad = ~np.isfinite(x[start : start + CHUNK])
        if bad.any():
            return start + int(np.argwhere(bad)[0][0])
    return None


def _labels(y: np.ndarray, n: int, split: str) -> tuple[np.ndarray, str, int]:
    """(class indices, "index" or "one_hot", classes the labels imply)."""
    if len(y) != n:
        raise _fail(f"{split} y", f"expected {n} labels (one per image in x), got {len(y)}")
    shape = f"shape {y.shape}, dtype {y.dtype}"
    neither = f"expected class indices (integers >= 0) or one-hot rows (0/1 with one 1 per row), got {shape}"
    if y.dtype.kind not in "uifb":
        raise _fail(f"{split} y", neither)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim == 1:
        if y.dtype.kind == "f" and not (np.isfinite(y).all() and np.array_equal(y, np.round(y))):
            raise _fail(f"{split} y", neither)
        if len(y) and y.min() < 0:
            raise _fail(f"{split} y", f"{neither}; found the label {y.min()}")
        indices = y.astype("int64")
        return indices, "index", int(indices.max()) + 1 if len(y) else 0
    if y.ndim == 2:
        ones = y == 1
        if not (np.logical_or(ones, y == 0).all() and (ones.sum(axis=1) == 1).all()):
            raise _fail(f"{split} y", neither)
        return ones.argmax(axis=1).astype("int64"), "one_hot", int(y.shape[1])
    raise _fail(f"{split} y", neither)


def _storage(x: np.ndarray) -> np.dtype:
    """uint8 when every value is a whole number in [0, 255] (checked in chunks), else float32."""
    if x.dtype == np.uint8:
        return np.dtype("uint8")
    for start in range(0, len(x), CHUNK):
        part = x[start : start + CHUNK]
        if part.min() < 0 or part.max() > 255 or (x.dtype.kind == "f" and not np.array_equal(part, np.round(part))):
            return np.dtype("float32")
    return np.dtype("uint8")


def _describe(x: np.ndarray, dtype: np.dtype) -> dict:
    digest = hashlib.sha256()
    for start in range(0, len(x), CHUNK):
        digest.update(np.ascontiguousarray(x[start : start + CHUNK], dtype=dtype).tobytes())
    return {"shape": list(x.shape), "dtype": str(dtype), "sha256": digest.hexdigest()}


def from_python(data: Any) -> ArraysInput:
    """Check `data` (see the module doc) without writing anything; UserError naming the split otherwise."""
    if isinstance(data, dict):
        unknown = [k for k in data if k not in SPLITS]
        if unknown:
            raise _fail(str(unknown[0]), f"unknown split; expected {', '.join(SPLITS)}")
        if "train" not in data:
            raise _fail("train", "missing; a dict of splits needs at least train")
        given = {k: data[k] for k in SPLITS if data.get(k) is not None}
    else:
        given = {"train": data}
    parts, forms, widths, shape = {}, set(), [], None
    for split, value in given.items():
        x, y = _pair(value, split)
        x = _images(x, split)
        if shape is not None and x.shape[1:] != shape:
            raise _fail(f"{split} x", f"expected images of shape {shape} as in train, got {x.shape[1:]}")
        shape = x.shape[1:]
        indices, form, width = _labels(y, len(x), split)
        forms.add(form)
        widths.append(width)
        parts[split] = (x, indices)
    if len(forms) > 1:
        raise _fail("y", "expected the same label form in every split, got class indices in one and one-hot in another")
    form = forms.pop()
    classes = max(widths) if form == "index" else widths[0]
    if form == "one_hot" and len(set(widths)) > 1:
        raise _fail("y", f"expected one-hot rows of the same width in every split, got {sorted(set(widths))}")
    if len(np.unique(parts["train"][1])) < 2:
        raise _fail("train y", f"expected at least 2 classes, found only class {int(parts['train'][1][0])}")
    meta = {"label_form": form, "num_classes": classes, "splits": {}}
    for split, (x, y) in parts.items():
        meta["splits"][split] = {"x": _describe(x, _storage(x)), "y": _describe(y, np.dtype("int64"))}
    return ArraysInput(parts, form, classes, meta)


def differences(saved: dict, new: dict) -> str | None:
    """What differs between two `data.json` fingerprints, in words (None: the same arrays)."""
    for key in ("label_form", "num_classes"):
        if saved.get(key) != new.get(key):
            return f"{key}: {saved.get(key)} before, {new.get(key)} now"
    old_splits, new_splits = saved.get("splits", {}), new.get("splits", {})
    for split in SPLITS:
        if (split in old_splits) != (split in new_splits):
            return f"{split}: {'given' if split in old_splits else 'not given'} before, {'given' if split in new_splits else 'not given'} now"
        for part in ("x", "y"):
            a, b = old_splits.get(split, {}).get(part), new_splits.get(split, {}).get(part)
            if a is None or a == b:
                continue
            if a["shape"] != b["shape"]:
                return f"{split} {part}: shape {tuple(a['shape'])} before, {tuple(b['shape'])} now"
            if a["dtype"] != b["dtype"]:
                return f"{split} {part}: stored as {a['dtype']} before, {b['dtype']} now"
            return f"{split} {part}: same shape {tuple(a['shape'])}, other values"
    return None


def save(arrays: ArraysInput, folder: Path) -> None:
    """Write the arrays (stored dtypes, in chunks) and `data.json` into `folder`, which must not exist yet."""
    tmp = folder.with_name(f".{folder.name}.tmp")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for split, (x, y) in arrays.parts.items():
        for part, array in (("x", x), ("y", y)):
            info = arrays.meta["splits"][split][part]
            out = np.lib.format.open_memmap(
                tmp / f"{part}_{split}.npy", mode="w+", dtype=info["dtype"], shape=array.shape
            )
            copy_in_chunks(array, out).flush()
            del out
    (tmp / META_FILE).write_text(json.dumps(arrays.meta, indent=2))
    tmp.replace(folder)


_PENDING: dict[str, dict] = {}  # folder -> the fingerprint of arrays checked in this process, not saved yet


def expect(folder: str | Path, arrays: ArraysInput) -> None:
    """`read_meta(folder)` answers with these arrays' fingerprint until they are saved there."""
    _PENDING[str(Path(folder))] = arrays.meta


def read_meta(folder: str | Path) -> dict:
    path = Path(folder) / META_FILE
    if not path.is_file() and str(Path(folder)) in _PENDING:
        return _PENDING[str(Path(folder))]
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(
            str(folder), "data.path", f"expected the arrays a Python call saved here ({META_FILE} not found)"
        ) from None
    except (OSError, ValueError) as e:
        raise UserError(
            str(path), "", f"cannot read ({e.__class__.__name__}: {e}); the run's copy of its data is damaged"
        ) from None


def load(folder: str | Path) -> ArraysInput:
    """The saved arrays, memory-mapped (`np.load(..., allow_pickle=False)`)."""
    meta = read_meta(folder)
    parts = {}
    for split in meta["splits"]:
        try:
            x, y = (np.load(Path(folder) / f"{p}_{split}.npy", mmap_mode="r", allow_pickle=False) for p in ("x", "y"))
        except (OSError, ValueError) as e:
            raise UserError(str(folder), "data.path", f"cannot read the saved {split} arrays ({e})") from None
        parts[split] = (x, y)
    return ArraysInput(parts, meta["label_form"], int(meta["num_classes"]), meta)
