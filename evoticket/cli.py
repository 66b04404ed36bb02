"""The ``evoticket`` command line.

``evoticket run [CONFIG] [--set section.key=value ...] [--name NAME] [--force | --resume]``
runs a campaign (the default one without CONFIG; ``--resume`` continues NAME if it exists);
``evoticket resume RUN_DIR``
continues one from its last checkpoint; ``evoticket plot RUN_DIR [--out DIR]`` draws its figures;
``evoticket compare RUN_DIR ... [--out DIR] [--name NAME] [--masks]`` overlays several runs and tabulates them
(``--masks``: their first-layer masks side by side too);
``evoticket experiment CONFIG [--name NAME] [--resume]`` runs a grid of methods at equal compute;
``evoticket export RUN_DIR --compact | --format sparse`` writes its ticket as a recipe or with sparse
weights; ``evoticket config [KEY] [--toml]`` describes every configuration key (type, default, range,
meaning); ``evoticket bench`` measures batched
fine-tuning. A user mistake is reported as one line on stderr with exit status
2 and no traceback; Ctrl-C stops after the current generation's checkpoint
with status 130 and prints the resume command; SIGTERM (as a batch scheduler sends
before SIGKILL) does the same with status 143.
"""

from __future__ import annotations

import argparse
import math
import shutil
import signal
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from evoticket import __version__
from evoticket.core.errors import DivergedError, EvoticketError, Interrupted, StorageError

CONFIG_KEYS_HINT = "`evoticket config` lists every key with its type, default, valid range and meaning"
"""Where a command that takes configuration keys points to them (its ``--set`` help or its epilog)."""


