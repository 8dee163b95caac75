"""The console in a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright,
against the live system: sekmet-fhir as the EHR (behind a proxy that can fail on purpose),
fhirgen's webhook under gunicorn with its job store, a Celery worker on Redis.

Screenshots of the overview and of a job page go to ``test-artifacts/`` (the README's pictures
in ``docs/images/`` were taken from there once).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from fhirgen.fhir.timeshift import ending_at
from fhirgen.service.users import add_user
from tests.ehr import SekmetServer
from tests.live import (
    Fault,
    FaultProxy,
    LiveSystem,
    admitted,
    discharged,
    drafts_in_ehr,
    sample_stay,
    wait_until,
)

pytestmark = pytest.mark.live

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
PASSWORD = "a long console password"
# As the machine's own notes advise: without these, Chromium keeps reaching for Google's hosts.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _browser_problem() -> str:
    if not Path(CHROMIUM).exists():
        return "Debian's chromium is not installed (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    return ""


if _browser_problem():
    pytest.skip(_browser_problem(), allow_module_level=True)


@pytest.fixture(scope="module")
def proxy(ehr: SekmetServer) -> Iterator[FaultProxy]:
    front = FaultProxy(ehr.base_url)
    yield front
    front.close()


@pytest.fixture(scope="module")
def system(proxy: FaultProxy, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSystem]:
    live = LiveSystem(
        tmp_path_factory.mktemp("fhirgen"),
        proxy.base_url,
        extra_env={"FHIRGEN_SECRET_KEY": "console-browser-test-key"},
    ).start()
    add_user(live.store, "ada", "admin", PASSWORD)
    add_user(live.store, "vic", "viewer", PASSWORD)
    live.subscribe()
    yield live
    live.stop()


def _discharge(ehr: SekmetServer, name: str) -> str:
    """Discharge a sample stay moved in time to end now (as the demo does)."""
    stay = sample_stay(name)
    patient = next(r["id"] for r in stay if r["resourceType"] == "Patient")
    stay = ending_at(stay, {patient: discharged(stay)["period"]["end"]}, datetime.now(UTC))
    ehr.put_all(admitted(stay))
    encounter = discharged(stay)
    ehr.put_all([encounter])
    return str(encounter["id"])


def _job(system: LiveSystem, encounter_id: str, state: str) -> Any:
    jobs = [j for j in system.store.jobs(encounter_id=encounter_id) if j.state == state]
    return jobs[0] if jobs else None


@pytest.fixture(scope="module")
def done_job(ehr: SekmetServer, system: LiveSystem) -> Any:
    encounter_id = _discharge(ehr, "heart-failure")
    return wait_until(
        lambda: _job(system, encounter_id, "done"), timeout=120, what="the drafted job"
    )


@pytest.fixture(scope="module")
def failed_job(ehr: SekmetServer, proxy: FaultProxy, system: LiveSystem) -> Any:
    """A job the EHR refused for good: its write-back answered 422 (a permanent error)."""
    encounter_id = discharged(sample_stay("pneumonia"))["id"]
    proxy.add(Fault("POST", "", times=1, status=422, body_contains=b'"transaction"'))
    _discharge(ehr, "pneumonia")
    return wait_until(
        lambda: _job(system, encounter_id, "failed"), timeout=120, what="the failed job"
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    yield from _page(browser)


@pytest.fixture
def second_page(browser: Any) -> Iterator[Any]:
    yield from _page(browser)


def _sign_in(page: Any, system: LiveSystem, user: str, target: str = "/console/") -> None:
    page.goto(f"{system.public_url}{target}")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/console/(?!login).*"))


def _shot(page: Any, name: str) -> None:
    """The top of the page as a user first sees it (a whole job page runs to megabytes)."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name))


def test_a_signed_out_visitor_is_sent_to_sign_in(page: Any, system: LiveSystem) -> None:
    page.goto(f"{system.public_url}/console/jobs")
    assert "/console/login" in page.url
    assert page.locator("input[name=username]").is_visible()
    assert page.locator("input[name=csrf_token]").count() == 1


def test_sign_in_shows_the_overview_with_its_charts(
    page: Any, system: LiveSystem, done_job: Any, failed_job: Any
) -> None:
    _sign_in(page, system, "ada")
    assert page.locator("h1").first.inner_text() == "Overview"
    charts = page.locator("svg.chart")
    assert charts.count() >= 2, "throughput and latency charts"
    bars = page.locator("svg.chart rect.bar-done title").all_text_contents()
    assert any(re.search(r": [1-9]\d* done$", bar) for bar in bars), "the done job is charted"
    bars = page.locator("svg.chart rect.bar-failed title").all_text_contents()
    assert any(re.search(r": [1-9]\d* failed$", bar) for bar in bars), "so is the failed one"
    latency = page.locator("h2", has_text="Discharge to draft").inner_text()
    assert re.search(r"p50 [\d.]+ (ms|s|min)\b", latency), latency  # minutes at most
    workers = page.locator("tr.worker").all_inner_texts()
    assert any("io" in row and "gpu" in row for row in workers), "the worker's heartbeat"
    _shot(page, "console-overview.png")


