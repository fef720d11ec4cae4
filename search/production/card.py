"""`model_card.md`: what `train` wrote, from the export's provenance and the training's metrics.

A model card (Mitchell et al., 2019) for the people who ship or audit the model: data and
classes, splits and what the model saw, metrics with their spread over seeds, the fixed
hyperparameters, the search that found them, how to reproduce it, and the versions used.
"""

from __future__ import annotations

import shlex
from datetime import UTC, datetime

from search.production.export import versions


def _metrics_rows(metrics: dict) -> list[str]:
    rows = ["| split | " + " | ".join(sorted(metrics["test"])) + " |", "| --- |" + " --- |" * len(metrics["test"])]
    for split in ("validation", "test"):
        values = metrics.get(split)
        if values:
            rows.append(f"| {split} | " + " | ".join(f"{values[k]:.4f}" for k in sorted(metrics["test"])) + " |")
    return rows


def _spread_lines(prov: dict, metrics: dict) -> list[str]:
    spread = prov.get("finalists")
    search = metrics.get("search")
    lines = []
    if spread:
        lines += [
            f"This configuration was picked by `ktsearch finalize` from {len(spread['table'])} finalist(s), each "
            f"retrained with seeds {', '.join(map(str, spread['seeds']))} (seeds vary initial weights, augmentation "
            f"and shuffling; the split is fixed). {spread['verdict']}",
            "",
            f"| trial | {prov['objective']} mean ± sd | 95% interval | test accuracy mean ± sd |",
            "| --- | --- | --- | --- |",
        ]
        for r in spread["table"]:
            sd = "" if r["sd"] is None else f" ± {r['sd']:.4f}"
            tsd = "" if r["test_accuracy_sd"] is None else f" ± {r['test_accuracy_sd']:.4f}"
            ci = "-" if r["ci95"] is None else f"{r['ci95'][0]:.4f} – {r['ci95'][1]:.4f}"
            lines.append(f"| {r['trial_id']} | {r['mean']:.4f}{sd} | {ci} | {r['test_accuracy_mean']:.4f}{tsd} |")
        lines.append("")
    elif prov.get("score") is not None:
        lines += [
            f"Picked from one training per configuration (the search's ranking): the spread between seeds is "
            f"unknown; `ktsearch finalize {prov.get('run', 'RUN_DIR')}` measures it.",
            "",
        ]
    if search and search.get("this_run") is not None:
        lines += [
            f"The search scored {search['objective']} {search['score']:.4f} for trial {search['trial_id']}; this "
            f"training: {search['this_run']:.4f} (drift {search['drift']:+.4f}).",
            "",
        ]
    return lines


