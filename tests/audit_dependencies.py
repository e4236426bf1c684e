"""Audit the installed packages for known vulnerabilities: pip-audit, then PyPI's own answer.

    python tests/audit_dependencies.py [--strict]

Runs pip-audit (PyPI's vulnerability data, by exact version). Where pip-audit could not get an
answer for a package (some mirrors of PyPI serve only the latest release's JSON), PyPI's project
page is asked instead: it lists the vulnerabilities of the latest release, which is the installed
one for most packages. A vulnerability fails the audit unless IGNORED explains it. Packages that
neither could check are named; with --strict they fail the audit too.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from typing import Any

# Vulnerability id → why it does not apply here. Each entry is also explained in the README.
IGNORED: dict[str, str] = {}

PROJECT_JSON = "https://pypi.org/pypi/{name}/json"


def pip_audit() -> dict[str, Any]:
    """Run pip-audit on this environment and return its JSON report."""
    command = [sys.executable, "-m", "pip_audit", "--progress-spinner", "off", "--format", "json"]
    command += ["--skip-editable"]
    for vulnerability in IGNORED:
        command += ["--ignore-vuln", vulnerability]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    try:
        report: dict[str, Any] = json.loads(done.stdout)
    except json.JSONDecodeError:
        print(done.stderr.strip()[-2000:], file=sys.stderr)
        return {"dependencies": []}
    return report


def latest_release_vulnerabilities(name: str, version: str) -> list[dict[str, Any]] | None:
    """Return PyPI's vulnerabilities of a package if `version` is its latest release, else None."""
    try:
        with urllib.request.urlopen(PROJECT_JSON.format(name=name), timeout=20) as answer:
            project = json.load(answer)
    except (OSError, urllib.error.URLError, ValueError):
        return None
    if project.get("info", {}).get("version") != version:
        return None
    found = project.get("vulnerabilities") or []
    return [v for v in found if not v.get("withdrawn")]


def main(argv: list[str] | None = None) -> int:
    """Audit, print what was found and how much was checked, and return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strict", action="store_true", help="fail if a package goes unchecked")
    args = parser.parse_args(argv)

    dependencies = pip_audit()["dependencies"]
    audited = [d for d in dependencies if "skip_reason" not in d]
    skipped = [
        {**d, "version": d.get("version") or metadata.version(d["name"])}
        for d in dependencies
        if "skip_reason" in d and d["name"] != "similar-users"
    ]
    vulnerable = {f"{d['name']} {d['version']}": d["vulns"] for d in audited if d["vulns"]}

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(
            pool.map(lambda d: latest_release_vulnerabilities(d["name"], d["version"]), skipped)
        )
    unchecked = []
    for dependency, found in zip(skipped, answers, strict=True):
        if found is None:
            unchecked.append(f"{dependency['name']} {dependency['version']}")
            continue
        kept = [v for v in found if v["id"] not in IGNORED]
        if kept:
            vulnerable[f"{dependency['name']} {dependency['version']}"] = kept
    checked = len(audited) + len(skipped) - len(unchecked)

    print(
        f"dependency audit: {checked} of {len(audited) + len(skipped)} installed packages checked "
        f"({len(audited)} by pip-audit, {len(skipped) - len(unchecked)} by PyPI's latest-release "
        f"data); {len(IGNORED)} vulnerabilities ignored as explained in the README"
    )
    for package, vulnerabilities in sorted(vulnerable.items()):
        for vulnerability in vulnerabilities:
            fixed = vulnerability.get("fix_versions") or vulnerability.get("fixed_in") or []
            print(f"  VULNERABLE {package}: {vulnerability['id']} (fixed in {', '.join(fixed)})")
    if unchecked:
        print(f"  not checked (no vulnerability data reachable): {', '.join(sorted(unchecked))}")
    if vulnerable:
        print(
            "dependency audit FAILED: upgrade, or explain the vulnerability in IGNORED and README"
        )
        return 1
    if unchecked and args.strict:
        print("dependency audit FAILED: some packages could not be checked (--strict)")
        return 1
    print("dependency audit passed: no known vulnerability")
    return 0


if __name__ == "__main__":
    sys.exit(main())
