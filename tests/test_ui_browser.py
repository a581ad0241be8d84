"""The dashboard, the portal and /docs in a real browser: Playwright driving
Debian's Chromium (`apt-get install chromium`). They log in, see a
registration appear after a simulated "Hola", find a failed delivery, replay
it and see it delivered, and take screenshots: into the test's temporary
folder, or where WAGATE_SCREENSHOTS says (`make screenshots` refreshes the
committed ones under docs/screenshots/ so; a plain run leaves them alone).

Without Chromium (or Playwright) they are skipped, loudly (see the summary
at the end of the run); with WAGATE_TEST_BROWSER_REQUIRED=1 (CI) they fail."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import ADMIN_TOKEN, ROOT, say, wait_for
from tests.ui_helpers import ACME_LOGIN
from tests.webhook_helpers import Receiver, deliveries, settled, subscribers_toml, verify

pytestmark = pytest.mark.slow  # a real browser

COMMITTED_SCREENSHOTS = ROOT / "docs" / "screenshots"
U = "+34600000001"
BROWSER_SKIP = "BROWSER TESTS SKIPPED"
WAIT_MS = 15_000  # the longest a page may take to show what it should


def _chromium() -> str | None:
    """Debian's Chromium, or the browser WAGATE_TEST_CHROMIUM names (when set,
    only that one: a path that does not exist means there is none)."""
    if chosen := os.environ.get("WAGATE_TEST_CHROMIUM"):
        return chosen if Path(chosen).exists() else None
    for name in ("chromium", "chromium-browser"):
        if found := shutil.which(name):
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    required = os.environ.get("WAGATE_TEST_BROWSER_REQUIRED") == "1"
    executable = _chromium()
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        executable, why = None, "the playwright package is not installed (pip install -e '.[test]')"
    else:
        why = "Chromium is not installed: apt-get install -y chromium"
    if executable is None:
        if required:
            pytest.fail(f"WAGATE_TEST_BROWSER_REQUIRED=1 but {why}")
        # Honest and loud: a red banner in the summary (tests/conftest.py); CI
        # sets WAGATE_TEST_BROWSER_REQUIRED=1, so there it fails instead.
        pytest.skip(f"{BROWSER_SKIP}: {why}")
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def client(make_client: Callable[..., Awaitable[TestClient]],
                 receiver: Receiver) -> TestClient:
    return await make_client(subscribers_toml(receiver.base))


async def _page(browser: Any) -> Any:
    context = await browser.new_context(viewport={"width": 1280, "height": 860})
    page = await context.new_page()
    page.set_default_timeout(WAIT_MS)
    return page


Shot = Callable[[Any, str], Awaitable[None]]


def _committed_shots() -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in COMMITTED_SCREENSHOTS.glob("*.png")}


@pytest.fixture
def shot(tmp_path: Path) -> Iterator[Shot]:
    """Save a page's screenshot; a run that was not asked to refresh the
    committed ones must leave them untouched (`make test` keeps the tree clean)."""
    chosen = os.environ.get("WAGATE_SCREENSHOTS")
    folder = Path(chosen) if chosen else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)

    async def take(page: Any, name: str) -> None:
        await page.screenshot(path=str(folder / f"{name}.png"), full_page=True)

    before = _committed_shots()
    yield take
    if not chosen:
        assert _committed_shots() == before, "a browser test rewrote docs/screenshots/"


async def test_admin_sees_a_registration_and_replays_a_failed_delivery(
        browser: Any, client: TestClient, receiver: Receiver, shot: Shot) -> None:
    from playwright.async_api import expect

    base = str(client.make_url("")).rstrip("/")
    page = await _page(browser)
    await page.goto(f"{base}/ui/")
    await expect(page).to_have_url(f"{base}/ui/login?next=/ui/")
    await page.fill("input[name=token]", ADMIN_TOKEN)
    await page.click("button[type=submit]")
    await expect(page.locator("h1")).to_have_text("Overview")
    card = page.locator("article.card", has_text="Instance 3")
    await expect(card).to_contain_text("0 in the hour")

    # A user says Hola on acme's number (user.registered and message.received for
    # acme); acme's endpoint answers 500 to every attempt until the replay.
    receiver.script("/acme", *[(500, {}, 0.0)] * 6)
    await say(client, "Hola", sender=U, instance=3)
    # The overview updates itself (it polls every few seconds): no reload here.
    await expect(card.locator("dd").first).to_contain_text("1 in the hour", timeout=WAIT_MS)
    await shot(page, "overview")

    await page.click("nav >> text=Registrations")
    row = page.locator("tr.registration", has_text=U)
    await expect(row).to_contain_text("active")
    await expect(row).to_contain_text("es")
    await shot(page, "registrations")

    rows = await settled(client, 2, subscriber="acme")
    assert {r["status"] for r in rows} == {"failed"}
    await page.click("nav >> text=Deliveries")
    await page.select_option("select[name=status]", "failed")
    await page.click("form.filters button")
    failed = page.locator("tr.delivery.failed", has_text="user.registered")
    await expect(failed).to_have_count(1)
    link = await failed.locator("a").get_attribute("href")
    await failed.locator("a").click()
    await expect(page.locator("#delivery-status")).to_have_text("failed")
    await expect(page.locator("tr.attempt")).to_have_count(3)
    await expect(page.locator("tr.attempt").first).to_contain_text("answer 500")
    await shot(page, "delivery-failed")

    # Replay everything failed since ten minutes ago, from the deliveries page.
    await page.click("nav >> text=Deliveries")
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 600))
    await page.fill("input[name=since]", since)
    await page.click("form.replay button")
    await expect(page.locator(".notice")).to_have_text(f"{len(rows)} failed deliveries "
                                                       "queued again, 0 pending pulled "
                                                       "forward.")
    await settled(client, 2, subscriber="acme")
    await page.reload()
    await expect(page.locator("tr.delivery.failed")).to_have_count(0)
    await page.click(f"a[href='{link}']")
    await expect(page.locator("#delivery-status")).to_have_text("delivered")
    await expect(page.locator("tr.attempt").last).to_contain_text("answer 200")
    await shot(page, "delivery-replayed")

    await page.click("nav >> text=Messages")
    await expect(page.locator("tr.inbound", has_text="Hola")).to_have_count(1)
    await shot(page, "messages")

    # A filter typed wrong in the address bar: a page saying so, and the way back.
    answer = await page.goto(f"{base}/ui/deliveries?status=lost")
    assert answer is not None and answer.status == 400
    await expect(page.locator("h1")).to_have_text("Bad Request")
    await expect(page.locator("[role=alert]")).to_contain_text("status must be")
    await page.click("text=Back to /ui/deliveries")
    await expect(page).to_have_url(f"{base}/ui/deliveries")
    await expect(page.locator("tr.delivery")).not_to_have_count(0)

    # Logging out ends the session: the dashboard asks to log in again.
    await page.click("text=Log out")
    await page.goto(f"{base}/ui/deliveries")
    await expect(page.locator("input[name=token]")).to_be_visible()


async def test_portal_and_docs(browser: Any, client: TestClient, receiver: Receiver,
                               shot: Shot) -> None:
    from playwright.async_api import expect

    base = str(client.make_url("")).rstrip("/")
    page = await _page(browser)
    # The front door: the service's bare address shows where to go.
    await page.goto(f"{base}/")
    await expect(page.locator("h1")).to_have_text("wagate")
    await page.click("a[href='/portal/']")
    await expect(page).to_have_url(f"{base}/portal/login?next=/portal/")
    await page.fill("input[name=client_id]", ACME_LOGIN["client_id"])
    await page.fill("input[name=secret]", ACME_LOGIN["secret"])
    await page.click("button[type=submit]")
    await expect(page.locator("h1")).to_have_text("acme")
    await expect(page.locator("tr.endpoint")).to_contain_text("/acme")
    await page.click("text=Send a test event")
    await expect(page.locator(".notice")).to_have_text("A test event is queued for 1 "
                                                       "endpoint(s).")
    rows = await settled(client, 1, subscriber="acme")
    assert rows[0]["type"] == "test" and rows[0]["status"] == "delivered"
    await page.reload()
    await expect(page.locator("tr.endpoint")).to_contain_text("ok")
    await shot(page, "portal")
    # the portal has no way into the dashboard
    await page.goto(f"{base}/ui/")
    await expect(page.locator("input[name=token]")).to_be_visible()

    await page.goto(f"{base}/docs")
    await expect(page.locator(".swagger-ui .info .title")).to_contain_text("wagate API")
    await expect(page.locator("#operations-tag-account")).to_have_count(1)  # the tag's header
    await shot(page, "docs")


async def test_a_pending_delivery_shows_its_next_attempt_and_goes_now(
        browser: Any, make_client: Callable[..., Awaitable[TestClient]],
        receiver: Receiver) -> None:
    """The tour's case: the receiver was down, the next attempt is minutes away.
    The dashboard's and the portal's lists say when; "Send now" sends it now."""
    from playwright.async_api import expect

    client = await make_client(subscribers_toml(receiver.base).replace(
        "retry_schedule = [0, 0.2, 0.4]", "retry_schedule = [0, 300]"))
    receiver.script("/acme", (503, {}, 0.0))
    await say(client, "where is my order?", sender=U, instance=3)

    async def failed_once() -> list[dict[str, Any]]:
        return [d for d in await deliveries(client) if d["attempts"] == 1]
    [waiting] = await wait_for(failed_once)
    assert waiting["status"] == "pending"
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(
        dt.datetime.fromisoformat(waiting["next_attempt_at"].replace("Z", "+00:00")).timestamp()))
    base = str(client.make_url("")).rstrip("/")
    page = await _page(browser)
    await page.goto(f"{base}/ui/login?next=/ui/deliveries")
    await page.fill("input[name=token]", ADMIN_TOKEN)
    await page.click("button[type=submit]")
    await expect(page.locator("th", has_text="Next attempt")).to_have_count(1)
    await expect(page.locator("tr.delivery.pending td.next-attempt")).to_have_text(when)

    page = await _page(browser)
    await page.goto(f"{base}/portal/login?next=/portal/deliveries")
    await page.fill("input[name=client_id]", ACME_LOGIN["client_id"])
    await page.fill("input[name=secret]", ACME_LOGIN["secret"])
    await page.click("button[type=submit]")
    row = page.locator("tr.delivery.pending")
    await expect(row.locator("td.next-attempt")).to_have_text(when)
    await row.locator("a").click()
    await expect(page.locator("#delivery-status")).to_have_text("pending")
    await page.click("button:has-text('Send now')")
    await expect(page.locator(".notice")).to_have_text(
        "Pulled forward: it is sent in a moment, not at its next attempt.")
    [done] = await settled(client, 1)
    assert done["status"] == "delivered" and done["attempts"] == 2
    await page.goto(f"{base}/portal/deliveries")
    await expect(page.locator("tr.delivery.delivered td.next-attempt")).to_have_text("")


async def test_operator_creates_a_subscriber_who_runs_its_own_endpoint(
        browser: Any, client: TestClient, receiver: Receiver, shot: Shot) -> None:
    """The business from the pages: the operator creates a subscriber and sees
    its secret once, rotates it; the subscriber logs in to the portal with it,
    rotates its own, adds a webhook endpoint, rotates its signing secret, and
    receives a delivery signed by both secrets during the overlap."""
    from playwright.async_api import expect

    base = str(client.make_url("")).rstrip("/")
    page = await _page(browser)
    await page.goto(f"{base}/ui/subscribers")
    await page.fill("input[name=token]", ADMIN_TOKEN)
    await page.click("button[type=submit]")
    await expect(page.locator("tr.subscriber.provisioned", has_text="acme")).to_contain_text(
        "the config file")
    await page.click("text=New subscriber")
    await page.fill("input[name=id]", "shop-7")
    # A refused form says why, keeps what was typed, and is not a 500.
    await page.fill("input[name=keyword]", "ACME")
    await page.fill("input[name=name]", "Shop <7>")
    await page.click("button:text('Create')")
    await expect(page.locator("p.error")).to_contain_text("keyword 'ACME' is subscriber 'acme'")
    await expect(page.locator("input[name=name]")).to_have_value("Shop <7>")
    await page.fill("input[name=keyword]", "SHOP7")
    await page.select_option("select[name=plan]", "enterprise")
    await page.check("input[name=instances][value='1']")
    await page.click("button:text('Create')")
    await expect(page.locator("h1")).to_contain_text("shop-7")
    await expect(page.locator("h1")).to_contain_text("Shop <7>")  # as text, escaped
    client_id = await page.locator("#client-id").inner_text()
    first = await page.locator("#secret").inner_text()
    assert len(first) >= 43
    await shot(page, "subscriber-created")
    await page.reload()
    await expect(page.locator("#managed-by")).to_have_text("the dashboard and API")
    await expect(page.locator("#secret")).to_have_count(0)  # shown once: gone on reload
    assert first not in await page.content()

    # A new secret, the current one working two more hours.
    await page.fill("form.rotate input[name=overlap_hours]", "2")
    await page.click("form.rotate button")
    await expect(page.locator(".notice")).to_have_text("A new secret is issued.")
    second = await page.locator("#secret").inner_text()
    assert second != first
    await expect(page.locator("#older-secrets")).to_contain_text("one accepted until")
    for secret in (first, second):
        resp = await client.get("/v3/account", headers={"X-WM-CLIENT-ID": client_id,
                                                        "X-WM-CLIENT-SECRET": secret})
        assert resp.status == 200

    # The subscriber, in its own browser: the portal with the new secret.
    portal = await _page(browser)
    await portal.goto(f"{base}/portal/credentials")
    await portal.fill("input[name=client_id]", client_id)
    await portal.fill("input[name=secret]", second)
    await portal.click("button[type=submit]")
    await expect(portal.locator("h1")).to_have_text("Credentials")
    await portal.fill("input[name=overlap_hours]", "0")
    await portal.click("form.rotate button")
    third = await portal.locator("#secret").inner_text()
    await shot(portal, "portal-credentials")
    await portal.reload()
    await expect(portal.locator("#secret")).to_have_count(0)
    await expect(portal.locator("h1")).to_have_text("Credentials")  # still logged in
    for secret, status in ((first, 474), (second, 474), (third, 200)):
        resp = await client.get("/v3/account", headers={"X-WM-CLIENT-ID": client_id,
                                                        "X-WM-CLIENT-SECRET": secret})
        assert resp.status == status

    # Its own endpoint, at a real receiver: a refused address first, said why.
    await portal.click("nav >> text=Endpoints")
    await portal.fill("input[name=url]", "http://169.254.169.254/latest")
    await portal.click("form.add-endpoint button")
    await expect(portal.locator("p.error")).to_contain_text("169.254.169.254")
    await portal.fill("input[name=url]", f"{receiver.base}/shop")
    await portal.fill("input[name=description]", "orders desk")
    await portal.click("form.add-endpoint button")
    await expect(portal.locator(".notice")).to_have_text("Added. It receives events from now on.")
    signing = await portal.locator("#secret").inner_text()
    assert signing.startswith("whsec_")
    await portal.reload()
    await expect(portal.locator("#secret")).to_have_count(0)
    # A new signing secret; the first goes on signing for two hours.
    await portal.fill("form.rotate input[name=overlap_hours]", "2")
    await portal.click("form.rotate button")
    newer = await portal.locator("#secret").inner_text()
    assert newer.startswith("whsec_") and newer != signing
    await expect(portal.locator("#signing-secrets")).to_contain_text("one signing until")
    await shot(portal, "portal-endpoint")

    # A user greets with shop-7's keyword: user.registered goes to its endpoint,
    # signed by both secrets (Standard Webhooks' "v1,<a> v1,<b>").
    await say(client, "Hi SHOP7", sender="+34600000002")
    [hit] = await wait_for(lambda: [h for h in receiver.on("/shop")
                                    if h.json.get("type") == "user.registered"] or None, 10.0)
    assert len(hit.headers["webhook-signature"].split(" ")) == 2
    for key in (signing, newer):
        assert verify(hit, key)["data"]["keyword_subscriber"] == "shop-7"
    await portal.click("nav >> text=Deliveries")
    await expect(portal.locator("tr.delivery", has_text="user.registered")).to_contain_text(
        "delivered")

    # The operator's audit log has every change, never a secret.
    await page.click("nav >> text=Audit log")
    await expect(page.locator("tr.audit-entry")).to_have_count(5)
    await expect(page.locator("tr.audit-entry").first).to_contain_text("endpoint.secret_rotated")
    content = await page.content()
    assert all(s not in content for s in (first, second, third, signing, newer))
    await shot(page, "audit")