def model_card(cfg, metrics: dict) -> str:
    """The card's Markdown for a `train` run (`cfg`: its `ExportConfig`; `metrics`: metrics.json)."""
    prov = cfg.provenance
    data = metrics["data"]
    model = metrics["model"]
    full = data["trained_on"] == ["train", "validation"]
    d = cfg.data
    source = d.source + (f" ({d.path})" if getattr(d, "path", None) else "")
    lines = [
        f"# Model card: {cfg.name}",
        "",
        f"Written by `ktsearch train` on {datetime.now(UTC).isoformat(timespec='seconds')}.",
        "",
        "## Model",
        "",
        f"- HyperModel `{cfg.hypermodel.name}`, input {' × '.join(map(str, model['input_shape']))} pixels in "
        f"0-255 (float32), output: probabilities of {len(model['class_names'])} classes.",
        f"- Classes (output index order): {', '.join(map(str, model['class_names']))}.",
        "- Files: `model.keras` (Keras 3, built-in layers only, no augmentation)"
        + (
            ", `saved_model/` (TensorFlow SavedModel, signature `serve`), `model.tflite` (LiteRT float32, built-in ops)"
            if "serving" in metrics and "error" not in metrics["serving"]
            else ""
        )
        + (", `model_dynamic_range.tflite` (dynamic-range quantised)" if _quantized(metrics) else "")
        + ".",
        "",
        "## Data",
        "",
        f"- Source: {source}; split by seed {cfg.seed} (stratified): train {data['train']}, validation "
        f"{data['validation']}, test {data['test']} images.",
        (
            f"- Trained on train + validation ({data['training_images']} images, `--full-data`) for "
            f"{metrics['epochs_run']} epochs; no early stopping and no validation metrics (the validation images "
            "were trained on)."
            if full
            else f"- Trained on the train split; early stopping on {cfg.early_stopping.monitor} (patience "
            f"{cfg.early_stopping.patience}) over the validation split, best weights restored: "
            f"{metrics['epochs_run']} of {metrics['epochs_requested']} epochs ran."
        ),
        "- The test split was held out from the search, the finalists and this training: its metrics are the "
        "estimate of performance on new images from the same source.",
        "",
        "## Metrics",
        "",
        *_metrics_rows(metrics),
        "",
        *_spread_lines(prov, metrics),
        *_serving_lines(metrics),
        "## Hyperparameters",
        "",
        "| hyperparameter | value |",
        "| --- | --- |",
        *(f"| {name} | {domain.removeprefix('fixed ')} |" for name, domain, _ in cfg.space.describe()),
        f"| training.epochs | {cfg.training.epochs} |",
        f"| training.lr_horizon | {cfg.training.lr_horizon} |",
        f"| training seed | {metrics['seed']} |",
        "",
        "## How it was found",
        "",
        *_found_lines(prov),
        "## Reproduce",
        "",
        "```",
        *_commands(prov, metrics),
        "```",
        "",
        "## Versions",
        "",
        "| package | search | this training |",
        "| --- | --- | --- |",
        *_version_rows(prov.get("versions") or {}),
        "",
        "## Limitations",
        "",
        "- Measured on one source's test split; images from another camera, scanner or population may score lower.",
        "- Inputs must be preprocessed as here: resized to the input size, 0-255 pixel values, same channel order.",
        "",
    ]
    return "\n".join(lines)


def _quantized(metrics: dict) -> bool:
    return "model_dynamic_range.tflite" in (metrics.get("serving") or {}).get("files", {})


def _serving_lines(metrics: dict) -> list[str]:
    serving = metrics.get("serving")
    if not serving:
        return []
    if "error" in serving:
        return ["## Serving files", "", f"Not written: {serving['error']}.", ""]
    lines = [
        "## Serving files",
        "",
        f"Each file was loaded as a user loads it and its predictions compared with the Keras model's on "
        f"{serving['images_checked']} test images (Keras accuracy there: {serving['keras_accuracy']:.4f}).",
        "",
        "| file | size | max abs. difference in probabilities | tolerance | accuracy (Δ vs Keras) | agrees on class |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, f in serving["files"].items():
        lines.append(
            f"| {name} | {f['bytes'] / 1e3:,.0f} kB | {f['max_abs_diff']:.2g} | {f['tolerance']:g} | "
            f"{f['accuracy']:.4f} ({f['accuracy_delta']:+.4f}) | {100 * f['argmax_agreement']:.1f} % |"
        )
    return [*lines, ""]


def _found_lines(prov: dict) -> list[str]:
    if not prov.get("run"):
        return ["Written by hand (no search provenance).", ""]
    search = prov.get("search") or {}
    counted = f" ({search['completed']} of {search['trials']} trials completed)" if search else ""
    return [
        f"- Search: `{prov['run']}`, {search.get('algorithm', 'a KerasTuner search')}{counted}, objective "
        f"{prov['objective']}.",
        f"- Trial {prov['trial_id']}: {prov['objective']} {prov['score']:.4f} at epoch {prov['best_epoch']} "
        f"(one training); ranking used by the export: {prov.get('ranking', 'search')}.",
        f"- Exported {prov.get('exported_at', '?')}.",
        "",
    ]


def _commands(prov: dict, metrics: dict) -> list[str]:
    run = prov.get("run")
    lines = []
    if run:
        lines.append(f"ktsearch tune {shlex.quote(run + '/config.yaml')}   # the search (resumes if the run exists)")
        finalists = prov.get("finalists")
        if finalists:
            lines.append(
                f"ktsearch finalize {shlex.quote(run)} --top {len(finalists['table'])} --seeds {len(finalists['seeds'])}"
            )
        lines.append(f"ktsearch export {shlex.quote(run)}")
    lines.append(metrics["command"])
    return lines


def _version_rows(search_versions: dict) -> list[str]:
    now = versions()
    return [f"| {name} | {search_versions.get(name, '-')} | {now[name]} |" for name in now]
