"""Reads `go test -json` on stdin, prints what `go test` would (the output
of failed tests, a line per package), the figures that tests print as they
come (lines that start with a tag and a bar, such as "soak| "; the logs of
the Caddy instances under test stay in the failed tests' output), then how
many tests ran, passed, failed and were skipped, naming the skipped ones.
Exits non-zero if any failed or, when CI is set, if any was skipped: CI
installs every tool the tests need, so a skip there means a check that did
not run."""
import json
import os
import re
import sys

FIGURES = re.compile(r"^[a-z0-9-]+\| ")

out = {}  # (package, test) -> lines
results = {}  # (package, test) -> pass/fail/skip
packages = []
for line in sys.stdin:
    try:
        ev = json.loads(line)
    except ValueError:
        sys.stdout.write(line)  # a build failure, as go prints it
        continue
    key = (ev.get("Package", ""), ev.get("Test"))
    action = ev.get("Action")
    if action == "output":
        text = ev.get("Output", "")
        out.setdefault(key, []).append(text)
        if key[1] is not None and FIGURES.match(text):
            sys.stdout.write(text)
            sys.stdout.flush()
        if key[1] is None and ev.get("Output", "").startswith(("ok ", "FAIL", "?", "--- FAIL")):
            packages.append(ev["Output"])
    elif action in ("pass", "fail", "skip") and key[1] is not None:
        results[key] = action

failed = sorted(k for k, v in results.items() if v == "fail")
skipped = sorted(k for k, v in results.items() if v == "skip")
for k in failed:
    sys.stdout.write("".join(out.get(k, [])))
for p in packages:
    sys.stdout.write(p)
counts = {a: sum(1 for v in results.values() if v == a) for a in ("pass", "fail", "skip")}
print(f"tests: {len(results)} ran (subtests included): {counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped")
for pkg, test in skipped:
    reason = "".join(out.get((pkg, test), [])).strip().splitlines()
    print(f"  skipped: {pkg} {test}: {reason[-1] if reason else ''}")
if failed or any("FAIL" in p for p in packages):
    sys.exit(1)
if skipped and os.environ.get("CI"):
    print("skipped tests under CI: a tool the tests need is missing")
    sys.exit(1)