def _add_overrides(parser: argparse.ArgumentParser, help_text: str) -> None:
    """``--set SECTION.KEY=VALUE`` (repeatable, its help pointing to ``evoticket config``) and ``--no-progress``."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help=f"{help_text}; {CONFIG_KEYS_HINT}",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _add_backend(parser: argparse.ArgumentParser, what: str) -> None:
    """``--backend local|ray`` and ``--address ADDR``."""
    parser.add_argument(
        "--backend",
        choices=("local", "ray"),
        help=f"where {what} run: local (this process) or ray (a Ray cluster; pip install 'evoticket[ray]')",
    )
    parser.add_argument(
        "--address",
        metavar="ADDR",
        help="the Ray cluster: auto (the one `ray start` runs here) or HOST:PORT (default: a local instance)",
    )


def _overrides(args: argparse.Namespace) -> list[str]:
    """The ``--set`` overrides, with ``--no-progress``, ``--backend`` and ``--address`` as more."""
    more = ["campaign.progress=false"] if args.no_progress else []
    if getattr(args, "backend", None):
        more.append(f"campaign.backend={args.backend}")
    if getattr(args, "address", None) is not None:
        more.append(f"campaign.ray_address={args.address}")
    return [*args.overrides, *more]


def _add_x_axis(parser: argparse.ArgumentParser, what: str, default: str = "generation") -> None:
    """``--x-axis generation|train_flops``."""
    parser.add_argument(
        "--x-axis",
        choices=("generation", "train_flops"),
        default=default,
        help=f"{what}: the run's own unit (generations, IMP's rounds) or cumulative train FLOPs (default: {default})",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``evoticket`` command."""
    parser = argparse.ArgumentParser(
        prog="evoticket",
        description="Evolve lottery tickets with a genetic algorithm and batched gradient fine-tuning.",
    )
    parser.add_argument("--version", action="version", version=f"evoticket {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser(
        "run",
        help="run an evolution campaign (the default MNIST-1D campaign without CONFIG)",
        description="Run an evolution campaign and write runs/NAME/ and plots/NAME/.",
        epilog=f"Configuration keys: {CONFIG_KEYS_HINT}; `evoticket config --toml` prints a complete, commented "
        "configuration file to start from.",
    )
    run.add_argument("config", nargs="?", metavar="CONFIG", help="TOML configuration file (default: built-in defaults)")
    _add_overrides(run, "override one configuration key, e.g. --set ga.population=32 (repeatable)")
    _add_backend(run, "the generations' evaluations")
    run.add_argument("--name", help="run name (default: DATA-MODEL-DATE-TIME)")
    run.add_argument("--force", action="store_true", help="replace an existing run of the same name")
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue the run --name if it exists (same configuration), else start it: a scheduler can rerun one line",
    )
    run.add_argument("--runs-dir", default="runs", help="parent directory of run directories (default: runs)")
    run.add_argument("--plots-dir", default="plots", help="parent directory of plot directories (default: plots)")
    resume = sub.add_parser(
        "resume",
        help="continue a campaign from its last checkpoint",
        description="Continue runs/NAME from its newest usable checkpoint; records written after it are rolled back.",
    )
    resume.add_argument("run_dir", metavar="RUN_DIR", help="the run directory, e.g. runs/NAME")
    _add_overrides(resume, "change a key that is safe to change, e.g. --set ga.generations=60 (repeatable)")
    _add_backend(resume, "the generations' evaluations")
    resume.add_argument("--plots-dir", default="plots", help="parent directory of plot directories (default: plots)")
    plot = sub.add_parser(
        "plot",
        help="draw every figure of a run (PNG and PDF), also of one still running",
        description="Draw a run's figures from its records into plots/NAME/ (NAME: the run directory's name).",
    )
    plot.add_argument("run_dir", metavar="RUN_DIR", help="the run directory, e.g. runs/NAME")
    plot.add_argument("--out", metavar="DIR", help="folder for the figures (default: plots/NAME)")
    plot.add_argument(
        "--imp",
        metavar="IMP_RUN",
        help="an IMP run of the same network: its rounds overlaid on a multi-objective run's pareto figure, "
        "compared in pareto-vs-imp.csv",
    )
    _add_x_axis(plot, "x axis of the fitness figure")
    compare = sub.add_parser(
        "compare",
        help="overlay the fitness curves of several runs and tabulate their final results",
        description="Overlay several runs' fitness curves (compare.png, .pdf) and write their final results "
        "(compare.csv, compare.json) into plots/compare-NAME/ (or plots/compare/); the table is printed too.",
    )
    compare.add_argument("run_dirs", nargs="*", metavar="RUN_DIR", help="run directories, e.g. runs/A runs/B")
    compare.add_argument("--out", metavar="DIR", help="output folder (default: plots/compare-NAME or plots/compare)")
    compare.add_argument("--name", help="name of the comparison, for the default output folder")
    compare.add_argument(
        "--masks",
        action="store_true",
        help="also draw the runs' first-layer masks side by side with their locality scores (first_layer_masks.png, "
        ".pdf; read from each run's best_ticket.pt, the mask its final comparison trained)",
    )
    _add_x_axis(compare, "x axis", default="train_flops")
    experiment = sub.add_parser(
        "experiment",
        help="run a grid of methods x seeds x densities x data sets at equal compute (resumable)",
        description="Run an experiment file's cells under runs/NAME/cells/ and write runs/NAME/results.csv, "
        "results.md and the figures in plots/NAME/; --resume skips finished cells and resumes a killed one.",
        epilog=f"The experiment file's [base], [datasets.*] and [variants.*] tables take campaign configuration keys: "
        f"{CONFIG_KEYS_HINT}.",
    )
    experiment.add_argument("config", metavar="CONFIG", help="experiment file, e.g. configs/why-not-both-quick.toml")
    experiment.add_argument("--name", help="experiment name (default: the file's stem)")
    experiment.add_argument("--resume", action="store_true", help="continue runs/NAME (same experiment file)")
    experiment.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    _add_backend(experiment, "the cells")
    experiment.add_argument(
        "--cell-cpus", type=int, default=1, metavar="N", help="with --backend ray: CPUs of each cell (default: 1)"
    )
    experiment.add_argument(
        "--cell-gpus",
        type=float,
        default=None,
        metavar="G",
        help="with --backend ray: GPUs of each cell (default: 1 when the cluster has GPUs, else 0)",
    )
    experiment.add_argument(
        "--pack",
        type=int,
        default=0,
        metavar="N",
        help="run up to N cells at once, their training steps in shared batches, under the per-individual data order "
        "(optimizer.data_order = individual in every cell; each cell gives what it gives alone under that order)",
    )
    experiment.add_argument("--runs-dir", default="runs", help="parent directory of run directories (default: runs)")
    experiment.add_argument(
        "--plots-dir", default="plots", help="parent directory of plot directories (default: plots)"
    )
    export = sub.add_parser(
        "export",
        help="write a run's ticket compactly (a replayable recipe) or with sparse weights for inference",
        description="Export runs/NAME's ticket: --compact writes the best ticket as a recipe (tickets as DNA; "
        "read back by evoticket.load_ticket), --format sparse the trained ticket of the final comparison with "
        "torch sparse CSR weights.",
    )
    export.add_argument("run_dir", metavar="RUN_DIR", help="the run directory, e.g. runs/NAME")
    export.add_argument(
        "--compact",
        action="store_true",
        help="the best ticket as a recipe (default output: RUN_DIR/best_ticket.recipe)",
    )
    export.add_argument(
        "--format",
        dest="fmt",
        choices=("recipe", "sparse"),
        default=None,
        help="recipe (the same as --compact) or sparse (the trained ticket with torch sparse CSR weights; default "
        "output: RUN_DIR/trained_ticket.sparse.pt)",
    )
    export.add_argument(
        "--weights",
        choices=("float32", "float16"),
        default="float32",
        help="recipe: how weights that cannot be replayed are stored (float32: exact; float16: rounded, half the "
        "bytes; default float32)",
    )
    export.add_argument(
        "--network-only",
        action="store_true",
        help="recipe: store only what the masked network needs (masks, kept weights, biases), not theta0 at the "
        "pruned positions: a smaller file that is a network, not a genome (it reads back with 0.0 there, marked "
        "network_only)",
    )
    export.add_argument("--seed", type=int, default=0, help="sparse: which final-comparison seed (default: 0)")
    export.add_argument("--control", default="ticket", help="sparse: which control (default: ticket)")
    export.add_argument("--out", metavar="PATH", help="output file (never overwrites an existing one)")
    config = sub.add_parser(
        "config",
        help="describe the configuration keys: type, default, valid range and meaning",
        description="Print every configuration key (or one section's, or one key) with its type, default, valid "
        "range and docstring, one key per block whose first line starts with the dotted key (grep-friendly). "
        "--toml prints them as a commented TOML file at the defaults, which `evoticket run FILE` accepts.",
    )
    config.add_argument(
        "key",
        nargs="?",
        metavar="KEY",
        help="a section (ga), a dotted key (ga.population) or a top-level key (method); default: every key",
    )
    config.add_argument(
        "--toml",
        action="store_true",
        help="print a TOML configuration file instead: every key at its default, its docstring as comments",
    )
    bench = sub.add_parser(
        "bench",
        help="measure batched fine-tuning against a per-individual loop and torch.func.vmap",
        description="Benchmark whole-population fine-tuning; prints a table and optionally writes JSON rows.",
    )
    bench.add_argument("--quick", action="store_true", help="fewer models, populations and steps (about a minute)")
    bench.add_argument("--json", dest="json_path", metavar="PATH", help="also write the rows as JSON to PATH")
    bench.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    bench.add_argument(
        "--models",
        default="",
        help="comma-separated bench models (default: mnist1d-mlp,lenet-300-100,mnist1d-cnn1d; also cifar-conv2, "
        "cifar-resnet20)",
    )
    bench.add_argument("--memory-model", default="lenet-300-100", help="the model of the memory-budget check")
    bench.add_argument(
        "--populations", default="", metavar="P,P", help="population sizes, e.g. 1,256,1024 (default: the mode's)"
    )
    bench.add_argument(
        "--matmul-precision",
        default="highest",
        choices=("highest", "high", "medium"),
        help="float32 matmul precision of the timed rows (high: TF32 on a GPU, compared with the TF32 peak)",
    )
    models = sub.add_parser(
        "models",
        help="list the models, or show what a model prunes and what it costs",
        description="Without NAME: every model name (built-in, the seed papers' networks, plugins) with its "
        "description. With NAME: the network sized for --input-shape and --classes, its prunable layers (the "
        "masks' weight names, shapes, output positions and dense forward FLOPs per example, as the compute meter "
        "counts them) and its normalisation layers.",
    )
    models.add_argument("name", nargs="?", metavar="NAME", help="a model.name (or 'package.module:factory')")
    models.add_argument(
        "--input-shape",
        default="",
        help="one example's shape, e.g. 3,32,32 (default: 40 for the built-in models, 3,32,32 for the others)",
    )
    models.add_argument("--classes", type=int, default=10, help="number of classes (default: 10)")
    models.add_argument("--prune", action="append", default=[], metavar="PATTERN", help="ticket.prune entries")
    return parser


