"""axe-core in the browser tests: the engine's script, fetched by `make test` from the npm registry at the
version the Makefile pins (AXE_CORE) into tests/vendor/ (git-ignored), and a runner that reports the
serious and critical violations of the page the browser shows.

The app never loads axe: only the tests inject it, through WebDriver, into the page under test.
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from tests.conftest import ROOT

# The impacts that fail a test; axe's "minor" and "moderate" findings are reported by the runner, not failed on.
FAILING_IMPACTS = ("serious", "critical")
# WCAG 2.0-2.2 A and AA rules plus axe's best practices (landmarks, one main, headings, regions).
RULE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]


def axe_version() -> str:
    """The axe-core version the Makefile pins (one place for it)."""
    found = re.search(r"^AXE_CORE\s*:?=\s*(\S+)", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert found, "the Makefile names no AXE_CORE version"
    return found.group(1)


def axe_script_path() -> Path:
    return ROOT / "tests" / "vendor" / f"axe-core-{axe_version()}" / "axe.min.js"


@lru_cache(maxsize=1)
def axe_source() -> str:
    path = axe_script_path()
    assert path.exists(), f"axe-core is missing at {path}: `make test` (or `make axe-core`) fetches it"
    return path.read_text(encoding="utf-8")


def run_axe(driver) -> list[dict]:
    """Run axe on the current page; return its violations (all impacts), each with the offending nodes."""
    if not driver.execute_script("return typeof window.axe === 'object'"):
        driver.execute_script(axe_source())
    driver.set_script_timeout(60)
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {runOnly: {type: 'tag', values: arguments[0]}, resultTypes: ['violations']})"
        ".then(r => done(r.violations)).catch(e => done([{id: 'axe-error', impact: 'critical',"
        " help: String(e), nodes: []}]));", RULE_TAGS)
    return result


def failing(violations: list[dict]) -> list[dict]:
    return [v for v in violations if v.get("impact") in FAILING_IMPACTS]


def describe(where: str, violations: list[dict], nodes_per_rule: int = 3) -> list[str]:
    """One line per violation: where, rule, impact, help, and the first few offending elements."""
    lines = []
    for v in violations:
        targets = "; ".join(" ".join(map(str, n.get("target", []))) + " → " + (n.get("failureSummary") or "")
                            .replace("\n", " ")[:160] for n in v.get("nodes", [])[:nodes_per_rule])
        lines.append(f"{where}: {v['id']} ({v.get('impact')}): {v.get('help')} [{len(v.get('nodes', []))}×] {targets}")
    return lines