def test_a_job_page_shows_the_draft_with_its_citations(
    page: Any, system: LiveSystem, done_job: Any, ehr: SekmetServer
) -> None:
    _sign_in(page, system, "ada", f"/console/jobs?q={done_job.encounter_id}")
    page.click(f"a[href='/console/jobs/{done_job.id}']")
    assert page.locator("#job-state").inner_text() == "done"
    sentences = page.locator(".draft .sentence-row")
    assert sentences.count() >= 10
    # Every sentence shows its citations next to the facts they point to.
    for row in sentences.all()[:10]:
        cites = row.locator("a.cite").all_inner_texts()
        assert cites, row.inner_text()
        assert row.locator("li.cited-fact").all_inner_texts()
        assert "not among the facts" not in row.inner_text()
        for fact_id in cites:
            assert page.locator(f"tr[id='fact-{fact_id}']").count() == 1
    # The written resources, as the EHR holds them.
    written = drafts_in_ehr(ehr, done_job.encounter_id)["DocumentReference"][0]["id"]
    assert f"DocumentReference/{written}" in page.locator("dd.written").inner_text()
    page.locator(".draft").first.scroll_into_view_if_needed()
    _shot(page, "console-job.png")


def test_an_admin_retries_a_failed_job_and_sees_it_complete(
    page: Any, system: LiveSystem, failed_job: Any, ehr: SekmetServer
) -> None:
    _sign_in(page, system, "ada", f"/console/jobs/{failed_job.id}")
    assert page.locator("#job-state").inner_text() == "failed"
    assert "422" in page.locator("#job-reason").inner_text()
    page.click("button[data-action=retry]")
    page.wait_for_url(re.compile(rf".*/console/jobs/{failed_job.id}$"))

    def state() -> str | None:
        page.reload()
        shown = page.locator("#job-state").inner_text()
        return shown if shown == "done" else None

    assert wait_until(state, timeout=120, what="the retried job") == "done"
    found = drafts_in_ehr(ehr, failed_job.encounter_id)
    assert {k: len(v) for k, v in found.items()} == {
        "DocumentReference": 1,
        "PatientInstructions": 1,
        "CarePlan": 1,
        "Provenance": 1,
    }
    assert "retry" in page.locator("table.timeline").inner_text()


def test_a_viewer_sees_no_actions_and_is_refused_when_posting_one(
    page: Any, system: LiveSystem, done_job: Any
) -> None:
    _sign_in(page, system, "vic", f"/console/jobs/{done_job.id}")
    assert page.locator("#job-state").inner_text() == "done"
    assert page.locator("button[data-action]").count() == 0
    assert page.locator("form[action$='/reconcile']").count() == 0
    token = page.locator("meta[name=csrf-token]").get_attribute("content")
    assert token
    answer = page.request.post(
        f"{system.public_url}/console/jobs/{done_job.id}/regenerate",
        form={"csrf_token": token},
        max_redirects=0,
    )
    assert answer.status == 403
    assert len(system.store.jobs(encounter_id=done_job.encounter_id)) == 1, "nothing happened"


def test_a_post_without_a_csrf_token_is_refused(
    page: Any, system: LiveSystem, done_job: Any
) -> None:
    _sign_in(page, system, "ada", f"/console/jobs/{done_job.id}")
    before = len(system.store.jobs(encounter_id=done_job.encounter_id))
    answer = page.request.post(
        f"{system.public_url}/console/jobs/{done_job.id}/regenerate", form={}, max_redirects=0
    )
    assert answer.status == 400
    assert "CSRF" in answer.text()
    assert len(system.store.jobs(encounter_id=done_job.encounter_id)) == before


def test_the_audit_log_shows_who_viewed_which_job(
    page: Any, second_page: Any, system: LiveSystem, done_job: Any
) -> None:
    _sign_in(second_page, system, "vic", f"/console/jobs/{done_job.id}")
    _sign_in(page, system, "ada", f"/console/audit?job={done_job.id}&action=view-job")
    rows = page.locator("table.audit tbody tr").all_inner_texts()
    viewers = {row.split("\t")[1].strip() for row in rows if "view-job" in row}
    assert {"ada", "vic"} <= viewers, rows


def test_an_admin_regenerates_a_draft_and_the_new_one_replaces_it_in_the_ehr(
    page: Any, system: LiveSystem, done_job: Any, ehr: SekmetServer
) -> None:
    (first,) = drafts_in_ehr(ehr, done_job.encounter_id)["DocumentReference"]
    _sign_in(page, system, "ada", f"/console/jobs/{done_job.id}")
    page.click("button[data-action=regenerate]")
    page.wait_for_url(re.compile(r".*/console/jobs/(?!" + done_job.id + r")[0-9a-f]+$"))

    def state() -> str | None:
        page.reload()
        shown = page.locator("#job-state").inner_text()
        return shown if shown in ("done", "failed", "skipped") else None

    assert wait_until(state, timeout=120, what="the regenerated draft") == "done"
    documents = drafts_in_ehr(ehr, done_job.encounter_id)["DocumentReference"]
    (second,) = [d for d in documents if d["id"] != first["id"]]
    assert second["relatesTo"] == [
        {"code": "replaces", "target": {"reference": f"DocumentReference/{first['id']}"}}
    ]
    assert second["docStatus"] == "preliminary"
    assert f"DocumentReference/{second['id']}" in page.locator("dd.written").inner_text()
