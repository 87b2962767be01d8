"""Killed and surviving mutants per module, from mutmut's results (run after ``mutmut run``).

python tools/mutation_report.py            # the table
python tools/mutation_report.py --survivors  # and every surviving mutant's name
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter, defaultdict

KILLED = {"killed", "timeout", "caught by type check"}


def results() -> list[tuple[str, str]]:
    mutmut = [sys.executable, "-m", "mutmut"]
    out = subprocess.run([*mutmut, "results", "--all=true"], capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep and "__mutmut_" in name:
            rows.append((name, status.strip()))
    return rows


def module_of(mutant: str) -> str:
    match = re.match(r"(.*?)\.x[_ǁ]", mutant)
    return match.group(1) if match else mutant.rsplit(".", 1)[0]


def main(argv: list[str]) -> int:
    by_module: dict[str, Counter[str]] = defaultdict(Counter)
    survivors: dict[str, list[str]] = defaultdict(list)
    for name, status in results():
        if status == "not checked":  # outside this run's selection of mutants
            continue
        module = module_of(name)
        by_module[module]["killed" if status in KILLED else status] += 1
        if status not in KILLED:
            survivors[module].append(f"{name}: {status}")
    total: Counter[str] = Counter()
    print(f"{'module':45} {'mutants':>7} {'killed':>7} {'other':>6} {'killed %':>8}")
    for module in sorted(by_module):
        counts = by_module[module]
        total.update(counts)
        n = sum(counts.values())
        other = n - counts["killed"]
        print(f"{module:45} {n:7} {counts['killed']:7} {other:6} {100 * counts['killed'] / n:7.1f}%")
    n = sum(total.values())
    if n:
        print(f"{'all':45} {n:7} {total['killed']:7} {n - total['killed']:6} {100 * total['killed'] / n:7.1f}%")
        print("not killed:", dict((k, v) for k, v in total.items() if k != "killed"))
    if "--survivors" in argv:
        for module in sorted(survivors):
            print(f"\n{module}")
            for line in survivors[module]:
                print("   ", line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
