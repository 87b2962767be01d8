"""What importing the trigger module costs on the triggerer's event loop, in a fresh interpreter each time.

Prints the median import time of ``capillary_provider.triggers.coupon_upload`` (after
``airflow.triggers.base``, which the triggerer has loaded already) next to the import of the hook
module it no longer pulls in, and whether any HTTP library was loaded by the trigger import.

    .venv/bin/python benchmarks/bench_trigger_import.py --repeat 7
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

PROBE = """
import json, sys, time
import airflow.triggers.base
before = set(sys.modules)
started = time.perf_counter()
import {module}
elapsed = time.perf_counter() - started
print(json.dumps({{"ms": elapsed * 1000, "requests": "requests" in sys.modules}}))
"""


def measure(module: str, repeat: int) -> tuple[float, bool]:
    runs = []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-c", PROBE.format(module=module)], capture_output=True, text=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return statistics.median(run["ms"] for run in runs), any(run["requests"] for run in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    trigger_ms, trigger_http = measure("capillary_provider.triggers.coupon_upload", args.repeat)
    hook_ms, _ = measure("capillary_provider.hooks.capillary", args.repeat)
    print(f"{'import':<45} {'median ms':>10} {'loads requests':>15}")
    print(f"{'capillary_provider.triggers.coupon_upload':<45} {trigger_ms:>10.1f} {trigger_http!s:>15}")
    print(f"{'capillary_provider.hooks.capillary':<45} {hook_ms:>10.1f} {'True':>15}")
    print(f"ratio trigger/hook: {trigger_ms / hook_ms:.2f}")


if __name__ == "__main__":
    main()
