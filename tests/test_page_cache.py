"""The job pages keep what they compute from a job's points in the cache while the job is at rest
(jobs/page_cache.py), and never show a stale, foreign or missing row because of it."""

from __future__ import annotations

import re
import time
import zoneinfo

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from pytest_django.fixtures import Settings

from jobs.models import Job, MetricPoint
from tests.support.job_rows import add_points, make_job

pytestmark = pytest.mark.django_db

# A Redis cache nobody listens on: what the pages meet when Redis is down.
UNREACHABLE_CACHE = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "unix:///nonexistent/redis.sock",
    }
}


def finished_job(owner: User, name: str = "done", accuracy: float = 0.6) -> Job:
    job = make_job(owner, name, status=Job.Status.COMPLETED, output_step=4)
    add_points(job, range(1, 6), evals={0: 0.2, 4: accuracy})
    return job


def without_nonces(page: bytes) -> bytes:
    """The page less what differs on every response: CSP nonces and masked CSRF tokens."""
    return re.sub(rb'nonce="[^"]*"|[A-Za-z0-9]{64}', b"", page)


def point_queries(client: Client, url: str) -> tuple[int, bytes]:
    """How many queries read metric points while the page is fetched, and the page."""
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    table = MetricPoint._meta.db_table
    return sum(f'FROM "{table}"' in q["sql"] for q in captured), response.content


@pytest.mark.parametrize("url", ["/jobs/", "job page"])
def test_a_finished_job_s_points_are_read_once_then_kept(
    url: str, alice: User, alice_client: Client
) -> None:
    job = finished_job(alice)
    url = f"/jobs/{job.pk}/" if url == "job page" else url
    cold, first = point_queries(alice_client, url)
    warm, second = point_queries(alice_client, url)
    assert cold >= 1, "the first load reads the points"
    assert warm == 0, "the second load takes them from the cache"
    assert b"20%" in second and b"60%" in second  # base → published accuracy, as computed
    assert without_nonces(first) == without_nonces(second)


@pytest.mark.parametrize("url", ["/jobs/", "job page"])
def test_a_running_job_shows_each_new_step_at_once(
    url: str, alice: User, alice_client: Client
) -> None:
    job = make_job(alice, "live", status=Job.Status.TRAINING, total_steps=10, current_step=2)
    add_points(job, range(1, 3), evals={0: 0.2})
    url = f"/jobs/{job.pk}/" if url == "job page" else url
    assert b"20%" in alice_client.get(url).content
    add_points(job, [], evals={2: 0.75})
    job.current_step = 3
    job.save(update_fields=["current_step"])
    cold, page = point_queries(alice_client, url)
    assert cold >= 1 and b"75%" in page


@pytest.mark.parametrize("url", ["/jobs/", "job page"])
def test_a_running_job_is_kept_only_for_a_moment(
    url: str, alice: User, alice_client: Client, settings: Settings
) -> None:
    settings.RFT_LIVE_PAGE_CACHE_SECONDS = 1
    job = make_job(alice, "live", status=Job.Status.TRAINING, total_steps=10, current_step=2)
    add_points(job, range(1, 3), evals={0: 0.2})
    url = f"/jobs/{job.pk}/" if url == "job page" else url
    alice_client.get(url)
    add_points(job, [], evals={2: 0.75})  # a validation point within the same step
    warm, page = point_queries(alice_client, url)
    assert warm == 0 and b"75%" not in page  # kept: polled by many, computed once
    time.sleep(1.1)
    cold, page = point_queries(alice_client, url)
    assert cold >= 1 and b"75%" in page


def test_a_row_changes_as_soon_as_what_it_shows_changes(alice: User, alice_client: Client) -> None:
    job = finished_job(alice, "before")
    assert b"before" in alice_client.get("/jobs/").content
    job.name = "after"
    job.save(update_fields=["name"])
    page = alice_client.get("/jobs/").content
    assert b"after" in page and b"before" not in page
    job.base_model.name = "renamed-base"
    job.base_model.save(update_fields=["name"])
    assert b"renamed-base" in alice_client.get("/jobs/").content


def test_a_resumed_job_s_new_points_show(alice: User, alice_client: Client) -> None:
    job = make_job(alice, "paused", status=Job.Status.PAUSED, total_steps=10, current_step=4)
    add_points(job, range(1, 5), evals={0: 0.2, 4: 0.3})
    assert b"30%" in alice_client.get(f"/jobs/{job.pk}/").content
    job.status, job.current_step = Job.Status.COMPLETED, 6
    job.save(update_fields=["status", "current_step"])
    add_points(job, range(5, 7), evals={6: 0.9})
    assert b"90%" in alice_client.get(f"/jobs/{job.pk}/").content


def test_the_time_zone_is_part_of_what_a_row_is_kept_under(
    alice: User, alice_client: Client
) -> None:
    job = finished_job(alice)
    job.created_at = timezone.datetime(2026, 1, 1, 23, 30, tzinfo=zoneinfo.ZoneInfo("UTC"))
    job.save(update_fields=["created_at"])
    assert b"2026-01-01 23:30" in alice_client.get("/jobs/").content
    with override_settings(TIME_ZONE="Asia/Tokyo"):
        assert b"2026-01-02 08:30" in alice_client.get("/jobs/").content


def test_bob_never_gets_alice_s_cached_rows(
    alice: User, bob: User, alice_client: Client, bob_client: Client
) -> None:
    job = finished_job(alice, "alices-secret-job")
    assert b"alices-secret-job" in alice_client.get("/jobs/").content  # now cached
    assert b"alices-secret-job" not in bob_client.get("/jobs/").content
    assert bob_client.get(f"/jobs/{job.pk}/").status_code == 404


def test_the_pages_work_while_the_cache_is_unreachable(
    alice: User, alice_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    job = finished_job(alice, "still-shown", accuracy=0.8)
    with override_settings(CACHES=UNREACHABLE_CACHE):
        for url in ("/jobs/", f"/jobs/{job.pk}/"):
            response = alice_client.get(url)
            assert response.status_code == 200
            assert b"still-shown" in response.content and b"80%" in response.content
    assert "The page cache is unreachable" in caplog.text
    caplog.clear()
    alice_client.get("/jobs/")  # control: with a cache that answers, no warning
    assert "unreachable" not in caplog.text