def _models(args: argparse.Namespace) -> int:
    from evoticket.models import BUILTIN, MODELS, ZOO, build_architecture, model_names
    from evoticket.models.generic import dense_flops, layer_positions

    if not args.name:
        for name in model_names():
            entry = MODELS.get(name)
            kind = "built-in" if name in BUILTIN else "paper" if name in ZOO else "registered" if entry else "plugin"
            description = entry.description if entry else "(an installed plugin's entry point)"
            print(f"{name:<14} {kind:<10} {description}")
        return 0
    default = "40" if args.name in BUILTIN else "3,32,32"
    try:
        shape = tuple(int(v) for v in (args.input_shape or default).split(","))
    except ValueError:
        raise EvoticketError(
            f"--input-shape {args.input_shape!r}: give sizes separated by commas, e.g. 3,32,32"
        ) from None
    arch = build_architecture(args.name, shape, args.classes, prune=args.prune)
    positions = layer_positions(arch)
    print(
        f"{arch.name} on inputs {shape}, {arch.num_classes} classes: {arch.num_params():,} parameters, "
        f"{arch.num_prunable():,} prunable ({'generic torch.func path' if arch.generic else 'built-in fast path'})"
    )
    print(f"{'weight':<24} {'kind':<7} {'shape':<18} {'weights':>10} {'positions':>9} {'MFLOP fwd':>10}")
    for spec in arch.layers:
        weights = math.prod(spec.weight_shape)
        flops = (2 * weights + (spec.out_features if spec.use_bias else 0)) * positions[spec.name]
        shape_text = "x".join(map(str, spec.weight_shape))
        print(
            f"{spec.weight:<24} {spec.kind:<7} {shape_text:<18} {weights:>10,} {positions[spec.name]:>9,} "
            f"{flops / 1e6:>10.3f}"
        )
    extra = dense_flops(arch)
    if extra:
        print(f"outside the pruned layers (counted dense): {extra / 1e6:.3f} MFLOP forward per example")
    if arch.norms:
        print("normalisation (never pruned): " + ", ".join(n.name for n in arch.norms))
    return 0


