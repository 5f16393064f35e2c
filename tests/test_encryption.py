"""Encryption at rest: with RFT_ENCRYPTION_KEY (or RFT_ENCRYPTION_KEY_FILE) set, dataset files,
invocation logs, rollouts and judge API keys are stored encrypted, every feature still reads them,
data stored before a key was set still reads, and `rotate_encryption_key` moves everything to a
new key."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client

from jobs.datasets import storage
from jobs.datasets.importer import import_lines
from jobs.datasets.storage import iter_rows
from jobs.datasets.tools import page_of_rows, split_dataset
from jobs.models import Dataset, Rollout, ValidationAnswers
from playground.logs import LogFilter, dataset_from_logs, filter_logs, metadata_equals
from playground.models import Evaluation, EvaluationRow, InvocationLog
from rewards.models import RewardVersion
from rewards.services import create_reward
from rftconsole.security import crypto
from tests.support.job_rows import add_rollout, make_job
from tests.test_logs_dataset import log

SECRET = "What is the capital of Zanzibar?"
KEY_A, KEY_B, KEY_C = (Fernet.generate_key().decode() for _ in range(3))


@pytest.fixture(autouse=True)
def data_dir(settings: Any, tmp_path: Path) -> Path:
    settings.DATA_DIR = tmp_path / "data"
    settings.RFT_ENCRYPTION_KEY = ""
    settings.RFT_ENCRYPTION_KEY_FILE = ""
    return settings.DATA_DIR


def rows(count: int = 3, text: str = SECRET) -> list[bytes]:
    return [
        json.dumps(
            {"messages": [{"role": "user", "content": f"{text} #{i}"}], "reference_answer": str(i)}
        ).encode()
        for i in range(count)
    ]


def dataset(owner: User, name: str = "secret", count: int = 3) -> Dataset:
    stored, _ = import_lines(owner, name, rows(count))
    assert stored is not None
    return stored


def raw_column(model: type, column: str, pk: int) -> str:
    """The value as the database holds it, without the field's decryption."""
    quote = connection.ops.quote_name
    query = f"SELECT {quote(column)} FROM {quote(model._meta.db_table)} WHERE id = %s"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(query, [pk])
        return str(cursor.fetchone()[0])


def judge_version(owner: User, api_key: str) -> RewardVersion:
    config = {
        "instructions": "Rate {{response}}",
        "judge_type": "endpoint",
        "base_url": "http://127.0.0.1:8000/v1",
        "model": "m",
    }
    return create_reward(owner, "judge", "judge", config=config, api_key=api_key)


def test_it_stores_dataset_files_encrypted_and_every_reader_gets_the_rows(
    settings: Any, alice: User, alice_client: Client
) -> None:
    settings.RFT_ENCRYPTION_KEY = KEY_A
    stored = dataset(alice)
    on_disk = Path(stored.path).read_bytes()
    assert on_disk.startswith(storage.MAGIC) and b"Zanzibar" not in on_disk
    assert [row["reference_answer"] for row in iter_rows(stored.path)] == ["0", "1", "2"]
    assert page_of_rows(stored, 1, 1)[0]["messages"][0]["content"] == f"{SECRET} #1"
    assert "Zanzibar" in alice_client.get(f"/datasets/{stored.pk}/rows/").content.decode()
    download = alice_client.get(f"/datasets/{stored.pk}/download/")
    lines = b"".join(download.streaming_content).decode().splitlines()
    assert download["Content-Disposition"] == 'attachment; filename="secret.jsonl"'
    assert [json.loads(line)["reference_answer"] for line in lines] == ["0", "1", "2"]


