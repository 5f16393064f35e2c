"""Training data: real Bedrock files import unchanged, other shapes convert, every bad line is
named, and an invalid or oversized file stores nothing."""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client

from jobs.datasets.importer import convert_lines, sweep_incoming
from jobs.models import Dataset
from jobs.tasks import sweep_incoming_uploads

# A byte-for-byte copy of ../shared/data/bedrock-rft-gsm8k (see its README), so tests stay
# self-contained wherever the checkout lives.
BEDROCK = Path(__file__).resolve().parent / "data" / "bedrock-rft-gsm8k"
GOOD = {"messages": [{"role": "user", "content": "2+2?"}], "reference_answer": "4"}


def jsonl(*rows: Any) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in rows)


def report_of(*rows: Any) -> dict:
    return convert_lines(io.BytesIO(jsonl(*rows)), None).as_dict()


@pytest.fixture
def data_dir(settings: Any, tmp_path: Path) -> Path:
    """A data dir of the test's own, so "no file remains" means this test's files."""
    settings.DATA_DIR = tmp_path / "data"
    return settings.DATA_DIR


def stored_files(data_dir: Path) -> list[Path]:
    return [p for p in (data_dir / "datasets").rglob("*") if p.is_file()]


def upload(client: Client, name: str, content: bytes, **extra: Any) -> Any:
    file = SimpleUploadedFile("data.jsonl", content, content_type="application/jsonl")
    return client.post("/api/datasets/", {"name": name, "file": file, **extra})


def count_rows(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.strip())


def test_the_bedrock_sample_files_import_unchanged(alice: User) -> None:
    for split in ("train", "validation"):
        out = io.StringIO()
        path = BEDROCK / f"{split}.jsonl"
        call_command(
            "import_dataset", str(path), "--name", f"gsm8k-{split}", "--user", "alice", stdout=out
        )
        rows = count_rows(path)  # 300 and 100: the last line of each file has no newline
        assert out.getvalue().splitlines()[-1] == f"valid: {rows} rows (0 converted), 0 problems"
        dataset = Dataset.objects.get(owner=alice, name=f"gsm8k-{split}")
        assert dataset.row_count == rows and "ground_truth" in dataset.fields
        original = json.loads(path.read_text().splitlines()[0])
        assert json.loads(Path(dataset.path).read_text().splitlines()[0]) == original


def test_converse_anthropic_and_nova_bodies_convert_and_are_counted() -> None:
    text = [{"text": "You are terse."}]
    converse = {
        "system": text,
        "messages": [{"role": "user", "content": [{"text": "Hi"}, {"text": "there"}]}],
        "inferenceConfig": {"maxTokens": 10},
        "reference_answer": "hello",
    }
    anthropic = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 100,
        "system": "Be kind.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello?"}]}],
        "task": "greet",
    }
    nova = {"schemaVersion": "messages-v1", "system": text, "messages": converse["messages"]}
    report = convert_lines(
        io.BytesIO(jsonl(converse, anthropic, nova, GOOD)), sink := io.StringIO()
    )
    assert report.ok and report.converted == {"converse": 1, "anthropic": 1, "nova": 1}
    rows = [json.loads(line) for line in sink.getvalue().splitlines()]
    assert rows[0] == {
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Hi\nthere"},
        ],
        "reference_answer": "hello",
    }
    assert rows[1] == {
        "messages": [
            {"role": "system", "content": "Be kind."},
            {"role": "user", "content": "Hello?"},
        ],
        "task": "greet",
    }
    assert rows[2]["messages"] == rows[0]["messages"] and "schemaVersion" not in rows[2]
    assert any("1 from Bedrock Converse" in warning for warning in report.warnings)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b"{not json", "invalid JSON"),
        (b"[1, 2]", "a row must be a JSON object, not a list"),
        (b'{"reference_answer": "4"}', "missing `messages`"),
        (b'{"messages": []}', "`messages` is empty"),
        (b'{"messages": "hi"}', "`messages` must be a list of turns, not text"),
        (b'{"messages": [{"role": "tool", "content": "x"}]}', "message 1 has role 'tool'"),
        (
            b'{"messages": [{"role": "user", "content": 5}]}',
            "message 1 content must be text, not a number",
        ),
        (
            b'{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}',
            "the last turn is from 'assistant'",
        ),
        (b'{"messages": [{"role": "user", "content": "caf\xe9"}]}', "not valid UTF-8 (byte 0xe9"),
        (
            b'{"messages": [{"role": "user", "content": [{"image": {}}]}]}',
            "non-text content block (image)",
        ),
    ],
)
def test_each_kind_of_bad_line_gets_a_specific_message(line: bytes, problem: str) -> None:
    report = report_of(GOOD, line)
    assert report["problem_count"] == 1
    assert report["problems"][0]["line"] == 2 and problem in report["problems"][0]["problem"]