def _config(args: argparse.Namespace) -> int:
    from evoticket.config import describe_keys, format_keys, format_toml

    entries = describe_keys(args.key)
    if args.toml:
        print(format_toml(entries), end="")
        return 0
    one_key = len(entries) == 1 and entries[0].key == args.key
    width = min(max(shutil.get_terminal_size((100, 24)).columns, 60), 100)
    print(format_keys(entries, headers=not one_key, width=width), end="")
    return 0


def _int_list(text: str, key: str) -> list[int]:
    """``"1,256"`` -> ``[1, 256]``; a one-line error naming ``key`` otherwise."""
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise EvoticketError(f"{key}: need comma-separated integers, e.g. 1,256,1024; got {text!r}") from None


def _bench(args: argparse.Namespace) -> int:
    from evoticket.bench import run_bench

    models = [m.strip() for m in args.models.split(",") if m.strip()] or None
    return run_bench(
        quick=args.quick,
        json_path=args.json_path,
        device=args.device,
        models=models,
        memory_model=args.memory_model,
        matmul_precision=args.matmul_precision,
        populations=_int_list(args.populations, "--populations") or None,
    )


def _export(args: argparse.Namespace) -> int:
    from evoticket.campaign.export import export_run

    fmt = args.fmt or ("recipe" if args.compact else None)
    if fmt is None:
        raise EvoticketError("export needs --compact or --format recipe|sparse")
    if args.compact and fmt != "recipe":
        raise EvoticketError(f"--compact writes a recipe; it cannot be combined with --format {fmt}")
    result = export_run(
        Path(args.run_dir),
        fmt=fmt,
        out=Path(args.out) if args.out else None,
        weights=args.weights,
        network_only=args.network_only,
        seed=args.seed,
        control=args.control,
    )
    r = result.report
    if fmt == "recipe":
        print(_recipe_line(r, network_only=args.network_only))
    else:
        print(f"sparse ticket {r['bytes']:,} bytes")
    print(result.path)
    return 0


