"""``idnode bench`` / ``python -m bench``: the benchmark's command line.

Importing this module is cheap (``idnode``'s own parser imports it): everything heavy is
imported when the bench actually runs.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

from resolver.cliutil import positive_int

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "bench" / "results"
FULL_SIZES = "10k,100k,1M,10M"
SMOKE_SIZE = 2_000


def parse_size(text: str) -> int:
    """``10k``, ``1M``, ``2500`` → a number of identifiers."""
    t = text.strip().replace("_", "").replace(",", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(t[-1:].lower(), 1)
    number = t[:-1] if scale > 1 else t
    try:
        value = int(float(number) * scale)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 10k, 1M)") from None
    if value < 100:
        raise argparse.ArgumentTypeError(f"size {text!r}: at least 100 identifiers")
    return value


def _sizes(text: str) -> list[int]:
    return sorted({parse_size(t) for t in text.split(",") if t.strip()})


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _loads(text: str) -> tuple[float, ...]:
    try:
        loads = tuple(float(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not fractions: {text!r}") from None
    if not all(0 < x <= 1 for x in loads):
        raise argparse.ArgumentTypeError("loads are fractions of the maximum in (0, 1]")
    return loads


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--smoke",
        action="store_true",
        help="a seconds-long run (2k identifiers, ceiling + hot + import, 1 s runs, one "
        "fixed-rate point) that still writes the whole report; for the test suite",
    )
    p.add_argument(
        "--sizes",
        type=_sizes,
        metavar="N,N,...",
        help=f"registry sizes, e.g. 10k,1M (default {FULL_SIZES}; smoke: 2k)",
    )
    p.add_argument(
        "--scenarios",
        type=_names,
        metavar="NAME,...",
        help="scenarios to run (default: all; see --list); HTTP ones bring the HTTP ceiling, "
        "native/DNS ones measure their own",
    )
    p.add_argument(
        "--repeats", type=positive_int, help="repeats per scenario (default 3; smoke: 1)"
    )
    p.add_argument("--duration", type=float, help="measured seconds per run (default 5; smoke: 1)")
    p.add_argument(
        "--warmup", type=float, help="unmeasured seconds before each run (default 1; smoke: 0.3)"
    )
    p.add_argument(
        "--loads",
        type=_loads,
        metavar="F,F,...",
        help="fixed rates as fractions of the maximum (default 0.5,0.8,0.95; smoke: 0.8)",
    )
    p.add_argument(
        "--connections",
        type=positive_int,
        default=64,
        help="connections for the maximum (default 64)",
    )
    p.add_argument(
        "--open-connections",
        type=positive_int,
        default=64,
        help="connections available to fixed-rate runs (default 64, as for the maximum: a "
        "request finding them all busy waits, and its latency counts from its scheduled time)",
    )
    p.add_argument(
        "--generator",
        choices=("auto", "wrk", "own"),
        default="auto",
        help="closed-loop generator: wrk when installed (auto), or the project's own",
    )
    p.add_argument(
        "--import-records",
        type=parse_size,
        metavar="N",
        help="records for the bulk-import scenario (default 100k; smoke: 2k)",
    )
    p.add_argument(
        "--out",
        type=Path,
        help=f"report directory (default {DEFAULT_OUT.relative_to(ROOT)}/; smoke: a new "
        "temporary directory)",
    )
    p.add_argument(
        "--data-root",
        type=Path,
        help="where registries are built and cached (default bench/.data/)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars or notes")
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")


def add_subcommand(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``idnode bench``: registered by :mod:`resolver.cli`."""
    p = sub.add_parser(
        "bench",
        help="run the benchmark and write its report",
        description="Benchmark idnode (HTTP resolution per cache tier and registry size, "
        "fixed-rate latency, writes, workers, bulk import) against a bare aiohttp ceiling, "
        "native Handle UDP/TCP and DNS resolution against bare servers of their own, "
        "and write results.json, summary.md and PNG charts.",
    )
    add_arguments(p)
    p.set_defaults(fn=run)


def run(args: argparse.Namespace) -> int:
    from bench import report, runner, scenarios
    from bench.dataset import DEFAULT_ROOT
    from bench.procs import ProcError

    if args.list:
        for sc in scenarios.SCENARIOS:
            print(f"{sc.name:11} {sc.title}: {sc.what}")
        return 0
    smoke = args.smoke
    try:
        chosen = scenarios.select(args.scenarios, smoke)
    except ValueError as exc:
        print(f"idnode bench: {exc}", file=sys.stderr)
        return 2
    out = args.out or (Path(tempfile.mkdtemp(prefix="idnode-bench-")) if smoke else DEFAULT_OUT)
    settings = runner.Settings(
        sizes=args.sizes or ([SMOKE_SIZE] if smoke else _sizes(FULL_SIZES)),
        scenarios=chosen,
        out=out,
        repeats=args.repeats or (1 if smoke else 3),
        duration=args.duration or (1.0 if smoke else 5.0),
        warmup=args.warmup if args.warmup is not None else (0.3 if smoke else 1.0),
        loads=args.loads or ((0.8,) if smoke else (0.5, 0.8, 0.95)),
        connections=args.connections,
        open_connections=args.open_connections,
        generator=args.generator,
        import_records=args.import_records or (SMOKE_SIZE if smoke else 100_000),
        data_root=args.data_root or DEFAULT_ROOT,
        progress=not args.no_progress,
        mode="smoke" if smoke else "full",
        command=" ".join(["idnode bench", *map(shlex.quote, sys.argv[2:])])
        if Path(sys.argv[0]).name == "idnode"
        else " ".join(["python -m bench", *map(shlex.quote, sys.argv[1:])]),
    )
    try:
        results = runner.Runner(settings).run()
    except ProcError as exc:
        print(f"idnode bench: {exc}", file=sys.stderr)
        return 2
    files = report.write(results, out)
    missed = [t for t in results["targets"] if t["status"] == "MISS"]
    print(f"report: {out}/summary.md (and {', '.join(f.name for f in files if f.suffix != '.md')})")
    if missed:
        print(f"targets missed: {', '.join(t['id'] for t in missed)} (see the summary)")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark idnode against a bare aiohttp ceiling (same as `idnode bench`).",
    )
    add_arguments(p)
    return run(p.parse_args(argv))