def test_duplicate_ids_are_named() -> None:
    report = report_of({**GOOD, "id": "a"}, {**GOOD, "id": "b"}, {**GOOD, "id": "a"})
    assert report["problems"] == [{"line": 3, "problem": "duplicate id 'a'"}]


def test_the_first_100_problems_are_listed_and_the_rest_counted() -> None:
    report = report_of(*([b"nope"] * 150))
    assert len(report["problems"]) == 100 and report["unlisted_problems"] == 50


def test_few_rows_only_warn() -> None:
    report = report_of(GOOD, GOOD)
    assert report["valid"] and "at least 100" in report["warnings"][0]


def test_a_file_with_bad_lines_7_and_12_is_refused_and_leaves_nothing(
    alice: User, alice_client: Client, data_dir: Path
) -> None:
    rows: list[Any] = [GOOD] * 15
    rows[6], rows[11] = b'{"messages": "oops"}', b"{broken"
    response = upload(alice_client, "bad", jsonl(*rows))
    assert response.status_code == 400
    problems = response.json()["report"]["problems"]
    assert [p["line"] for p in problems] == [7, 12]
    assert not Dataset.objects.exists() and stored_files(data_dir) == []


@pytest.mark.django_db
def test_an_upload_left_half_written_by_a_killed_web_process_is_swept_an_hour_later(
    alice: User, data_dir: Path
) -> None:
    folder = data_dir / "datasets" / str(alice.pk)
    folder.mkdir(parents=True)
    stale, fresh = folder / ".incoming-dead.jsonl", folder / ".incoming-live.jsonl"
    kept = folder / "0a1b.jsonl"  # a stored dataset's file is never an upload in progress
    for path in (stale, fresh, kept):
        path.write_bytes(jsonl(GOOD))
    two_hours_ago = time.time() - 7200
    for path in (stale, kept):
        os.utime(path, (two_hours_ago, two_hours_ago))
    assert sweep_incoming_uploads() == 1  # the beat's task
    assert not stale.exists()
    assert fresh.exists() and kept.exists()  # still being written; not an upload
    assert sweep_incoming(older_than_seconds=0) == [fresh]  # the control: age is what kept it


