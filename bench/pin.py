"""``python -m bench.pin CORES CMD...``: run CMD on CORES (e.g. ``0`` or ``0,1``), for machines
without ``taskset``. The affinity is set before exec, so CMD's children inherit it."""

from __future__ import annotations

import os
import sys


def main() -> None:
    cores = {int(c) for c in sys.argv[1].split(",")}
    os.sched_setaffinity(0, cores)
    os.execvp(sys.argv[2], sys.argv[2:])


if __name__ == "__main__":
    main()
