"""Folders of JPEGs streamed from disk against the in-memory loader ktsearch had before, side by side.

    python -m tests.benchmarks.streaming                 # ~10 min on 2 CPU cores, ~130 MB of JPEGs in /tmp
    python -m tests.benchmarks.streaming --quick         # 500 and 2,000 images: checks the benchmark runs

It generates the folders once (`--workdir`, default /tmp/ktsearch-streaming-bench): 500, 8,000 and
20,000 RGB JPEGs of odd sizes (96-200 px a side, 10 classes), all read at 128×128. Then, each
figure measured in fresh processes, alternating where there are repeats:

1. peak RSS of a one-trial search (`ktsearch tune`, random search, 1 trial, 1 epoch) on each
   folder with `data.cache` memory, disk and none, against the folder's uint8 size. Target: at
   most the 500-image search's RSS + the cache + 10%, and flat in the folder's size with `disk`
   and `none`;
2. time to the first training batch at 8,000 images: the loader ktsearch had before this change
   (kept here: `image_dataset_from_directory`, float32 arrays stacked and split, then
   `from_tensor_slices`) against the streamed source with its cache filled in memory, and without
   a cache (median of 3). Target: >= 3x faster;
3. training images/s of an epoch at 8,000 images from the warm memory and disk caches against the
   same images as in-memory float32 arrays (median of 3 epochs after the first, 3 fits each).
   Target: >= 0.9x.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[2]
SIZE = [128, 128]
CLASSES = 10


def _make_images(args: tuple[str, int, int]) -> None:
    from PIL import Image

    folder, start, stop = args
    for i in range(start, stop):
        rng = np.random.default_rng(i)
        label = i % CLASSES
        h, w = (int(v) for v in rng.integers(96, 200, 2))
        small = rng.integers(0, 255, (6, 6, 3)).astype("uint8")
        small[:, :, label % 3] = 40 + 20 * label  # a class signal, so training has something to learn
        image = Image.fromarray(small).resize((w, h), Image.BILINEAR)
        path = Path(folder) / f"class{label}" / f"{i:06d}.jpg"
        image.save(path, quality=90)


def make_folder(workdir: Path, n: int) -> Path:
    folder = workdir / f"jpegs-{n}"
    done = folder / ".complete"
    if done.exists():
        return folder
    for label in range(CLASSES):
        (folder / f"class{label}").mkdir(parents=True, exist_ok=True)
    chunks = [(str(folder), s, min(n, s + 500)) for s in range(0, n, 500)]
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(_make_images, chunks))
    done.write_text("ok")
    return folder


def _config(workdir: Path, folder: Path, cache: str, name: str) -> Path:
    raw = {
        "name": name,
        "seed": 1,
        "results_dir": str(workdir / "results"),
        "data": {"source": "directory", "path": str(folder), "image_size": SIZE, "batch_size": 64, "cache": cache},
        "hypermodel": {"name": "cnn"},
        "search_space": {"model": {"filters": 8, "conv_blocks": 2, "dense_units": 32}},
        "tuner": {"algorithm": "random", "max_trials": 1, "max_epochs": 1},
    }
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def peak_rss(argv: list[str]) -> tuple[float, float]:
    """(peak RSS in MiB, wall seconds) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {proc.stderr.read().decode()[-2000:]}")
    return usage.ru_maxrss / 1024, wall


def search_rss(workdir: Path, folder: Path, n: int, cache: str) -> tuple[float, float]:
    name = f"rss-{n}-{cache}"
    config = _config(workdir, folder, cache, name)
    argv = [sys.executable, "-m", "search", "tune", str(config), "--overwrite", "--quiet"]
    return peak_rss(argv)


FIRST_BATCH = r"""
import json, sys, time
start = time.perf_counter()
from search.runtime import import_tensorflow
tf = import_tensorflow()
import numpy as np
from search.config import DataConfig
from search.data import load_splits, split_indices, to_datasets
folder, mode = sys.argv[1], sys.argv[2]
cfg = DataConfig(source="directory", path=folder, image_size=[128, 128], cache="memory" if mode == "memory" else "none")
t0 = time.perf_counter()
if mode == "old":  # ktsearch's loader before streaming, as it was in search/data/sources.py
    import keras
    ds = keras.utils.image_dataset_from_directory(folder, labels="inferred", label_mode="int", color_mode="rgb",
        image_size=(128, 128), batch_size=None, shuffle=False, verbose=False)
    pairs = [(x.numpy(), int(y)) for x, y in ds]
    x = np.stack([p[0] for p in pairs]).astype("float32")
    y = np.array([p[1] for p in pairs], dtype="int64")
    train_idx, val_idx, test_idx = split_indices(y, cfg, 1, own_test=False)
    x_train = x[train_idx].astype("float32")
    train = tf.data.Dataset.from_tensor_slices((x_train, y[train_idx])).shuffle(len(train_idx), seed=1).batch(64)
else:
    splits = load_splits(cfg, 1)
    train, _, _ = to_datasets(splits, 64, 1, None, lambda line: None)
next(iter(train))
print(json.dumps({"first_batch": time.perf_counter() - t0}))
"""