def test_it_streams_large_files_as_many_chunks_split_at_row_boundaries(
    settings: Any, alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.RFT_ENCRYPTION_KEY = KEY_A
    monkeypatch.setattr(storage, "CHUNK_BYTES", 300)
    stored, _ = import_lines(alice, "big", rows(40, "Line\u2028separator and ünïcode"))
    assert stored is not None
    tokens = Path(stored.path).read_bytes().splitlines()[1:]
    assert len(tokens) > 10
    read = list(iter_rows(stored.path))
    assert len(read) == 40 and read[39]["messages"][0]["content"].endswith("ünïcode #39")
    with storage.open_plain(stored.path) as stream:
        assert len(stream.read().splitlines()) == 40


def test_splitting_an_encrypted_dataset_gives_encrypted_parts(settings: Any, alice: User) -> None:
    settings.RFT_ENCRYPTION_KEY = KEY_A
    train, validation = split_dataset(alice, dataset(alice, count=10), 0.2)
    for part in (train, validation):
        assert b"Zanzibar" not in Path(part.path).read_bytes()
    assert train.row_count + validation.row_count == 10
    assert len(list(iter_rows(train.path))) == train.row_count


def test_the_trainer_and_the_test_bench_read_encrypted_datasets(settings: Any, alice: User) -> None:
    from jobs.training.data import split_rows
    from rewards.testbench import first_rows

    settings.RFT_ENCRYPTION_KEY = KEY_A
    train, validation = dataset(alice, "train", 4), dataset(alice, "validation", 2)
    job = make_job(alice, validation_dataset=validation, hp={"seed": 0})
    job.train_dataset = train
    assert tuple(map(len, split_rows(job))) == (4, 2)
    assert [row["reference_answer"] for row in first_rows(train, 2, start=1)] == ["1", "2"]


def test_plain_files_stored_before_a_key_was_set_still_read(settings: Any, alice: User) -> None:
    before = dataset(alice)
    assert b"Zanzibar" in Path(before.path).read_bytes()
    settings.RFT_ENCRYPTION_KEY = KEY_A
    assert len(list(iter_rows(before.path))) == 3
    assert storage.read_rows(before.path)[0]["messages"][0]["content"] == f"{SECRET} #0"


def test_a_wrong_key_gives_a_clear_error_not_garbage(settings: Any, alice: User) -> None:
    settings.RFT_ENCRYPTION_KEY = KEY_A
    stored = dataset(alice)
    entry = log(alice, SECRET, "Stone Town")
    settings.RFT_ENCRYPTION_KEY = KEY_C
    with pytest.raises(crypto.DecryptionError, match="cannot be decrypted with the configured"):
        list(iter_rows(stored.path))
    with pytest.raises(crypto.DecryptionError, match="InvocationLog.request cannot be decrypted"):
        InvocationLog.objects.get(pk=entry.pk)


def test_invocation_logs_are_stored_encrypted_and_read_back(
    settings: Any, alice: User, alice_client: Client
) -> None:
    settings.RFT_ENCRYPTION_KEY = KEY_A
    entry = log(alice, SECRET, "Stone Town", metadata={"team": "geo"})
    for column in ("request", "response_text"):
        stored = raw_column(InvocationLog, column, entry.pk)
        assert "Zanzibar" not in stored and "Stone Town" not in stored and "enc:v1:" in stored
    fetched = InvocationLog.objects.get(pk=entry.pk)
    assert fetched.request["messages"][0]["content"] == SECRET
    assert fetched.response_text == "Stone Town"
    listed = alice_client.get("/api/invocation-logs/").json()["results"][0]
    assert listed["request"]["messages"][0]["content"] == SECRET
    assert listed["response_text"] == "Stone Town"


def test_metadata_stays_plain_so_log_filters_still_work(settings: Any, alice: User) -> None:
    settings.RFT_ENCRYPTION_KEY = KEY_A
    wanted = log(alice, SECRET, "Stone Town", metadata={"team": "geo"})
    log(alice, "Other", "Answer", metadata={"team": "math"})
    assert list(InvocationLog.objects.filter(metadata_equals("team", "geo"))) == [wanted]
    geo = [LogFilter("team", "equals", "geo")]
    assert list(filter_logs(alice, geo)) == [wanted]
    built, _ = dataset_from_logs(alice, "geo", geo, use_response_as_reference=True)
    assert b"Stone Town" not in Path(built.path).read_bytes()
    assert [row["reference_answer"] for row in iter_rows(built.path)] == ["Stone Town"]


def test_rollouts_are_stored_encrypted_and_the_api_returns_them(
    settings: Any, alice: User, alice_client: Client
) -> None:
    settings.RFT_ENCRYPTION_KEY = KEY_A
    rollout = add_rollout(make_job(alice), 3, [1.0, 0.0])
    for column in ("prompt", "reference_answer", "completions", "reward_output"):
        stored = raw_column(Rollout, column, rollout.pk)
        assert "enc:v1:" in stored and "answer 0" not in stored and "What is 3" not in stored
    fetched = Rollout.objects.get(pk=rollout.pk)
    assert fetched.completions[0]["text"] == "answer 0 #### 0"
    assert fetched.reference_answer == {"final_answer": "4"}
    served = alice_client.get(f"/api/jobs/{rollout.job_id}/rollouts/").json()[0]
    assert served["prompt"][1]["content"] == "What is 3 + 1?"
    assert served["reward_output"] == "graded step 3"


def test_rows_stored_plain_before_a_key_was_set_still_read(settings: Any, alice: User) -> None:
    entry = log(alice, SECRET, "enc:v1:looks like a token")
    assert "Zanzibar" in raw_column(InvocationLog, "request", entry.pk)
    settings.RFT_ENCRYPTION_KEY = KEY_A
    fetched = InvocationLog.objects.get(pk=entry.pk)
    assert fetched.request["messages"][0]["content"] == SECRET
    assert fetched.response_text == "enc:v1:looks like a token"


def test_rotation_moves_everything_to_the_new_key(settings: Any, alice: User) -> None:
    plain_dataset = dataset(alice, "plain-before")
    plain_log = log(alice, "Plain question", "Plain answer")
    settings.RFT_ENCRYPTION_KEY = KEY_A
    encrypted_dataset = dataset(alice, "with-a")
    encrypted_log = log(alice, SECRET, "Stone Town")
    rollout = add_rollout(make_job(alice), 1, [1.0])
    no_reference = add_rollout(rollout.job, 2, [0.5])
    Rollout.objects.filter(pk=no_reference.pk).update(reference_answer=None, reward_output="")
    version = judge_version(alice, "sk-zanzibar")
    answers = ValidationAnswers.objects.create(
        job=rollout.job, step=0, rows=1, answers=[{"answer": "Stone Town"}]
    )
    evaluated = EvaluationRow.objects.create(
        evaluation=Evaluation.objects.create(
            owner=alice, dataset_name="d", reward_label="r", pass_threshold=1.0
        ),
        index=0,
        row={"messages": [{"role": "user", "content": SECRET}]},
        answers=[{"text": "Stone Town"}],
    )

    settings.RFT_ENCRYPTION_KEY = f"{KEY_B},{KEY_A}"
    output = StringIO()
    call_command("rotate_encryption_key", stdout=output)
    report = output.getvalue()
    assert "dataset files: re-encrypted 2 (1 stored plain before)" in report
    assert "invocation logs: re-encrypted 2 (1 stored plain before)" in report
    assert "rollouts: re-encrypted 2 (0 stored plain before)" in report
    assert "judge API keys: re-encrypted 1" in report
    assert "validation answers: re-encrypted 1 (0 stored plain before)" in report
    assert "evaluation rows: re-encrypted 1 (0 stored plain before)" in report

    settings.RFT_ENCRYPTION_KEY = KEY_B
    for stored in (plain_dataset, encrypted_dataset):
        assert b"question" not in Path(stored.path).read_bytes().lower()
        assert len(list(iter_rows(stored.path))) == 3
        assert Dataset.objects.get(pk=stored.pk).size_bytes == Path(stored.path).stat().st_size
    assert "Plain" not in raw_column(InvocationLog, "response_text", plain_log.pk)
    assert InvocationLog.objects.get(pk=plain_log.pk).response_text == "Plain answer"
    assert (
        InvocationLog.objects.get(pk=encrypted_log.pk).request["messages"][0]["content"] == SECRET
    )
    assert Rollout.objects.get(pk=rollout.pk).reward_output == "graded step 1"
    kept = Rollout.objects.get(pk=no_reference.pk)
    assert kept.reference_answer is None and kept.reward_output == ""
    assert kept.completions[0]["text"] == "answer 0 #### 0"
    assert ValidationAnswers.objects.get(pk=answers.pk).answers == [{"answer": "Stone Town"}]
    assert "Zanzibar" not in raw_column(EvaluationRow, "row", evaluated.pk)
    assert EvaluationRow.objects.get(pk=evaluated.pk).answers == [{"text": "Stone Town"}]
    token = RewardVersion.objects.get(pk=version.pk).config["api_key_encrypted"]
    assert crypto.decrypt_text(token) == "sk-zanzibar"
    settings.RFT_ENCRYPTION_KEY = KEY_A
    with pytest.raises(ValueError, match="cannot be decrypted"):
        crypto.decrypt_text(token)  # the old key alone no longer opens anything


def test_rotation_is_safe_to_rerun_and_a_dry_run_changes_nothing(
    settings: Any, alice: User
) -> None:
    settings.RFT_ENCRYPTION_KEY = KEY_A
    stored = dataset(alice)
    entry = log(alice, SECRET, "Stone Town")
    settings.RFT_ENCRYPTION_KEY = f"{KEY_B},{KEY_A}"
    before = (Path(stored.path).read_bytes(), raw_column(InvocationLog, "request", entry.pk))
    output = StringIO()
    call_command("rotate_encryption_key", "--dry-run", stdout=output)
    assert "dataset files: would re-encrypt 1" in output.getvalue()
    assert before == (
        Path(stored.path).read_bytes(),
        raw_column(InvocationLog, "request", entry.pk),
    )
    call_command("rotate_encryption_key", stdout=StringIO())
    call_command("rotate_encryption_key", stdout=StringIO())
    settings.RFT_ENCRYPTION_KEY = KEY_B
    assert len(list(iter_rows(stored.path))) == 3
    assert InvocationLog.objects.get(pk=entry.pk).response_text == "Stone Town"
    assert not list(Path(stored.path).parent.glob(".rotating-*"))


def test_rotation_without_the_old_key_leaves_data_as_it_is_and_says_so(
    settings: Any, alice: User
) -> None:
    settings.RFT_ENCRYPTION_KEY = KEY_A
    stored = dataset(alice)
    entry = log(alice, SECRET, "Stone Town")
    before = Path(stored.path).read_bytes()
    settings.RFT_ENCRYPTION_KEY = KEY_B
    output = StringIO()
    with pytest.raises(CommandError, match="2 item"):
        call_command("rotate_encryption_key", stdout=output)
    assert f"InvocationLog {entry.pk}: no configured key fits" in output.getvalue()
    assert Path(stored.path).read_bytes() == before
    settings.RFT_ENCRYPTION_KEY = KEY_A
    assert InvocationLog.objects.get(pk=entry.pk).response_text == "Stone Town"


def test_rotation_refuses_to_run_without_a_key(db: None) -> None:
    with pytest.raises(CommandError, match="Encryption at rest is off"):
        call_command("rotate_encryption_key")


def test_judge_keys_stored_before_a_key_was_set_keep_working(settings: Any, alice: User) -> None:
    version = judge_version(alice, "sk-old")
    settings.RFT_ENCRYPTION_KEY = KEY_A
    assert crypto.decrypt_text(version.config["api_key_encrypted"]) == "sk-old"


def test_a_key_file_holds_the_keys_first_one_primary(
    settings: Any, alice: User, tmp_path: Path
) -> None:
    key_file = tmp_path / "keys"
    key_file.write_text(f"# rotated 2024-06\n{KEY_B}\n\n{KEY_A}\n")
    settings.RFT_ENCRYPTION_KEY_FILE = str(key_file)
    assert crypto.at_rest_enabled() and crypto.configured_keys() == (KEY_B, KEY_A)
    stored = dataset(alice)
    token = Path(stored.path).read_bytes().splitlines()[1]
    assert Fernet(KEY_B.encode()).decrypt(token).startswith(b'{"messages"')
    key_file.write_text(f"{KEY_C}\n")
    with pytest.raises(crypto.DecryptionError):
        list(iter_rows(stored.path))


@pytest.mark.parametrize(
    ("inline", "in_file", "message"),
    [
        ("not-a-key", None, "RFT_ENCRYPTION_KEY key 1 is not a Fernet key"),
        (f"{KEY_A},short", None, "RFT_ENCRYPTION_KEY key 2 is not a Fernet key"),
        ("", f"{KEY_A}\n# note\nshort\n", r"line 3 is not a Fernet key"),
        ("", "# only a comment\n", "holds no key"),
        (KEY_A, f"{KEY_B}\n", "not both"),
    ],
)
def test_a_bad_key_setting_stops_with_a_clear_message(
    settings: Any, tmp_path: Path, inline: str, in_file: str | None, message: str
) -> None:
    settings.RFT_ENCRYPTION_KEY = inline
    if in_file is not None:
        (tmp_path / "keys").write_text(in_file)
        settings.RFT_ENCRYPTION_KEY_FILE = str(tmp_path / "keys")
    with pytest.raises(ImproperlyConfigured, match=message) as raised:
        crypto.at_rest_enabled()
    assert "short" not in str(raised.value)  # a key is never echoed


def test_a_missing_key_file_is_named(settings: Any, tmp_path: Path) -> None:
    settings.RFT_ENCRYPTION_KEY_FILE = str(tmp_path / "absent")
    with pytest.raises(ImproperlyConfigured, match="absent\\) cannot be read"):
        crypto.at_rest_enabled()


def test_without_a_key_nothing_changes_on_disk(alice: User) -> None:
    assert not crypto.at_rest_enabled()
    assert b"Zanzibar" in Path(dataset(alice).path).read_bytes()
    entry = log(alice, SECRET, "Stone Town")
    assert raw_column(InvocationLog, "response_text", entry.pk) == "Stone Town"
