"""The `ktsearch` command (also `python -m search`): a table of subcommands.

Each command has `add_arguments(parser)` and `run(args) -> int`; `main()` returns
the exit code. Bad input is one line on stderr and exit code 2. `--help` and
`validate` never import TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from search.algorithms import ALGORITHMS, BRACKETS, RUNGS
from search.distributed.role import DEFAULT_PORT
from search.errors import (
    COMMAND_LINE,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_STORAGE,
    EXIT_USAGE,
    SearchStopped,
    StorageError,
    UserError,
    storage_error,
)

PROG = "ktsearch"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit code 2)."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _config_arguments(p, what: str = "YAML search config") -> None:
    p.add_argument("config", metavar="CONFIG", help=what)
    _set_argument(p, "override a config key (dotted key, YAML value); repeatable")


def _set_argument(p, what: str) -> None:
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=what)


def _run_dir_argument(p) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory, e.g. results/mnist5k-cnn")


class Validate:
    name = "validate"
    help = "check a search config (or an export) and print what it resolves to"

    @staticmethod
    def add_arguments(p):
        _config_arguments(p, "YAML search config, or an export (the input of 'ktsearch train')")

    @staticmethod
    def run(args) -> int:
        from search.config import load_any

        cfg = load_any(args.config, args.overrides)
        space, notes = _user_model(cfg)
        for warning in [*cfg.warnings(), *notes]:
            print(f"{PROG}: warning: {warning}", file=sys.stderr)
        print(describe(cfg, space) if cfg.kind == "search" else describe_export(cfg))
        return 0


def _user_model(cfg) -> tuple:
    """(the space a user's model declares at default values, warnings on it); (None, []) for ktsearch's HyperModels."""
    if cfg.kind != "search" or not cfg.space.open:
        return None, []
    from search.models import user_model, user_notes

    hypermodel = user_model(cfg)
    return hypermodel.space, user_notes(cfg, hypermodel)


USER_SPACE_NOTE = (
    "the model's own dimensions are those a build at default values declares; a name its code makes only for "
    "other values (a loop's units_2) joins the search when a trial first builds it, as in KerasTuner"
)


class Plan:
    name = "plan"
    help = "print what a search will run (brackets, rounds, trials, epochs) and estimate its wall time"

    @staticmethod
    def add_arguments(p):
        _config_arguments(p)
        p.add_argument(
            "--no-calibrate",
            action="store_true",
            help="skip the one-epoch calibration run (no wall-time estimate; answers without TensorFlow)",
        )
        p.add_argument(
            "--budget",
            metavar="TIME",
            help="size the search to fit this wall-clock time (45m, 1h30m, 90s), with a margin for calibration "
            "error (default: the config's tuner.time_budget)",
        )

    @staticmethod
    def run(args) -> int:
        from search.algorithms.schedule import make_plan
        from search.analysis.plan import calibrate, describe
        from search.config import load_config, parse_duration

        budget = None if args.budget is None else parse_duration(args.budget)
        cfg = load_config(args.config, args.overrides)
        plan = make_plan(cfg)
        space, notes = _user_model(cfg)
        for warning in notes:
            print(f"{PROG}: warning: {warning}", file=sys.stderr)
        calibration = None
        if not args.no_calibrate:
            from search.runtime import import_tensorflow

            import_tensorflow()
            calibration = calibrate(cfg)
        print(describe(cfg, plan, calibration, budget))
        if space is not None:
            print(
                f"{len(space.user_names())} dimensions of the model: {', '.join(space.user_names())}; {USER_SPACE_NOTE}"
            )
        return 0


class Tune:
    name = "tune"
    help = "run (or resume) a search into results/<name>/"

    @staticmethod
    def add_arguments(p):
        _config_arguments(p)
        p.add_argument("--name", help="run name (default: the config's name)")
        p.add_argument("--results-dir", help="directory that holds runs (default: the config's results_dir, 'results')")
        p.add_argument(
            "--overwrite", action="store_true", help="delete an existing run of this name that has a different config"
        )
        p.add_argument("--threads", type=int, metavar="N", help="TensorFlow threads (intra- and inter-op pools)")
        p.add_argument("--quiet", action="store_true", help="no per-trial lines: the start and the final report only")
        p.add_argument("--verbose", action="store_true", help="Keras's per-epoch lines inside each trial too")
        p.add_argument(
            "--budget",
            metavar="TIME",
            help="wall-clock budget (45m, 1h30m, 90s): no trial starts that would not fit in what is left; "
            "counted across resumes, changeable on resume (overrides tuner.time_budget)",
        )
        w = p.add_argument_group("warm start and extension (docs/usage.md#warm-start-and-extension)")
        w.add_argument(
            "--from",
            dest="warm_start",
            metavar="RUN_DIR",
            help="warm start: the new run's first configurations are this earlier run's best ones, checked "
            "against this search space",
        )
        w.add_argument(
            "--top", type=int, metavar="K", help="how many of --from's best distinct configurations (default 3)"
        )
        d = p.add_argument_group(
            "distributed search (KerasTuner's chief/worker mode; or its KERASTUNER_* environment variables)"
        )
        d.add_argument("--chief", action="store_true", help="serve the oracle to workers; write the summary at the end")
        d.add_argument(
            "--bind",
            metavar="HOST:PORT",
            help=f"where the chief listens (default 127.0.0.1:{DEFAULT_PORT}: this machine only; port 0 picks one)",
        )
        d.add_argument("--worker", action="store_true", help="run trials for a chief")
        d.add_argument("--oracle", metavar="HOST:PORT", help="the chief's address")
        d.add_argument("--worker-id", metavar="ID", help="this worker's name (default worker-HOST-PID)")
        a = p.add_argument_group(
            "distributed search: who may talk to the chief (docs/distributed.md#authentication-and-tls)"
        )
        a.add_argument(
            "--secret-file",
            metavar="FILE",
            help="the shared secret every call carries (a private file; default: $KTSEARCH_SECRET, else "
            "RUN_DIR/chief.secret, which the chief generates)",
        )
        a.add_argument("--tls-cert", metavar="PEM", help="chief: its TLS certificate (required off loopback)")
        a.add_argument("--tls-key", metavar="PEM", help="chief: the certificate's private key (a private file)")
        a.add_argument("--tls-ca", metavar="PEM", help="worker: the CA that signed the chief's certificate")
        a.add_argument(
            "--insecure-no-auth",
            action="store_true",
            help="no secret: throwaway runs on 127.0.0.1 only (anyone on this machine can steer the search)",
        )

    @staticmethod
    def run(args) -> int:
        from search.distributed.auth import Security
        from search.distributed.role import resolve_role
        from search.engine.tune import tune

        security = Security(args.secret_file, args.insecure_no_auth, args.tls_cert, args.tls_key, args.tls_ca)
        role = resolve_role(args.chief, args.bind, args.worker, args.oracle, args.worker_id, security=security)
        tune(
            args.config,
            args.overrides,
            name=args.name,
            results_dir=args.results_dir,
            overwrite=args.overwrite,
            log=_say,
            role=role,
            threads=args.threads,
            quiet=args.quiet,
            progress_bar=sys.stdout.isatty(),
            keras_verbose=2 if args.verbose else 0,
            budget=args.budget,
            warm_start=args.warm_start,
            top=args.top,
        )
        return 0


class Export:
    name = "export"
    help = "write a run's best configuration as a production config (YAML): the finalists' pick when finalize ran"

    @staticmethod
    def add_arguments(p):
        _run_dir_argument(p)
        p.add_argument("-o", "--output", metavar="FILE", help="output file (default: RUN_DIR/best.yaml)")
        p.add_argument(
            "--ranking",
            choices=("auto", "finalists", "search"),
            default="auto",
            help="auto (default): the finalists' pick when 'ktsearch finalize' ran and covers the search's best, "
            "else the search's best trial; finalists: require them; search: the search's best trial",
        )
        c = p.add_argument_group(
            "device constraints: the best trial that meets all of them (costs measured by 'ktsearch costs', "
            "or now where missing)"
        )
        c.add_argument("--max-params", type=int, metavar="N", help="at most N parameters")
        c.add_argument("--max-size-mb", type=float, metavar="Y", help="a .keras file of at most Y MB")
        c.add_argument(
            "--max-latency-ms", type=float, metavar="X", help="inference at batch 1 in at most X ms (median)"
        )

    @staticmethod
    def run(args) -> int:
        from search.production.export import write_export

        _warn_damaged(args.run_dir)
        constraints = {"max_params": args.max_params, "max_size_mb": args.max_size_mb}
        constraints["max_latency_ms"] = args.max_latency_ms
        path, note = write_export(args.run_dir, args.output, args.ranking, constraints, _say)
        print(f"wrote {path}\n{note}\ntrain it: {PROG} train {path}")
        return 0


class Finalize:
    name = "finalize"
    help = "retrain a run's top configurations with several seeds each; rank them by mean and spread"

    @staticmethod
    def add_arguments(p):
        _run_dir_argument(p)
        from search.production.statistics import SEEDS, TOP

        p.add_argument(
            "--top", type=int, default=TOP, metavar="K", help=f"distinct configurations to retrain (default {TOP})"
        )
        p.add_argument(
            "--seeds",
            type=int,
            default=SEEDS,
            metavar="N",
            help=f"training seeds 1..N per configuration (default {SEEDS}); seeds vary initial weights, augmentation "
            "and shuffling, never the split",
        )
        p.add_argument("--verbose", action="store_true", help="Keras's per-epoch lines too")

    @staticmethod
    def run(args) -> int:
        from search.production.finalize import finalize
        from search.production.statistics import table, verdict
        from search.runs.layout import FINALISTS_FILE, FINALIZE_DIR

        summary = finalize(args.run_dir, args.top, args.seeds, log=_say, verbose=2 * args.verbose)
        print("\n".join(["", *table(summary), "", verdict(summary)]))
        print(
            f"wrote {Path(args.run_dir) / FINALIZE_DIR / FINALISTS_FILE}; export the pick: {PROG} export {args.run_dir}"
        )
        return 0


class Costs:
    name = "costs"
    help = "measure each architecture of a run: parameters, .keras size, inference latency at batch 1 and 32"

    @staticmethod
    def add_arguments(p):
        _run_dir_argument(p)
        p.add_argument(
            "--remeasure",
            action="store_true",
            help="measure every architecture again, on this machine (default: only those costs.json lacks, "
            "which must have been measured here)",
        )

    @staticmethod
    def run(args) -> int:
        from search.production import costs

        _warn_damaged(args.run_dir)
        data, measured = costs.measure_run(args.run_dir, log=_say, remeasure=args.remeasure)
        arch = data["architectures"]
        print(f"{len(arch)} architecture(s), {measured} measured now; latencies {costs.where(data)}:")
        for key in sorted(arch, key=lambda a: arch[a]["params"]):
            print("  " + costs.describe(key, arch[key], arch[key]["trials"]))
        print(f"wrote {Path(args.run_dir) / costs.COSTS_FILE}")
        return 0


def _is_project(path: str) -> bool:
    from search.analysis.projects import is_project

    return is_project(path)


class Report:
    name = "report"
    help = (
        "summarise a run: top trials, brackets, early stopping, hyperparameter importance, plots "
        "(or a plain KerasTuner project: DIR/PROJECT)"
    )

    @staticmethod
    def add_arguments(p):
        p.add_argument(
            "run_dir",
            metavar="RUN_DIR",
            help="run directory, e.g. results/mnist5k-cnn; or a KerasTuner project directory (directory/project_name), "
            "viewed in a directory of its own (-o), never written into",
        )
        p.add_argument(
            "--format",
            choices=("md", "csv", "json"),
            default="md",
            help="md (default): report.md, PNG plots and the run's TensorBoard; csv/json: every trial as a table",
        )
        p.add_argument(
            "-o",
            "--output",
            metavar="FILE",
            help="output file (default: RUN_DIR/report.FORMAT); '-' writes csv or json to standard output "
            "(md needs a file: its PNG plots go beside it). For a KerasTuner project: the directory its view and "
            "report go to (default: a new temporary one)",
        )
        p.add_argument(
            "--no-measure",
            action="store_true",
            help="md: do not measure the architectures costs.json lacks (the size and latency fronts show what "
            "'ktsearch costs' measured so far)",
        )

    @staticmethod
    def run(args) -> int:
        from search.analysis.report import report

        if not _is_project(args.run_dir):
            _warn_damaged(args.run_dir)
        path = report(args.run_dir, args.format, args.output, measure=not args.no_measure, log=_say)
        if path is not None:
            print(f"wrote {path}")
        return 0


class Train:
    name = "train"
    help = "train from an exported config, evaluate on the test split, save the model and its serving files"

    @staticmethod
    def add_arguments(p):
        p.add_argument(
            "export", metavar="EXPORTED_YAML", help="file written by 'ktsearch export' (or configs/seed_recipe.yaml)"
        )
        _set_argument(
            p, "override an export key (dotted key, YAML value), e.g. distribution.strategy=mirrored; repeatable"
        )
        p.add_argument(
            "-o", "--output-dir", metavar="DIR", help="output directory (default: <results_dir>/<name>/train)"
        )
        p.add_argument("--epochs", type=int, metavar="N", help="override training.epochs")
        p.add_argument(
            "--seed",
            type=int,
            metavar="S",
            help="training seed: initial weights, augmentation, shuffling (default: the export's seed; "
            "the split always follows the export's seed)",
        )
        p.add_argument(
            "--full-data",
            action="store_true",
            help="train on train + validation for the exported epochs (no early stopping, no validation "
            "metrics); the test split stays held out",
        )
        p.add_argument(
            "--quantize", action="store_true", help="also write model_dynamic_range.tflite (dynamic-range quantised)"
        )
        p.add_argument(
            "--no-serving", action="store_true", help="skip the SavedModel and TFLite files (model.keras only)"
        )
        p.add_argument(
            "--overwrite",
            action="store_true",
            help="replace the model, its serving files and metrics in the output directory",
        )
        p.add_argument("--quiet", action="store_true", help="no per-epoch lines")

    @staticmethod
    def run(args) -> int:
        from search.production.train import train

        metrics = train(
            args.export,
            args.output_dir,
            epochs=args.epochs,
            seed=args.seed,
            full_data=args.full_data,
            quantize=args.quantize,
            serving=not args.no_serving,
            overrides=args.overrides,
            overwrite=args.overwrite,
            verbose=0 if args.quiet else 2,
        )
        print(train_report(metrics))
        return 0


class TensorBoard:
    name = "tensorboard"
    help = (
        "start TensorBoard on a run (127.0.0.1 unless told otherwise) and print its URL; or on a plain KerasTuner "
        "project (DIR/PROJECT): ktsearch's HParams view of it"
    )

    @staticmethod
    def add_arguments(p):
        p.add_argument(
            "run_dir",
            metavar="RUN_DIR",
            help="run directory, e.g. results/mnist5k-cnn; or a KerasTuner project directory (directory/project_name)",
        )
        p.add_argument("--port", type=int, default=6006, help="port (default 6006; 0 picks a free one)")
        p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
        p.add_argument(
            "-o",
            "--output",
            metavar="DIR",
            help="for a KerasTuner project: the directory its view is written to (default: a new temporary one); "
            "the project itself is never written into",
        )

    @staticmethod
    def run(args) -> int:
        from search.runs import layout

        run_dir, project = args.run_dir, _is_project(args.run_dir)
        if args.output and not project:
            raise UserError("-o", "", f"only used with a KerasTuner project; {run_dir} is not one")
        if not project and not (Path(run_dir) / layout.TENSORBOARD_DIR).is_dir():
            raise UserError(
                args.run_dir, "", f"expected a run directory with {layout.TENSORBOARD_DIR}/ (written by ktsearch tune)"
            )
        if not 0 <= args.port <= 65535:
            raise UserError("--port", "", f"expected a port in 0-65535, got {args.port}")
        if project:  # checked first: a bad port writes no view
            from search.analysis.projects import view

            run_dir = str(view(run_dir, args.output, log=_say).run_dir)
        logdir = Path(run_dir) / layout.TENSORBOARD_DIR
        if args.host in ("0.0.0.0", "::"):
            print(
                f"{PROG}: warning: --host {args.host} serves this run to every machine that can reach this one",
                file=sys.stderr,
            )
        from search.runtime import import_tensorflow

        import_tensorflow()
        from search.engine.tensorboard import serve

        try:
            url = serve(logdir, args.host, args.port)
        except Exception as e:  # port in use, address not available
            raise UserError(
                f"--host {args.host} --port {args.port}", "", f"cannot start TensorBoard ({str(e).splitlines()[0]})"
            ) from None
        try:  # the line first inside: a Ctrl-C as soon as it is read still ends the command cleanly
            print(f"TensorBoard for {args.run_dir}: {url}  (Ctrl-C stops it)", flush=True)
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0


class Simulate:
    name = "simulate"
    help = "predict how a search scales to N workers, from recorded per-epoch curves (docs/scaleout.md)"

    @staticmethod
    def add_arguments(p):
        _config_arguments(p, "YAML search config whose tuner section is simulated")
        p.add_argument(
            "--curves",
            required=True,
            metavar="PATH",
            help="the recorded curves: a run of a recording config (configs/curves_mnist5k.yaml) "
            "or a JSON file written by --write-curves (configs/curves_mnist5k.json)",
        )
        p.add_argument(
            "--workers", default="1,4,16,64,256", metavar="N,N,...", help="worker counts (default 1,4,16,64,256)"
        )
        p.add_argument(
            "--algorithms",
            metavar="A,B,...",
            help="hyperband, bohb, asha, random, bayesian (default: the config's tuner.algorithm)",
        )
        p.add_argument(
            "--trials-per-worker",
            type=int,
            default=0,
            metavar="K",
            help="size each search to at least K trials per worker (hyperband_iterations or max_trials); "
            "0 (default): the search as configured",
        )
        p.add_argument(
            "--seeds", type=int, default=1, metavar="S", help="oracle seeds per cell, medians shown (default 1)"
        )
        p.add_argument(
            "--target",
            type=float,
            metavar="SCORE",
            help="objective value for 'time to target' (default: what the best 10%% of the recorded curves reach)",
        )
        p.add_argument(
            "-o", "--output-dir", metavar="DIR", help="write simulation.md, simulation.json and simulation.png there"
        )
        p.add_argument("--write-curves", metavar="FILE", help="also save the curves as a JSON table (to share or ship)")
        p.add_argument(
            "--chief-files",
            action="store_true",
            help="let the oracle write its files as a real chief does (its journal, trial.json, oracle.json at "
            "compactions), so 'chief busy' and the workers' wait at the chief count them",
        )
        p.add_argument("--overwrite", action="store_true", help="replace existing output files")

    @staticmethod
    def run(args) -> int:
        from search.analysis import simulate
        from search.config import load_config

        cfg = load_config(args.config, args.overrides)
        workers = _positive_list(args.workers, "--workers")
        algorithms = [cfg.tuner.algorithm] if args.algorithms is None else _algorithms(args.algorithms)
        if args.trials_per_worker < 0:
            raise UserError("--trials-per-worker", "", f"expected 0 or more, got {args.trials_per_worker}")
        if args.seeds < 1:
            raise UserError("--seeds", "", f"expected 1 or more, got {args.seeds}")
        outputs = []
        if args.output_dir:
            out = Path(args.output_dir)
            if out.exists() and not out.is_dir():
                raise UserError(f"-o {out}", "", "expected a directory (or a new one), got a file")
            outputs = [out / f"simulation.{ext}" for ext in ("md", "json", "png")]
        if args.write_curves:
            outputs.append(Path(args.write_curves))
        for path in outputs:
            if path.exists() and not args.overwrite:
                raise UserError(str(path), "", "expected a new file: it exists (--overwrite replaces it)")
        table = simulate.load_table(args.curves)
        simulate.check_table(cfg, table, f"--curves {args.curves}")
        from search.runtime import import_tensorflow

        import_tensorflow()
        if args.write_curves:
            Path(args.write_curves).parent.mkdir(parents=True, exist_ok=True)
            Path(args.write_curves).write_text(json.dumps(table.to_json(), indent=1) + "\n")
            print(f"wrote {args.write_curves}")
        header = simulate.header(cfg, table, args.target)
        print(header + "\n", flush=True)
        for line in simulate.HEADER:
            print(line, flush=True)
        result = simulate.study(
            cfg,
            table,
            algorithms,
            workers,
            trials_per_worker=args.trials_per_worker,
            seeds=args.seeds,
            target=args.target,
            chief_files=args.chief_files,
            log=_say,
        )
        if args.output_dir:
            md, js, png = outputs[:3]
            md.parent.mkdir(parents=True, exist_ok=True)
            md.write_text(simulate.describe(result, cfg, table) + "\n")
            js.write_text(json.dumps(result, indent=1) + "\n")
            simulate.plot(result, png)
            print(f"wrote {md}, {js.name}, {png.name}")
        return 0


def _say(line: str) -> None:
    """A progress line, flushed: it must reach pipes and `tee` as it happens."""
    print(line, flush=True)


def _warn_damaged(run_dir: str) -> None:
    """A line on stderr per damaged file of the run (`search.runs.integrity`): what it costs, what to do."""
    from search.runs import integrity

    integrity.warn(run_dir, lambda line: print(line, file=sys.stderr))


def _positive_list(text: str, flag: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        values = []
    if not values or any(v < 1 for v in values):
        raise UserError(flag, "", f"expected comma-separated positive integers (1,4,16), got {text!r}")
    return values


def _algorithms(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",")]
    for name in names:
        if name not in ALGORITHMS:
            raise UserError("--algorithms", "", f"expected names from {', '.join(ALGORITHMS)}, got {name!r}")
    return names


COMMANDS = (Validate, Plan, Tune, Finalize, Export, Costs, Report, Train, TensorBoard, Simulate)


def _space_rows(cfg, space=None) -> list[str]:
    rows = (space or cfg.space).describe()
    width = max(len(name) for name, _, _ in rows)
    return [f"  {name:<{width}}  {domain}{'   (' + cond + ')' if cond else ''}" for name, domain, cond in rows]


def describe(cfg, space=None) -> str:
    """`ktsearch validate`'s summary of a search config (`space`: a user's model's, its own dimensions in it)."""
    t, es = cfg.tuner, cfg.early_stopping
    schedule = ALGORITHMS[t.algorithm].schedule
    if schedule == BRACKETS:
        budget = f"max_epochs {t.max_epochs}, factor {t.factor}, {t.hyperband_iterations} iteration(s)"
    elif schedule == RUNGS:
        budget = f"{t.max_trials} new configurations, max_epochs {t.max_epochs}, factor {t.factor}, grace period {t.grace_period}"
    else:
        budget = f"max_trials {t.max_trials}, {t.max_epochs} epochs each"
    if t.time_budget is not None:
        from search.units import duration

        budget += f"; time budget {duration(t.time_budget)}"
    lines = [
        f"{cfg.source}: OK",
        f"run: {cfg.run_dir}   data: {cfg.data.source}   hypermodel: {cfg.hypermodel.name}",
        f"tuner: {t.algorithm} ({budget}), objective {t.objective}; "
        f"early stopping on {es.monitor}, patience {es.patience}",
        "search space:",
        *_space_rows(cfg, space),
    ]
    searched = (space or cfg.space).searched()
    lines.append(f"{len(searched)} searched dimensions: {', '.join(searched) or 'none'}")
    if space is not None:
        lines.append(USER_SPACE_NOTE)
    return "\n".join(lines)


def describe_export(cfg) -> str:
    """`ktsearch validate`'s summary of an export (what `ktsearch train` will train)."""
    es, prov = cfg.early_stopping, cfg.provenance
    found = f"; from trial {prov['trial_id']} of {prov.get('run')}" if prov.get("trial_id") else ""
    return "\n".join(
        [
            f"{cfg.source}: OK (an export: train it with {PROG} train {cfg.source})",
            f"run: {cfg.run_dir}   data: {cfg.data.source}   hypermodel: {cfg.hypermodel.name}{found}",
            f"training: {cfg.training.epochs} epochs (LR horizon {cfg.training.lr_horizon}); "
            f"early stopping on {es.monitor}, patience {es.patience}",
            "hyperparameters:",
            *_space_rows(cfg),
        ]
    )


def train_report(metrics: dict) -> str:
    val, test, data = metrics["validation"], metrics["test"], metrics["data"]
    seen = " + ".join(data["trained_on"])
    lines = [
        f"trained {metrics['epochs_run']} of {metrics['epochs_requested']} epochs on {seen} ({data['training_images']} images), seed {metrics['seed']}"
    ]
    if val:
        lines.append("validation: " + ", ".join(f"{k} {v:.4f}" for k, v in val.items()))
    lines.append("test:       " + ", ".join(f"{k} {v:.4f}" for k, v in test.items()))
    search = metrics.get("search")
    if search and search.get("this_run") is not None:
        lines.append(
            f"search's {search['objective']} for trial {search['trial_id']}: {search['score']:.4f} (this run: {search['this_run']:.4f}, drift {search['drift']:+.4f})"
        )
        if search.get("finalists_mean") is not None:
            sd = "" if search.get("finalists_sd") is None else f" ± {search['finalists_sd']:.4f}"
            lines.append(f"finalists' mean over seeds: {search['finalists_mean']:.4f}{sd}")
    serving = metrics.get("serving")
    if serving and "error" in serving:
        lines.append(f"serving files: not written ({serving['error']})")
    elif serving:
        from search.production.serving import describe

        lines += ["serving files, checked against the Keras model:", *describe(serving)]
    out = metrics["output_dir"]
    lines.append(f"saved {out}/model.keras, metrics.json and model_card.md")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG, description="KerasTuner search over augmentation, BatchNorm placement and LR schedules."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for command in COMMANDS:
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(p)
        p.set_defaults(handler=command.run)
    return parser


def _rerun(argv) -> str:
    command = " ".join(["ktsearch", *(argv if argv is not None else sys.argv[1:])])
    return f"free space (or fix the disk), then rerun: {command}"


def _h5py_write_failure(error) -> bool:
    """h5py reports a checkpoint whose write failed (a full disk) once more when the file object is freed,
    through the unraisable or the except hook: ktsearch has already said so in one line."""
    return isinstance(error, RuntimeError) and "file write failed" in str(error)


def _quiet_unraisable(unraisable) -> None:
    if not _h5py_write_failure(unraisable.exc_value):
        sys.__unraisablehook__(unraisable)


def _quiet_excepthook(kind, value, traceback) -> None:
    if not _h5py_write_failure(value):
        sys.__excepthook__(kind, value, traceback)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    COMMAND_LINE.set(True)  # errors name flags (--quantize), not a Python call's parameters (quantize=True)
    sys.unraisablehook, sys.excepthook = _quiet_unraisable, _quiet_excepthook
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter hides our output
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")  # gRPC's info lines (a refused TLS handshake) too
    try:
        return args.handler(args)
    except UserError as e:
        print(f"{PROG}: error: {e.line()}", file=sys.stderr)
        return EXIT_USAGE
    except SearchStopped as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return EXIT_FAILED
    except BrokenPipeError:  # `ktsearch validate c.yaml | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 0
    except KeyboardInterrupt:
        command = " ".join(["ktsearch", *(argv if argv is not None else sys.argv[1:])])
        hints = {
            "tune": f"completed trials are kept; resume with: {command}",
            "finalize": f"finished trainings are kept; resume with: {command}",
        }
        hint = hints.get(args.command, "no model was saved")
        print(f"\n{PROG}: interrupted; {hint}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:  # a write that failed for want of storage (a trial's, oracle.json, an export, train's)
        problem = e if isinstance(e, StorageError) else storage_error(e)
        if problem is None:
            raise
        print(f"{PROG}: error: {problem}; {_rerun(argv)}", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        # Skip the interpreter's teardown: h5py's file objects left by a failed write can crash it (SIGSEGV)
        # and turn this exit code into 139. Every file ktsearch keeps was written atomically or not at all.
        os._exit(EXIT_STORAGE)
