"""The dashboard in a real browser: Debian's Chromium, headless, driven by Playwright.

Chromium comes from the distribution (``apt-get install -y chromium``; ``.ci/run`` does
it), never from ``playwright install``. Without it these tests fail in CI (``CI`` set)
and are skipped, with the reason, elsewhere. The run saves a screenshot of every page to
docs/img/ (docs/DASHBOARD.md and the README show them).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from dashboard_support import TOKEN, Served, eventually_async

from bananas import Fail, Job, Registry, Worker
from bananas.limits_admin import LimitsAdmin
from bananas.redis.runner import SyncRunner
from bananas.scheduler.definition import Schedule
from bananas.scheduler.store import register_call

playwright_api = pytest.importorskip("playwright.async_api")

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "img"
StartWorker = Callable[..., Awaitable[Worker]]


def chromium_path() -> str | None:
    found = shutil.which("chromium") or "/usr/bin/chromium"
    return found if os.access(found, os.X_OK) else None


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    path = chromium_path()
    if path is None:
        message = "Debian's chromium is not installed (apt-get install -y chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must install it (.ci/run does)")
        pytest.skip(f"{message}; CI installs it and runs these tests")
    async with playwright_api.async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=path, headless=True, args=["--no-sandbox"])
        yield launched
        await launched.close()


@pytest.fixture
async def page(browser: Any) -> AsyncIterator[Any]:
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    opened = await context.new_page()
    yield opened
    await context.close()


def recording_registry(r: redis.Redis) -> Registry:
    registry = Registry()

    @registry.handler("render")
    def render(job: Job) -> str:
        r.rpush("test:ran", job.id)
        return "ok"

    @registry.handler("fragile")
    def fragile(job: Job) -> str:
        if r.exists("test:broken"):
            raise Fail("the disk is full")
        r.rpush("test:ran", job.id)
        return "ok"

    return registry


async def test_overview_shows_depths_and_updates_by_itself(dash: Served, page: Any) -> None:
    expect = playwright_api.expect
    for _ in range(3):
        dash.client.submit_job("render", None, "high", routing_key="gpu")
    for _ in range(2):
        dash.client.submit_job("render", None, "low", routing_key="gpu")
    await page.goto(f"{dash.url}/#token={TOKEN}")
    row = page.locator('tr[data-routing-key="gpu"]')
    await expect(row.locator('[data-col="ready-high"]')).to_have_text("3")
    await expect(row.locator('[data-col="ready-low"]')).to_have_text("2")
    await expect(row.locator('[data-col="ready"]')).to_have_text("5")
    assert "#token" not in page.url  # taken out of the address bar once stored
    await page.evaluate("window.notReloaded = true")
    for _ in range(4):
        dash.client.submit_job("render", None, "normal", routing_key="gpu")
    await expect(row.locator('[data-col="ready-normal"]')).to_have_text("4", timeout=2500)
    await expect(row.locator('[data-col="ready"]')).to_have_text("9", timeout=2500)
    assert await page.evaluate("window.notReloaded") is True


async def test_an_orphaned_route_is_flagged(
    dash: Served, page: Any, start_worker: StartWorker, r: redis.Redis
) -> None:
    expect = playwright_api.expect
    await start_worker(recording_registry(r), routing_keys=("gpu",))
    dash.client.submit_job("send_email", {"to": "a@b.c"}, routing_key="email")
    await page.goto(f"{dash.url}/#token={TOKEN}")
    problem = page.locator('li.problem[data-kind="orphaned"][data-routing-key="email"]')
    await expect(problem).to_contain_text("no worker listens on this routing key")
    await expect(page.locator('tr[data-routing-key="email"]')).to_have_class("orphaned")
    await expect(page.locator('tr[data-routing-key="gpu"] [data-col="consumers"]')).to_have_text("1")


async def test_pausing_from_the_page_stops_a_worker_starting_jobs(
    dash: Served, page: Any, start_worker: StartWorker, r: redis.Redis
) -> None:
    expect = playwright_api.expect
    await start_worker(recording_registry(r), routing_keys=("gpu",))
    first = dash.client.submit_job("render", None, routing_key="gpu")
    await eventually_async(lambda: r.lrange("test:ran", 0, -1) == [first.encode()])
    await page.goto(f"{dash.url}/#token={TOKEN}")
    row = page.locator('tr[data-routing-key="gpu"]')
    await row.locator("button.pause").click()
    await expect(page.locator("#flash")).to_contain_text("gpu paused")
    await expect(row.locator("th .flag.paused")).to_be_visible()
    held = dash.client.submit_job("render", None, routing_key="gpu")
    await asyncio.sleep(1.0)  # the worker was woken by the submit and had its chance
    assert r.lrange("test:ran", 0, -1) == [first.encode()]
    assert dash.client.get_job(held).status.value == "pending"  # type: ignore[union-attr]
    await expect(page.locator('li.problem[data-kind="paused"]')).to_be_visible()
    await row.locator("button.resume").click()
    await eventually_async(lambda: r.lrange("test:ran", 0, -1) == [first.encode(), held.encode()])


async def test_a_dead_job_retried_from_the_dead_letter_page_runs(
    dash: Served, page: Any, start_worker: StartWorker, r: redis.Redis
) -> None:
    expect = playwright_api.expect
    r.set("test:broken", 1)
    await start_worker(recording_registry(r), routing_keys=("default",))
    job_id = dash.client.submit_job("fragile", None)
    await eventually_async(lambda: r.llen("bananas:queue:dead") == 1)
    r.delete("test:broken")
    await page.goto(f"{dash.url}/dead#token={TOKEN}")
    row = page.locator(f'tr[data-job-id="{job_id}"]')
    await expect(row).to_contain_text("the disk is full")
    await page.fill('input[name="name"]', "fragile")  # the filter keeps it listed
    await expect(row).to_be_visible()
    await row.locator("button.retry").click()
    await eventually_async(lambda: r.lrange("test:ran", 0, -1) == [job_id.encode()])
    await expect(row).to_have_count(0)
    assert r.llen("bananas:queue:dead") == 0


async def test_the_job_search_box_tells_where_a_job_is_and_why(dash: Served, page: Any) -> None:
    expect = playwright_api.expect
    job_id = dash.client.submit_job("send_email", {"to": "a@b.c"}, routing_key="email")
    await page.goto(f"{dash.url}/jobs#token={TOKEN}")
    await page.fill('#search input[name="id"]', job_id)
    await page.click("#search button")
    await page.wait_for_url(f"**/jobs/{job_id}")
    where = page.locator("p.where")
    await expect(where).to_contain_text("waiting in bananas:route:email:queue:normal")
    await expect(where).to_contain_text("no live worker listens on 'email'")
    await expect(page.locator('[data-field="status"]')).to_have_text("pending")
    await page.click("text=Cancel job")
    await expect(page.locator('[data-field="status"]')).to_have_text("cancelled")
    await page.goto(f"{dash.url}/jobs/no-such-job")
    await expect(page.locator("#job .error")).to_contain_text("no job with id 'no-such-job'")


async def test_a_write_without_the_token_is_refused(serve: Callable[..., Served], page: Any, r: redis.Redis) -> None:
    expect = playwright_api.expect
    served = serve(public_read=True)
    served.client.submit_job("render", None, routing_key="gpu")
    await page.goto(f"{served.url}/")
    await expect(page.locator("#auth-state")).to_contain_text("read-only")
    row = page.locator('tr[data-routing-key="gpu"]')
    await expect(row.locator('[data-col="ready"]')).to_have_text("1")  # public reads work
    await row.locator("button.pause").click()
    await expect(page.locator("#flash")).to_contain_text("Refused")
    assert served.client.paused() == []


async def test_screenshots_of_every_page(
    dash: Served, page: Any, start_worker: StartWorker, r: redis.Redis
) -> None:
    """A small fleet with something on every page; each page saved to docs/img/."""
    expect = playwright_api.expect
    registry = recording_registry(r)

    @registry.handler("train")
    async def train(job: Job) -> None:
        await asyncio.sleep(30)

    r.set("test:broken", 1)
    LimitsAdmin(r).set_route("gpu", concurrency=2)
    LimitsAdmin(r).set_job("send_email", rate="100/m")
    await start_worker(registry, routing_keys=("gpu", "default"), concurrency=4, shutdown_grace=0.5)
    await start_worker(registry, routing_keys=("reports",), concurrency=2, shutdown_grace=0.5)
    client = dash.client
    client.submit_job("train", {"epochs": 3}, "high", routing_key="gpu")
    client.submit_job("train", {"epochs": 5}, "normal", routing_key="gpu")
    dead = [client.submit_job("fragile", {"n": i}) for i in range(3)]
    await eventually_async(lambda: r.llen("bananas:queue:dead") == 3)
    client.pause("reports")
    client.submit_many("render", [{"page": i} for i in range(40)], "normal", routing_key="reports")
    client.submit_many("send_email", [{"to": f"user{i}@example.com"} for i in range(12)], routing_key="email")
    client.submit_many("train", [{"epochs": 1}] * 6, "low", routing_key="gpu")
    client.submit_many("render", [{"page": i} for i in range(25)], routing_key="default")
    now = int(time.time())
    for cron, name, key in (("*/5 * * * *", "cleanup", "default"), ("0 3 * * *", "nightly_report", "reports")):
        schedule = Schedule.create(cron, name, schedule_id=name, routing_key=key)
        SyncRunner(r).run(register_call(schedule, now, schedule.cron.next_after(now), now))
    # The renders ran: wait for the workers' throughput history (added every 5 s) to chart it.
    await eventually_async(lambda: any(r.scan_iter("bananas:throughput:*")), timeout=10)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.goto(f"{dash.url}/#token={TOKEN}")
    await expect(page.locator('li.problem[data-kind="orphaned"]')).to_be_visible()
    shots = {
        "overview": "/",
        "workers": "/workers",
        "running": "/running",
        "job": f"/jobs/{dead[0]}",
        "dead": "/dead",
        "schedules": "/schedules",
        "limits": "/limits",
    }
    for name, path in shots.items():
        await page.goto(f"{dash.url}{path}")
        await expect(page.locator("#updated")).to_contain_text("updated")
        await page.screenshot(path=str(SCREENSHOTS / f"dashboard-{name}.png"), full_page=True)
    assert all((SCREENSHOTS / f"dashboard-{name}.png").stat().st_size > 5000 for name in shots)
