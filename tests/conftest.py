from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.management import call_command
from django.test import Client
from playwright.sync_api import Browser, sync_playwright

from jobs.starter.artifacts import Recipe, ensure_artifacts
from rftconsole.processes.supervisor import Supervisor
from tests.support.browser import launch_chromium
from tests.support.stack import start_stack

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    """Each test starts with an empty cache (tests use a per-process LocMemCache): a rolled-back
    test's row ids are given out again, so nothing cached for one test may reach the next."""
    cache.clear()


@pytest.fixture
def alice(db: None) -> User:
    return User.objects.create_user("alice", "alice@example.com", PASSWORD)


@pytest.fixture
def bob(db: None) -> User:
    return User.objects.create_user("bob", "bob@example.com", PASSWORD)


@pytest.fixture
def alice_client(alice: User) -> Client:
    client = Client()
    client.force_login(alice)
    return client


@pytest.fixture
def bob_client(bob: User) -> Client:
    client = Client()
    client.force_login(bob)
    return client


@pytest.fixture(scope="session")
def live_stack(
    django_db_setup: None, django_db_blocker: object, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Supervisor]:
    """Real Redis and real Celery worker processes for both queues, on the test database."""
    supervisor = start_stack(tmp_path_factory.mktemp("stack-logs"))
    yield supervisor
    supervisor.stop_all(grace_seconds=10)


@pytest.fixture(scope="session")
def starter_artifacts() -> Path:
    """The default starter build, made once and cached across runs (see tests/settings.py)."""
    return ensure_artifacts(Recipe(), show_progress=False)


@pytest.fixture
def trainer_user(starter_artifacts: Path, db: None) -> User:
    """alice, with the starter model, the demo datasets and their rewards (bootstrap_starter)."""
    user = User.objects.create_user("alice")
    call_command("bootstrap_starter", "--no-progress", "--user", "alice", stdout=io.StringIO())
    return user


@pytest.fixture
def admin(db: None) -> User:
    return User.objects.create_superuser("admin", "", PASSWORD)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `postgresql` restart the database server: they exist only on the production
    path (DATABASE_URL names PostgreSQL). On the embedded default (SQLite, a file, no server) they
    are deselected, never skipped: there is nothing there for them to test."""
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        return
    deselected = [item for item in items if item.get_closest_marker("postgresql")]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker("postgresql")]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the tables tests recorded (tests/support/reports.py), e.g. what each hostile reward did."""
    from tests.support import reports

    for report in sorted(reports.REPORTS):
        terminalreporter.write_sep("-", f"report: {report}")
        terminalreporter.write_line(reports.markdown(report))
    reports.save_all()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium per browser-test module."""
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()
