#!/usr/bin/python3
"""Adds up the test cases that meson ran in the given build directories.

meson counts executables; this counts the cases inside them, from each
test's output in meson-logs/testlog.json: cmocka's "[  PASSED  ] N
test(s)." / "[  FAILED  ] N test(s)" lines and pytest's closing
"N passed, N failed, N skipped" line. Prints one line:
    tests: N passed, N failed, N skipped
and exits 1 if anything failed or a build ran no test.
"""
import json
import re
import sys
from pathlib import Path

CMOCKA = re.compile(r"^\[\s+(PASSED|FAILED|SKIPPED)\s+\] (\d+) test")
PYTEST = re.compile(r"(\d+) (passed|failed|skipped|error|errors|xfailed|xpassed)")


def count(build):
    totals = {"passed": 0, "failed": 0, "skipped": 0}
    log = Path(build) / "meson-logs" / "testlog.json"
    if not log.exists():
        return None
    for line in log.read_text().splitlines():
        rec = json.loads(line)
        out = (rec.get("stdout") or "") + "\n" + (rec.get("stderr") or "")
        if rec.get("result") not in ("OK", "EXPECTEDFAIL", "SKIP"):
            totals["failed"] += 1
        pytest_tail = None
        for l in out.splitlines():
            m = CMOCKA.match(l.strip())
            if m:
                key = m.group(1).lower()
                totals[key] += int(m.group(2))
            if re.match(r"^=+ .*(passed|failed|skipped|error).* in [\d.]+s", l):
                pytest_tail = l
        if pytest_tail:
            for n, what in PYTEST.findall(pytest_tail):
                if what in ("passed", "xfailed"):
                    totals["passed"] += int(n)
                elif what == "skipped":
                    totals["skipped"] += int(n)
                else:
                    totals["failed"] += int(n)
    return totals


def main():
    grand = {"passed": 0, "failed": 0, "skipped": 0}
    bad = False
    for build in sys.argv[1:]:
        t = count(build)
        if t is None or t["passed"] == 0:
            print(f"{build}: no test ran")
            bad = True
            continue
        print(f"{build}: {t['passed']} passed, {t['failed']} failed, "
              f"{t['skipped']} skipped")
        for k in grand:
            grand[k] += t[k]
    print(f"tests: {grand['passed']} passed, {grand['failed']} failed, "
          f"{grand['skipped']} skipped")
    sys.exit(1 if bad or grand["failed"] else 0)


if __name__ == "__main__":
    main()