def first_batch(folder: Path, mode: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", FIRST_BATCH, str(folder), mode], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["first_batch"]


EPOCHS = r"""
import json, sys, time
from search.runtime import import_tensorflow
tf = import_tensorflow()
import keras, keras_tuner as kt, numpy as np
from hypermodels.cnn import CNNHyperModel
from search.config import DataConfig
from search.data import Splits, load_splits, to_datasets
folder, mode, cache_dir = sys.argv[1], sys.argv[2], sys.argv[3]
cache = "memory" if mode == "in-memory arrays" else mode.split()[0]
splits = load_splits(DataConfig(source="directory", path=folder, image_size=[128, 128], cache=cache), 1)
train, val, _ = to_datasets(splits, 64, 1, __import__("pathlib").Path(cache_dir), lambda line: None)
if mode == "in-memory arrays":  # the same images as float32 arrays: the in-memory sources' pipeline
    take = lambda name: splits.stores[name].array.astype("float32")
    arrays = Splits(take("train"), splits.labels[splits.indices("train")], take("validation"),
        splits.labels[splits.indices("validation")], take("test"), splits.labels[splits.indices("test")], splits.class_names)
    splits.stores.clear()
    train, val, _ = to_datasets(arrays, 64, 1)
hm = CNNHyperModel(splits.input_shape, splits.num_classes, {"model": {"filters": 8, "conv_blocks": 2, "dense_units": 32}})
times = []
class Clock(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()
    def on_epoch_end(self, epoch, logs=None):
        times.append(time.perf_counter() - self.start)
hp = kt.HyperParameters()
hm.fit(hp, hm.build(hp), train, epochs=4, verbose=0, callbacks=[Clock()])
print(json.dumps({"images_per_s": [splits.sizes()["train"] / t for t in times[1:]]}))
"""


def epoch_rate(folder: Path, mode: str, cache_dir: Path) -> list[float]:
    out = subprocess.run(
        [sys.executable, "-c", EPOCHS, str(folder), mode, str(cache_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["images_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "ktsearch-streaming-bench"))
    parser.add_argument("--quick", action="store_true", help="500 and 2,000 images, one repeat")
    args = parser.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    small, sizes, repeats = (500, [2000], 1) if args.quick else (500, [8000, 20000], 3)
    start = time.perf_counter()
    folders = {n: make_folder(workdir, n) for n in [small, *sizes]}
    print(f"folders ready in {workdir} ({time.perf_counter() - start:.0f} s)")
    from search.runtime import cpu_model

    cpu = cpu_model() or "?"
    print(f"CPU: {cpu}, {os.cpu_count()} cores; images read at {SIZE[0]}x{SIZE[1]} RGB\n")

    print("1. peak RSS of a one-trial, one-epoch search (ktsearch tune, fresh process each)")
    base, _ = search_rss(workdir, folders[small], small, "memory")
    print(f"   {small:>6} images, cache memory: {base:7.0f} MiB (the baseline)")
    for n in sizes:
        cache_mb = n * SIZE[0] * SIZE[1] * 3 / 2**20
        for cache in ("memory", "disk", "none"):
            rss, wall = search_rss(workdir, folders[n], n, cache)
            target = base + (cache_mb if cache == "memory" else 0)
            verdict = "ok" if rss <= 1.1 * target else "OVER"
            print(
                f"   {n:>6} images, cache {cache:6s}: {rss:7.0f} MiB, {wall:5.0f} s wall; uint8 size {cache_mb:5.0f} MiB; "
                f"target <= {1.1 * target:5.0f} MiB ({verdict})"
            )

    n = sizes[0]
    print(f"\n2. time to the first training batch, {n} images (fresh process each, median of {repeats})")
    times: dict[str, list[float]] = {"old": [], "memory": [], "none": []}
    for i in range(repeats):
        for mode in sorted(times, reverse=i % 2 == 1):
            times[mode].append(first_batch(folders[n], mode))
    old = statistics.median(times["old"])
    for mode, label in (("old", "loader before (float32 arrays)"), ("memory", "streamed, cache filled in memory"),
                        ("none", "streamed, no cache")):  # fmt: skip
        t = statistics.median(times[mode])
        print(f"   {label:34s} {t:6.1f} s  ({old / t:4.1f}x faster than before)")

    print(f"\n3. training images/s of an epoch, {n} images (epochs 2-4 of each fit, median over {repeats} fits)")
    rates: dict[str, list[float]] = {"in-memory arrays": [], "memory cache": [], "disk cache": []}
    cache_dir = workdir / "epoch-cache"
    epoch_rate(folders[n], "disk cache", cache_dir)  # warm the disk cache once
    for i in range(repeats):
        for mode in sorted(rates, reverse=i % 2 == 1):
            rates[mode] += epoch_rate(folders[n], mode, cache_dir)
    ref = statistics.median(rates["in-memory arrays"])
    for mode, values in rates.items():
        r = statistics.median(values)
        print(f"   {mode:18s} {r:8.0f} images/s  ({r / ref:4.2f}x the in-memory arrays)")


if __name__ == "__main__":
    main()
