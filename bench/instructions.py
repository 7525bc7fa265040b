"""Instructions per request, counted by callgrind: a figure other load on the machine cannot
move, for comparing two versions of the code where wall-clock ratios swing with the noise.

    python -m bench.instructions [--scenarios ceiling,hot,warm,cold] [--size 10k]
                                 [--requests 2000] [--keep DIR]

Each server (``idnode serve`` with the scenario's settings, or the ceiling) runs under
``valgrind --tool=callgrind`` with instrumentation off; the project's generator sends the
requests twice (filling the cache the scenario measures, warming the code), then
instrumentation is switched on for one more pass and the user-space instructions the server
executed are divided by the requests. Kernel time (sockets, page reads) is not counted, so a
figure here is a lower bound of the work, and the ratios run lower than wall-clock ones.
Batching (store reads, Redis commands) depends on timing, so warm and cold figures vary by a
few percent between runs, and more when Redis shares its core with the generator.
Needs valgrind; the registries are the bench's own (built once, as ``idnode bench`` does).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from bench import dataset, redisserver, workload
from bench.cli import parse_size
from bench.procs import PYTHON, ProcError, Served, run_measured, start_server
from bench.scenarios import NO_LOCAL_TIER

SCENARIOS = ("ceiling", "hot", "warm", "cold")
START_TIMEOUT = 120.0  # seconds: start-up under valgrind is ~20x slower


def _callgrind(out: Path) -> list[str]:
    return [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={out}",
    ]


def _control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True)


@contextlib.contextmanager
def _server(name: str, registry: Path, body: Path, out: Path) -> Iterator[Served]:
    with contextlib.ExitStack() as stack:
        env = {"IDNODE_LOG_LEVEL": "warning", "PYTHONMALLOC": "malloc"}
        if name == "ceiling":
            cmd = [PYTHON, "-m", "bench.ceiling", "--body", str(body)]
        else:
            cmd = dataset.idnode("serve", "--data", str(registry), "--http", "127.0.0.1:0")
            if name != "hot":
                env.update(NO_LOCAL_TIER)
            if name == "warm":
                url, _ = stack.enter_context(redisserver.running([1]))
                cmd += ["--redis", url]
        cmd = _callgrind(out) + cmd
        served = start_server(name, cmd, cores=[0], env=env, timeout=START_TIMEOUT)
        stack.callback(served.stop)
        yield served


def measure(
    name: str, registry: Path, body: Path, requests: Path, n: int, keep: Path | None = None
) -> float:
    """Instructions per request of scenario ``name`` (``requests``: a file of ``n``);
    ``keep``: a directory to copy the callgrind profile to (``callgrind_annotate`` reads it)."""
    with tempfile.TemporaryDirectory(prefix="idnode-ir-") as tmp:
        out = Path(tmp) / "callgrind.out"
        with _server(name, registry, body, out) as served:
            send = [PYTHON, "-m", "bench.loadgen", "--host", served.host]
            send += ["--port", str(served.port), "--requests", str(requests), "--prime", "1"]
            send += ["--connections", "16"]
            for _ in range(2):  # fill the cache the scenario measures; warm the code
                run_measured(send, cores=[1], timeout=600)
            _control(served.popen.pid, "-i", "on")
            done = run_measured(send, cores=[1], timeout=600)
            _control(served.popen.pid, "-i", "off")
            _control(served.popen.pid, "-d")
            statuses = json.loads(done.stdout)["statuses"]
            if set(statuses) != {"200"}:
                raise ProcError(f"{name}: answers other than 200: {statuses}")
        total = 0
        for part in Path(tmp).glob("callgrind.out*"):
            if keep is not None:
                keep.mkdir(parents=True, exist_ok=True)
                shutil.copy(part, keep / f"{name}.{part.name}")
            for line in part.read_text().splitlines():
                if line.startswith("totals:"):
                    total += int(line.split()[1])
        return total / n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__)
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help="default: all four")
    p.add_argument("--size", type=parse_size, default=10_000, help="registry size (10k)")
    p.add_argument("--requests", type=int, default=2_000, help="requests counted (2000)")
    p.add_argument(
        "--keep", type=Path, metavar="DIR", help="keep each scenario's callgrind profile in DIR"
    )
    args = p.parse_args(argv)
    names = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if unknown := set(names) - set(SCENARIOS):
        p.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    if args.keep is not None and args.keep.exists() and not args.keep.is_dir():
        p.error(f"--keep: {args.keep} is not a directory")
    if not (shutil.which("valgrind") and shutil.which("callgrind_control")):
        print("bench.instructions: needs valgrind (callgrind)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="idnode-ir-") as tmp:
        work = Path(tmp)
        registry = dataset.ensure(args.size, dataset.fingerprint(work)).path
        keys: dict[str, tuple[Path, int]] = {}
        for kind in ("hot", "cold"):
            w = workload.reads(args.size, kind)
            w.requests = w.requests[: args.requests]
            keys[kind] = (w.write_json(work / f"{kind}.json"), len(w.requests))
        body = work / "body.json"
        handle = dataset.identifier(workload.probe_key(args.size))
        probe = dataset.idnode("serve", "--data", str(registry), "--http", "127.0.0.1:0")
        served = start_server("probe", probe, env={"IDNODE_LOG_LEVEL": "warning"})
        try:
            url = f"http://{served.host}:{served.port}/api/handles/{handle}"
            with urllib.request.urlopen(url, timeout=10) as resp:
                body.write_bytes(resp.read())
        finally:
            served.stop()
        results = {}
        for name in names:
            requests, n = keys["cold" if name == "cold" else "hot"]
            results[name] = measure(name, registry, body, requests, n, args.keep)
            line = f"{name:8} {results[name]:>10,.0f} instructions/request"
            if "ceiling" in results and name != "ceiling":
                line += f"   ceiling / this: {results['ceiling'] / results[name]:.2f}"
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
