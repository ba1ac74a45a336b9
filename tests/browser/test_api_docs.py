"""The API reference (/api/docs/, Swagger UI) renders in Chromium under the strict CSP, offline."""

from __future__ import annotations

import pytest
from playwright.sync_api import ConsoleMessage, Page, expect

pytestmark = pytest.mark.browser


def test_swagger_ui_renders_the_operations_with_no_csp_violation(
    transactional_db, page: Page, watch, screenshot
) -> None:
    console_errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            console_errors.append(message.text)

    page.on("console", on_console)
    response = page.goto("/api/docs/")
    assert response is not None and response.status == 200
    assert "'unsafe-inline'" not in response.headers["content-security-policy"]

    operation = page.locator(".opblock", has_text="/api/v1/decisions").first
    expect(operation).to_be_visible()
    assert page.locator(".opblock").count() > 10
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("reviewapp API")
    operation.locator(".opblock-summary").click()  # expanding draws the request body schema and examples
    expect(operation.locator(".opblock-body")).to_be_visible()
    operation.get_by_role("button", name="Try it out").click()  # the editable request body
    expect(operation.locator("textarea.body-param__text")).to_be_visible()
    screenshot("operations")

    assert watch.csp_violations == []
    assert [text for text in console_errors if "Content Security Policy" in text] == []
    assert watch.blocked_requests == []  # Swagger UI's assets are vendored (sidecar), not fetched from a CDN
