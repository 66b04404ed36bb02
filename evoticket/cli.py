"""The ``evoticket`` command line.

``evoticket run [CONFIG] [--set section.key=value ...] [--name NAME] [--force]``
runs a campaign (the default one without CONFIG). A user mistake is reported
as one line on stderr with exit status 2 and no traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from evoticket import __version__
from evoticket.errors import EvoticketError


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
    )
    run.add_argument("config", nargs="?", metavar="CONFIG", help="TOML configuration file (default: built-in defaults)")
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one configuration key, e.g. --set ga.population=32 (repeatable)",
    )
    run.add_argument("--name", help="run name (default: DATA-MODEL-DATE-TIME)")
    run.add_argument("--force", action="store_true", help="replace an existing run of the same name")
    run.add_argument("--runs-dir", default="runs", help="parent directory of run directories (default: runs)")
    run.add_argument("--plots-dir", default="plots", help="parent directory of plot directories (default: plots)")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    bench = sub.add_parser(
        "bench",
        help="measure batched fine-tuning against a per-individual loop and torch.func.vmap",
        description="Benchmark whole-population fine-tuning; prints a table and optionally writes JSON rows.",
    )
    bench.add_argument("--quick", action="store_true", help="fewer models, populations and steps (about a minute)")
    bench.add_argument("--json", dest="json_path", metavar="PATH", help="also write the rows as JSON to PATH")
    bench.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    return parser


def _bench(args: argparse.Namespace) -> int:
    from evoticket.bench import run_bench

    return run_bench(quick=args.quick, json_path=args.json_path, device=args.device)


def _run(args: argparse.Namespace) -> int:
    from evoticket.campaign import run_campaign
    from evoticket.config import load_config

    overrides = list(args.overrides)
    if args.no_progress:
        overrides.append("campaign.progress=false")
    config = load_config(args.config, overrides)
    run_campaign(config, name=args.name, runs_dir=args.runs_dir, plots_dir=args.plots_dir, force=args.force)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``evoticket`` console script.

    Returns:
        The exit status: 0 on success, 2 for a user mistake, 130 on Ctrl-C.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "bench":
            return _bench(args)
    except EvoticketError as e:
        message = str(e).replace("\r", "\\r").replace("\n", "\\n")  # always one line
        print(f"evoticket: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("evoticket: interrupted", file=sys.stderr)
        return 130
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover - argparse refuses first
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
