"""Text holding NUL (U+0000) is stored on either database instead of failing the write: a model may
sample the NUL token, a dataset row or an API request may carry "\\u0000". SQLite keeps it as given;
PostgreSQL cannot hold NUL in text or jsonb, so there each NUL is stored as U+FFFD."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import DataError, connection
from django.db.backends.postgresql.base import DatabaseWrapper as StockPostgreSQL

from jobs.models import Job, ValidationAnswers
from rftconsole.postgresql.base import without_nul
from tests.support.job_rows import make_job

pytestmark = pytest.mark.django_db

ANSWER = "?\x00[x]"


def stored(text: str) -> str:
    """What the database in use keeps of `text`."""
    return text.replace("\x00", "\ufffd") if connection.vendor == "postgresql" else text


def test_a_validation_answer_with_nul_is_saved_and_read_back(alice: User) -> None:
    job = make_job(alice)
    answers = [{"prompt": [{"role": "user", "content": "2+1?"}], "answer": ANSWER, "reward": 0.5}]
    ValidationAnswers.objects.create(job=job, step=0, answers=answers, rows=1)
    assert ValidationAnswers.objects.get(job=job).answers[0]["answer"] == stored(ANSWER)


def test_a_text_column_and_a_lookup_accept_nul(alice: User) -> None:
    job = make_job(alice)
    Job.objects.filter(pk=job.pk).update(status_reason=f"rank 1 printed {ANSWER}")
    job.refresh_from_db()
    assert job.status_reason == stored(f"rank 1 printed {ANSWER}")
    assert Job.objects.filter(status_reason__endswith=ANSWER).get() == job


def test_nul_in_json_keys_and_nested_lists_is_replaced_too() -> None:
    value = {"a\x00": ["b\x00", ("c", 1, None, {"d": "\x00"})]}
    assert without_nul(value) == {"a\ufffd": ["b\ufffd", ("c", 1, None, {"d": "\ufffd"})]}
    assert without_nul("plain") == "plain"


def test_django_s_own_postgresql_backend_fails_the_same_write() -> None:
    """The control: what the console's backend is for. On SQLite, the same write works as given."""
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("select %s", [ANSWER])
            assert cursor.fetchone()[0] == ANSWER
        return
    stock = StockPostgreSQL({**connection.settings_dict}, alias="stock")
    try:
        with stock.cursor() as cursor, pytest.raises((DataError, ValueError)):
            cursor.execute("select %s::text", [ANSWER])
        with connection.cursor() as cursor:
            cursor.execute("select %s::text", [ANSWER])
            assert cursor.fetchone()[0] == stored(ANSWER)
    finally:
        stock.close()
