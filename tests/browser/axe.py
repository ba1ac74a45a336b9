"""axe-core, vendored (tests/browser/vendor/axe-core/, see its README), run in a page under its real CSP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Page

AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
FAILING_IMPACTS = {"serious", "critical"}
RUN_AXE = """async (tags) => {
  const result = await axe.run(document, {runOnly: {type: "tag", values: tags}, resultTypes: ["violations"]});
  return result.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help,
    targets: v.nodes.slice(0, 5).map((n) => n.target.join(" ")), count: v.nodes.length,
  }));
}"""


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """Evaluate axe in the page (a DevTools evaluation, which the page's CSP does not govern) and run it."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text(encoding="utf-8") + "\n;undefined")
    return page.evaluate(RUN_AXE, WCAG_TAGS)


def serious_violations(page: Page) -> list[str]:
    """The serious and critical WCAG 2.2 AA violations on the page, one line each (rule, impact, elements)."""
    return [
        f"{page.url}: {v['id']} ({v['impact']}): {v['help']} at {', '.join(v['targets'])}"
        for v in axe_violations(page)
        if v["impact"] in FAILING_IMPACTS
    ]