def _recipe_line(r: dict, *, network_only: bool) -> str:
    """The one line ``evoticket export --compact`` prints: sizes, what is replayed and stored, the round trip."""
    stores = [("kept weights" if r["network_only"] else "theta0") if part == "theta0" else part for part in r["stored"]]
    line = (
        f"recipe {r['recipe_bytes']:,} bytes ({r['nodes']} individuals replayed; "
        f"replays {', '.join(r['replayed']) or 'nothing'}; stores {', '.join(stores) or 'nothing'}"
        f"{' as ' + r['weights'] if 'theta0' in r['stored'] else ''}); float32 state dict "
        f"{r['state_dict_float32_bytes']:,} bytes ({r['ratio_float32']:.1f}x), gzip-compressed "
        f"{r['state_dict_gzip_bytes']:,} bytes ({r['ratio_gzip']:.1f}x); "
    )
    if r["network_only"]:
        line += (
            f"network only: theta0 at pruned positions not stored ({r['pruned_not_stored']:,} of "
            f"{r['theta0_entries']:,} entries read back as 0.0); masked network "
        )
        return line + (
            "exact" if r["network_exact"] else f"rounded to {r['weights']}, max abs error {r['max_abs_error']:.3g}"
        )
    if network_only:
        line += "--network-only: nothing to leave out (the replay rebuilds theta0 at the pruned positions); "
    if r["exact"]:
        return line + "round trip exact (every theta0 entry and mask bit for bit)"
    return line + f"round trip not exact: theta0 rounded to {r['weights']}, max abs error {r['max_abs_error']:.3g}"


def _plot(args: argparse.Namespace) -> int:
    from evoticket.plots import plot_run

    out = Path(args.out) if args.out else Path("plots") / Path(args.run_dir).resolve().name
    imp = Path(args.imp) if args.imp else None
    for path in plot_run(Path(args.run_dir), out, x_axis=args.x_axis, imp_run=imp):
        print(path)
    return 0


