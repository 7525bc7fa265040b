"""Signing throughput per algorithm: records signed per second by the write path's signer
(digests, JWS, signature) and raw signatures per second, on one core.

    python -m bench.signing [--records N] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from registry.model.values import Value
from registry.signing.claims import Signer
from registry.signing.keys import ALGORITHMS, SigningKey

RECORD = [
    Value(1, "URL", b"https://example.com/products/JXDY2106023"),
    Value(2, "DESC", b"Motor controller, batch 2106"),
]


def measure(alg: str, records: int) -> dict[str, float]:
    key = SigningKey.generate(alg)
    signer = Signer(
        key, "601:0.NA/88.118", 400 * 86400, chain=["701:0.NA/88.118", "700:0.NA/88.118"]
    )
    now = int(time.time())
    started = time.process_time()
    for i in range(records):
        signer.sign_values(f"88.118.8/P{i:07d}", RECORD, now)
    per_record = (time.process_time() - started) / records
    payload = os.urandom(300)
    started = time.process_time()
    for _ in range(records):
        key.sign(payload)
    per_signature = (time.process_time() - started) / records
    return {"records_per_s": 1 / per_record, "signatures_per_s": 1 / per_signature}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.signing",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--records", type=int, default=2000, help="records per algorithm")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    figures = {alg: measure(alg, args.records) for alg in ALGORITHMS}
    print("| algorithm | records signed/s (write path) | raw signatures/s |")
    print("|---|---|---|")
    for alg, f in figures.items():
        print(f"| {alg} | {f['records_per_s']:,.0f} | {f['signatures_per_s']:,.0f} |")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {1})  # one core (not the bench server's): a per-core figure
    raise SystemExit(main())