def test_a_200_mb_upload_is_refused_cleanly(alice_client: Client, data_dir: Path) -> None:
    line = json.dumps({**GOOD, "pad": "x" * 1000}).encode() + b"\n"
    content = line * (200 * 1024**2 // len(line) + 1)
    response = upload(alice_client, "huge", content)
    assert response.status_code == 400
    assert "the limit is 100 MB" in response.json()["detail"]
    assert not Dataset.objects.exists() and stored_files(data_dir) == []


def test_an_upload_over_the_api_reports_and_a_dry_run_stores_nothing(
    alice_client: Client, data_dir: Path
) -> None:
    dry = upload(alice_client, "d", jsonl(GOOD, GOOD), dry_run="true")
    assert dry.status_code == 200 and dry.json()["report"]["rows"] == 2
    assert stored_files(data_dir) == []
    response = upload(alice_client, "d", jsonl(GOOD, GOOD, GOOD))
    assert response.status_code == 201
    assert response.json()["dataset"]["row_count"] == 3
    again = upload(alice_client, "d", jsonl(GOOD))
    assert again.status_code == 400 and "already have a dataset named 'd'" in again.json()["detail"]


def test_the_import_command_prints_problems_and_stores_nothing(alice: User, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(jsonl(GOOD, b"{oops"))
    err = io.StringIO()
    with pytest.raises(CommandError, match=r"invalid: 1 rows \(0 converted\), 1 problems"):
        call_command("import_dataset", str(path), "--name", "bad", "--user", "alice", stderr=err)
    assert err.getvalue().startswith("line 2: invalid JSON")
    assert not Dataset.objects.exists()


def test_a_dataset_splits_into_seeded_train_and_validation(alice_client: Client) -> None:
    created = upload(alice_client, "all", jsonl(*[{**GOOD, "n": i} for i in range(20)])).json()
    url = f"/api/datasets/{created['dataset']['id']}/split/"
    parts = alice_client.post(url, {"fraction": 0.25, "seed": 3}).json()
    assert [(p["name"], p["row_count"]) for p in parts] == [
        ("all-train", 15),
        ("all-validation", 5),
    ]
    rows = alice_client.get(f"/api/datasets/{parts[1]['id']}/rows/").json()["rows"]
    assert len({row["n"] for row in rows}) == 5
    assert alice_client.post(url, {"fraction": 0.25}).status_code == 400  # the names are taken


def test_alice_cannot_see_or_use_bobs_datasets(
    alice_client: Client, bob_client: Client, tmp_path: Path
) -> None:
    bobs = upload(bob_client, "bobs", jsonl(GOOD)).json()["dataset"]
    base = f"/api/datasets/{bobs['id']}/"
    assert alice_client.get("/api/datasets/").json()["results"] == []
    for path in ("", "rows/", "stats/?model=x"):
        assert alice_client.get(base + path).status_code == 404
    assert alice_client.post(base + "split/", {"fraction": 0.5}).status_code == 404
    assert alice_client.delete(base).status_code == 404
    job = alice_client.post(
        "/api/jobs/",
        {"name": "j", "base_model": "x", "train_dataset": "bobs", "reward": "r"},
        content_type="application/json",
    )
    assert job.status_code == 400 and "train_dataset" in job.json()
    assert Dataset.objects.filter(name="bobs").exists()


def strict_json(text: bytes) -> Any:
    """Parse as a browser or another language would: NaN and Infinity are not JSON."""

    def refuse(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_a_nan_on_line_3_is_refused_by_line_and_nothing_is_imported(
    alice_client: Client, data_dir: Path, constant: str
) -> None:
    bad = f'{{"messages": [{{"role": "user", "content": "2+2?"}}], "score": {constant}}}'
    response = upload(alice_client, "nan", jsonl(GOOD, GOOD, bad.encode(), GOOD))
    assert response.status_code == 400, response.content
    assert response.json()["report"]["problems"] == [
        {"line": 3, "problem": "NaN and Infinity are not valid JSON numbers"}
    ]
    assert not Dataset.objects.exists() and stored_files(data_dir) == []
    control = upload(alice_client, "nan", jsonl(GOOD, GOOD, {**GOOD, "score": 0.5}, GOOD))
    assert control.status_code == 201 and control.json()["dataset"]["row_count"] == 4


def test_a_lone_surrogate_on_line_2_is_refused_by_line_and_nothing_is_imported(
    alice_client: Client, data_dir: Path
) -> None:
    """`"\\ud800"` parses as JSON but is not Unicode text: writing the row ended in a 500."""
    bad = b'{"messages": [{"role": "user", "content": "\\ud800"}]}'
    response = upload(alice_client, "half", jsonl(GOOD, bad, GOOD))
    assert response.status_code == 400, response.content
    [problem] = response.json()["report"]["problems"]
    assert problem["line"] == 2 and "lone surrogate" in problem["problem"]
    assert not Dataset.objects.exists() and stored_files(data_dir) == []
    pair = b'{"messages": [{"role": "user", "content": "\\ud83d\\ude00"}]}'  # a whole emoji
    control = upload(alice_client, "half", jsonl(GOOD, pair, GOOD))
    assert control.status_code == 201 and control.json()["dataset"]["row_count"] == 3


@pytest.mark.parametrize(
    ("number", "shown"),
    [("1e400", "the number 1e400 is too large"), ("1" + "0" * 400, "(401 digits) is too large")],
)
def test_a_number_past_a_doubles_range_is_refused_by_line(number: str, shown: str) -> None:
    bad = f'{{"messages": [{{"role": "user", "content": "q"}}], "score": {number}}}'
    report = report_of(GOOD, bad.encode())
    assert report["problem_count"] == 1
    assert report["problems"][0]["line"] == 2 and shown in report["problems"][0]["problem"]
    assert report_of(GOOD, {**GOOD, "score": 10**300})["valid"]  # big, but a double holds it


@pytest.mark.parametrize("depth", [100_000, 101])
def test_a_line_nested_too_deeply_is_refused_by_line(
    alice_client: Client, data_dir: Path, depth: int
) -> None:
    response = upload(alice_client, "deep", b"[" * depth + b"]" * depth + b"\n" + jsonl(GOOD))
    assert response.status_code == 400, response.content
    assert response.json()["report"]["problems"] == [
        {"line": 1, "problem": "nested too deeply (more than 100 levels)"}
    ]
    assert not Dataset.objects.exists() and stored_files(data_dir) == []
    nested = {**GOOD, "meta": json.loads("[" * 90 + "]" * 90)}  # deep, but within the limit
    assert upload(alice_client, "deep", jsonl(nested, GOOD)).status_code == 201


def test_a_nan_row_stored_before_the_fix_reads_as_null_and_valid_json(
    alice: User, alice_client: Client, tmp_path: Path
) -> None:
    path = tmp_path / "old.jsonl"
    path.write_bytes(jsonl({**GOOD, "score": float("nan"), "limits": [float("inf"), 1.5]}))
    dataset = Dataset.objects.create(
        owner=alice, name="old", path=str(path), row_count=1, size_bytes=1
    )
    rows = alice_client.get(f"/api/datasets/{dataset.pk}/rows/")
    assert rows.status_code == 200, rows.content
    row = strict_json(rows.content)["rows"][0]
    assert (row["score"], row["limits"], row["reference_answer"]) == (None, [None, 1.5], "4")
    shown = alice_client.get(f"/playground/rows/?dataset={dataset.pk}&index=0")
    assert shown.status_code == 200, shown.content
    assert strict_json(shown.content)["row"]["score"] is None
    assert strict_json(shown.content)["prompt"] == "2+2?"


def test_invalid_json_is_reported_where_the_line_goes_wrong_not_at_column_1() -> None:
    whole = json.dumps(GOOD)  # {"messages": [{"role": "user", "content": "What is 2+2?"}], ...
    cut = whole[: whole.index('"}]') + 1]  # a line cut short, as an interrupted export leaves it
    problem = report_of(GOOD, cut.encode(), GOOD)["problems"][0]
    assert problem == {
        "line": 2,
        "problem": f"invalid JSON: Expecting ',' delimiter at column {len(cut) + 1} "
        f"(the line has {len(cut)} characters)",
    }
    stray = whole[:13] + "}" + whole[13:]  # {"messages": }[...: wrong at column 14
    [problem] = report_of(stray.encode())["problems"]
    assert (
        f"Expecting value at column 14 (the line has {len(stray)} characters)" in problem["problem"]
    )