def _compare(args: argparse.Namespace) -> int:
    from evoticket.plots import common
    from evoticket.plots.compare import compare_runs, format_table
    from evoticket.plots.first_layer import FIGURE, draw_first_layer_masks

    if not args.run_dirs:
        raise EvoticketError("compare needs at least one RUN_DIR")
    out = Path(args.out) if args.out else Path("plots") / (f"compare-{args.name}" if args.name else "compare")
    run_dirs = [Path(d) for d in args.run_dirs]
    masks = draw_first_layer_masks(run_dirs) if args.masks else None  # every ticket read before anything is written
    written, rows = compare_runs(run_dirs, out, x_axis=args.x_axis)
    if masks is not None:
        written += common.save_all(masks, out, FIGURE)
    print(format_table(rows))
    for path in written:
        print(path)
    return 0


def _interrupted(e: Interrupted, state: str, command: str) -> int:
    """Print where an interrupted run stands and how to resume it; returns the exit status 128 + signal."""
    print(
        f"evoticket: interrupted ({signal.Signals(e.signum).name}); {state}. Resume with: evoticket {command}",
        file=sys.stderr,
    )
    return 128 + e.signum


def _experiment(args: argparse.Namespace) -> int:
    from evoticket.experiment import run_experiment

    name = args.name or Path(args.config).stem
    try:
        result = run_experiment(
            args.config,
            name=name,
            runs_dir=args.runs_dir,
            plots_dir=args.plots_dir,
            resume=args.resume,
            progress=not args.no_progress,
            backend=args.backend or "local",
            address=args.address or "",
            cell_cpus=args.cell_cpus,
            cell_gpus=args.cell_gpus,
            pack=args.pack,
        )
    except Interrupted as e:
        again = f"experiment {args.config} --name {name} --resume" + (f" --pack {args.pack}" if args.pack > 1 else "")
        if e.unit == "cell":  # a packed run: every running cell stopped
            return _interrupted(e, "the running cells stopped; their checkpoints are valid", again)
        return _interrupted(e, f"in cell {Path(e.run_dir).name}; its checkpoint is valid", again)
    print((result.run_dir / "results.md").read_text(encoding="utf-8"))
    return 0


def _resume(args: argparse.Namespace) -> int:
    from evoticket.campaign import resume_campaign

    resume_campaign(args.run_dir, _overrides(args), plots_dir=args.plots_dir)
    return 0


def _run(args: argparse.Namespace) -> int:
    from evoticket.campaign import run_campaign
    from evoticket.config import load_config

    config = load_config(args.config, _overrides(args))
    run_campaign(
        config,
        name=args.name,
        runs_dir=args.runs_dir,
        plots_dir=args.plots_dir,
        force=args.force,
        resume=args.resume,
    )
    return 0


def _format_warning(
    message: Warning | str, category: type[Warning], filename: str, lineno: int, line: str | None = None
) -> str:
    """evoticket's own warnings as one ``evoticket: warning:`` line; others as Python formats them."""
    if Path(filename).resolve().is_relative_to(Path(__file__).resolve().parent):
        return f"evoticket: warning: {message}\n"
    return _python_format_warning(message, category, filename, lineno, line)


_python_format_warning = warnings.formatwarning


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``evoticket`` console script.

    Returns:
        The exit status: 0 on success, 2 for a user mistake, 1 when writing
        failed or a whole generation diverged (the checkpoint is kept), 130 on Ctrl-C, 143 on SIGTERM.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.formatwarning = _format_warning
    commands = {
        "run": _run,
        "resume": _resume,
        "plot": _plot,
        "compare": _compare,
        "experiment": _experiment,
        "bench": _bench,
        "export": _export,
        "config": _config,
        "models": _models,
    }
    try:
        return commands[args.command](args)
    except Interrupted as e:
        where = f"{e.unit} {e.generation}" if e.generation >= 0 else "its start"
        return _interrupted(e, f"the checkpoint of {where} is valid", f"resume {e.run_dir}")
    except EvoticketError as e:
        message = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(e))  # always one line
        print(f"evoticket: error: {message}", file=sys.stderr)
        return 1 if isinstance(e, StorageError | DivergedError) else 2
    except KeyboardInterrupt:
        print("evoticket: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
