"""Coming from Bedrock: model invocation log records (the JSON lines Bedrock writes to S3 and
CloudWatch Logs, plain or .gz) become datasets and invocation logs. The prompt, the response (as
the reference answer), requestMetadata and the call's identity are kept; records that cannot be a
prompt and a response are named by line, and then nothing is stored."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client

from jobs.models import Dataset
from playground.logs import LogFilter, filter_logs
from playground.models import InvocationLog
from tests.test_encryption import KEY_A, raw_column

LOGS = Path(__file__).resolve().parent / "data" / "bedrock-invocation-logs"
RECORDS = (LOGS / "records.jsonl").read_bytes()
BAD_RECORDS = (LOGS / "bad-records.jsonl").read_bytes()
CLAUDE = "anthropic.claude-3-5-haiku-20241022-v1:0"


@pytest.fixture
def data_dir(settings: Any, tmp_path: Path) -> Path:
    """A data dir of the test's own, so "no file remains" means this test's files."""
    settings.DATA_DIR = tmp_path / "data"
    return settings.DATA_DIR


def stored_files(data_dir: Path) -> list[Path]:
    return [p for p in (data_dir / "datasets").rglob("*") if p.is_file()]


def file_of(content: bytes, name: str = "records.jsonl") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="application/octet-stream")


def upload_dataset(client: Client, name: str, content: bytes, filename: str = "x.jsonl") -> Any:
    return client.post("/api/datasets/", {"name": name, "file": file_of(content, filename)})


def import_logs(client: Client, content: bytes, filename: str = "records.jsonl") -> Any:
    return client.post("/api/invocation-logs/import/", {"file": file_of(content, filename)})


def rows_of(dataset_id: int) -> list[dict[str, Any]]:
    dataset = Dataset.objects.get(pk=dataset_id)
    return [json.loads(line) for line in Path(dataset.path).read_text().splitlines()]


def test_bedrock_log_records_import_as_a_dataset_with_prompt_response_and_metadata(
    alice_client: Client, data_dir: Path
) -> None:
    response = upload_dataset(alice_client, "from-bedrock", RECORDS)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["dataset"]["row_count"] == 6
    assert body["report"]["converted"] == {"bedrock_log": 6}
    assert (
        "Converted 6 from Bedrock invocation log records to chat format."
        in (body["dataset"]["warnings"])
    )
    rows = rows_of(body["dataset"]["id"])
    # Converse: system and every turn kept; the response becomes the reference answer;
    # requestMetadata and the call's identity become fields for the reward.
    assert rows[0] == {
        "messages": [
            {"role": "system", "content": "You are a billing assistant. Answer in one sentence."},
            {"role": "user", "content": "What is my plan?"},
            {"role": "assistant", "content": "You are on the Gold plan."},
            {"role": "user", "content": "When does it renew?"},
        ],
        "reference_answer": "Your Gold plan renews on 1 January.",
        "modelId": CLAUDE,
        "operation": "Converse",
        "timestamp": "2026-11-30T09:15:01Z",
        "requestId": "0f6c2a3e-4b1d-4c8e-9a7f-000000000001",
        "project": "billing",
        "tier": "gold",
    }
    by_operation = [(r["operation"], r["modelId"], r["reference_answer"]) for r in rows[1:]]
    assert by_operation == [
        ("ConverseStream", "amazon.nova-lite-v1:0", "Here are the 3 invoices from March."),
        ("InvokeModel", CLAUDE, "4"),  # Anthropic Messages body
        ("InvokeModel", "amazon.nova-micro-v1:0", "Bonjour"),  # Nova messages-v1 body
        ("InvokeModel", "openai.gpt-oss-20b-1:0", "Lima"),  # OpenAI-style body
        ("InvokeModelWithResponseStream", CLAUDE, "Blue whale"),  # the streamed chunks, joined
    ]
    assert rows[2]["messages"] == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "What is 2 + 2?"},
    ]
    # Inference settings and the caller's account never reach the rows.
    assert not any(
        {"accountId", "identity", "max_tokens", "inferenceConfig"} & set(r) for r in rows
    )


def gz(content: bytes) -> bytes:
    return gzip.compress(content)


def test_a_gzipped_export_imports_like_the_plain_file(alice_client: Client, data_dir: Path) -> None:
    plain = upload_dataset(alice_client, "plain", RECORDS).json()["dataset"]
    # The name does not matter: gzip is recognised by its first bytes.
    zipped = upload_dataset(alice_client, "zipped", gz(RECORDS), "export.json.gz")
    assert zipped.status_code == 201, zipped.content
    assert rows_of(zipped.json()["dataset"]["id"]) == rows_of(plain["id"])
    page = alice_client.post(
        "/datasets/upload/", {"name": "from-page", "file": file_of(gz(RECORDS), "x")}
    )
    assert page.status_code == 302, page.content
    assert Dataset.objects.get(name="from-page").row_count == 6
    logs = import_logs(alice_client, gz(RECORDS), "000001.json.gz")
    assert logs.status_code == 201 and logs.json()["imported"] == 6


def test_a_gzip_bomb_is_refused_by_its_decompressed_size(
    alice: User, alice_client: Client, data_dir: Path, settings: Any
) -> None:
    settings.RFT_DATASET_MAX_BYTES = 1024**2
    bomb = gz(b"\0" * (64 * 1024**2))  # 64 KB that inflates to 64 MB, in one endless line
    assert len(bomb) < settings.RFT_DATASET_MAX_BYTES
    for answer in (
        upload_dataset(alice_client, "bomb", bomb, "bomb.gz"),
        import_logs(alice_client, bomb, "bomb.gz"),
    ):
        assert answer.status_code == 400, answer.content
        assert "decompresses to more than 1 MB" in answer.json()["detail"]
        assert "RFT_DATASET_MAX_BYTES" in answer.json()["detail"]
    assert not Dataset.objects.exists() and stored_files(data_dir) == []
    assert not InvocationLog.objects.exists()
    damaged = upload_dataset(alice_client, "damaged", gz(RECORDS)[:-20], "cut.gz")
    assert damaged.status_code == 400 and "damaged or incomplete" in damaged.json()["detail"]
    control = upload_dataset(alice_client, "bomb", gz(RECORDS), "small.gz")  # well under 1 MB
    assert control.status_code == 201 and control.json()["dataset"]["row_count"] == 6


BAD_LINES = {
    2: "input body: message 1 has a non-text content block (image); only text is supported",
    3: "the call failed (ThrottlingException)",
    4: "the input body is stored in S3 (s3://my-bucket/AWSLogs/",
    5: "invalid JSON",
    6: "the output has no text",
    7: "non-text content block (document)",
}


def assert_bad_lines(report: dict[str, Any]) -> None:
    problems = {p["line"]: p["problem"] for p in report["problems"]}
    assert sorted(problems) == sorted(BAD_LINES)
    for line, text in BAD_LINES.items():
        assert text in problems[line], (line, problems[line])


def test_a_bad_record_is_reported_by_line_and_nothing_is_stored(
    alice_client: Client, data_dir: Path
) -> None:
    as_dataset = upload_dataset(alice_client, "bad", BAD_RECORDS)
    assert as_dataset.status_code == 400
    assert_bad_lines(as_dataset.json()["report"])
    as_logs = import_logs(alice_client, gz(BAD_RECORDS))
    assert as_logs.status_code == 400 and as_logs.json()["detail"].startswith("6 problems")
    assert_bad_lines(as_logs.json()["report"])
    page = alice_client.post("/deployments/logs/import/", {"file": file_of(BAD_RECORDS)})
    assert page.status_code == 400
    assert "the call failed (ThrottlingException)" in page.content.decode()
    assert not Dataset.objects.exists() and stored_files(data_dir) == []
    assert not InvocationLog.objects.exists()  # not even the good first record


def test_a_file_that_is_not_invocation_logs_is_refused_by_the_log_import(
    alice_client: Client,
) -> None:
    row = b'{"messages": [{"role": "user", "content": "2+2?"}]}\n'
    answer = import_logs(alice_client, RECORDS + row)
    assert answer.status_code == 400
    assert answer.json()["report"]["problems"] == [
        {
            "line": 7,
            "problem": 'not a Bedrock model invocation log record (no "schemaType": '
            '"ModelInvocationLog")',
        }
    ]
    assert import_logs(alice_client, b"\n").json()["detail"] == (
        "The file has no invocation log records."
    )
    missing = alice_client.post("/api/invocation-logs/import/", {})
    assert missing.status_code == 400 and "Choose a file" in missing.json()["detail"]
    assert not InvocationLog.objects.exists()


def with_metadata(metadata: dict[str, Any]) -> bytes:
    record = json.loads(RECORDS.splitlines()[0])
    record["requestMetadata"] = metadata
    return json.dumps(record).encode() + b"\n"


def test_request_metadata_the_filters_cannot_use_is_refused_by_line(
    alice_client: Client,
) -> None:
    cases = {
        "Metadata key 'team name' is not allowed": {"team name": "x"},
        "17 keys; at most 16": {f"k{n}": "v" for n in range(17)},
        "string keys and string values": {"attempt": 3},
    }
    for problem, metadata in cases.items():
        answer = import_logs(alice_client, RECORDS + with_metadata(metadata))
        assert answer.status_code == 400
        [found] = answer.json()["report"]["problems"]
        assert found["line"] == 7 and problem in found["problem"], found
    assert not InvocationLog.objects.exists()


def test_a_record_whose_ids_are_longer_than_aws_makes_them_is_refused_not_cut(
    alice_client: Client,
) -> None:
    """A long ARN as modelId is kept whole (2,048 characters, AWS's limit); past the limits the
    line is refused rather than stored cut short."""
    record = json.loads(RECORDS.splitlines()[0])
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/" + "m" * 1500
    long_id = json.dumps({**record, "modelId": arn}).encode() + b"\n"
    assert import_logs(alice_client, long_id).status_code == 201
    assert InvocationLog.objects.get().model_id == arn
    too_long = json.dumps({**record, "requestId": "r" * 101}).encode() + b"\n"
    answer = import_logs(alice_client, too_long)
    assert answer.status_code == 400
    assert "longer than AWS makes them" in answer.json()["report"]["problems"][0]["problem"]
    assert InvocationLog.objects.count() == 1


def test_a_timestamp_the_database_cannot_hold_is_refused_by_line(alice_client: Client) -> None:
    """Year 1 at +14:00 is before year 1 in UTC (and 9999-12-31 at -14:00 after 9999)."""
    record = json.loads(RECORDS.splitlines()[0])
    for moment in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"):
        line = json.dumps({**record, "timestamp": moment}).encode() + b"\n"
        answer = import_logs(alice_client, line)
        assert answer.status_code == 400
        [found] = answer.json()["report"]["problems"]
        assert found["line"] == 1 and "outside the years 1 to 9999" in found["problem"]
    assert not InvocationLog.objects.exists()
    edge = json.dumps({**record, "timestamp": "9999-12-31T23:59:59+14:00"}).encode() + b"\n"
    assert import_logs(alice_client, edge).status_code == 201  # control: the last moment that fits


def equals(key: str, value: str) -> LogFilter:
    return LogFilter(key, "equals", value)


def not_equals(key: str, value: str) -> LogFilter:
    return LogFilter(key, "not_equals", value)


def test_imported_log_records_are_filtered_by_request_metadata_and_become_a_dataset(
    alice: User, alice_client: Client, data_dir: Path
) -> None:
    assert import_logs(alice_client, RECORDS).status_code == 201
    converse = InvocationLog.objects.get(request_id="0f6c2a3e-4b1d-4c8e-9a7f-000000000001")
    assert (converse.owner, converse.source, converse.deployment) == (alice, "bedrock", CLAUDE)
    assert (converse.model_id, converse.operation) == (CLAUDE, "Converse")
    assert converse.request["messages"][-1] == {"role": "user", "content": "When does it renew?"}
    assert converse.response_text == "Your Gold plan renews on 1 January."
    assert converse.request_metadata == {"project": "billing", "tier": "gold"}
    assert (converse.prompt_tokens, converse.completion_tokens) == (41, 9)
    assert converse.logged_at is not None and converse.logged_at.isoformat() == (
        "2026-11-30T09:15:01+00:00"
    )

    def operations(filters: list[LogFilter], combine: str = "and") -> list[str]:
        found = filter_logs(alice, filters, combine)  # type: ignore[arg-type]
        return sorted(log.operation for log in found)

    assert operations([equals("project", "billing")]) == ["Converse"]
    assert operations([equals("project", "search"), equals("tier", "free")]) == ["ConverseStream"]
    assert operations([equals("project", "search"), equals("tier", "gold")]) == []
    assert operations([equals("tier", "gold"), equals("project", "search")], "or") == [
        "Converse",
        "ConverseStream",
    ]
    # Not equals also matches the InvokeModel records, which carry no requestMetadata.
    assert len(operations([not_equals("project", "billing")])) == 5
    listed = alice_client.get("/api/invocation-logs/?metadata.project=search").json()["results"]
    assert [(e["operation"], e["source"], e["model_id"]) for e in listed] == [
        ("ConverseStream", "bedrock", "amazon.nova-lite-v1:0")
    ]

    either = [
        {"key": "tier", "operator": "equals", "value": "gold"},
        {"key": "project", "operator": "equals", "value": "search"},
    ]
    made = alice_client.post(
        "/api/datasets/from-logs/",
        {"name": "gold-or-search", "filters": either, "combine": "or",
         "use_response_as_reference": True},
        content_type="application/json",
    )  # fmt: skip
    assert made.status_code == 201, made.content
    rows = rows_of(made.json()["dataset"]["id"])
    assert [row["reference_answer"] for row in rows] == [
        "Your Gold plan renews on 1 January.",
        "Here are the 3 invoices from March.",
    ]
    assert rows[0]["messages"][0] == {
        "role": "system",
        "content": "You are a billing assistant. Answer in one sentence.",
    }
    assert {k: rows[0][k] for k in ("modelId", "operation", "timestamp", "requestId", "tier")} == {
        "modelId": CLAUDE,
        "operation": "Converse",
        "timestamp": "2026-11-30T09:15:01Z",
        "requestId": "0f6c2a3e-4b1d-4c8e-9a7f-000000000001",
        "tier": "gold",
    }
    assert rows[0]["deployment"] == CLAUDE and rows[0]["log_id"] == converse.pk


def test_imported_logs_are_encrypted_at_rest_like_the_consoles_own(
    settings: Any, alice_client: Client
) -> None:
    settings.RFT_ENCRYPTION_KEY = KEY_A
    assert import_logs(alice_client, RECORDS).status_code == 201
    entry = InvocationLog.objects.get(operation="InvokeModelWithResponseStream")
    for column in ("request", "response_text"):
        stored = raw_column(InvocationLog, column, entry.pk)
        assert "Largest animal" not in stored and "Blue whale" not in stored
        assert "enc:v1:" in stored
    assert entry.response_text == "Blue whale"


def test_the_logs_page_imports_records_and_lists_each_deployment_once(
    alice_client: Client,
) -> None:
    page = alice_client.get("/deployments/logs/").content.decode()
    assert "Import Bedrock invocation logs" in page and "modelId" in page
    imported = alice_client.post("/deployments/logs/import/", {"file": file_of(gz(RECORDS))})
    assert imported.status_code == 302
    page = alice_client.get("/deployments/logs/").content.decode()
    assert "Bedrock InvokeModelWithResponseStream" in page and "Blue whale" in page
    assert "2026-11-30 09:15:06" in page  # when Bedrock logged it, not when it was imported
    # One option per deployment (model id), not one per log.
    assert page.count(f"<option >{CLAUDE}</option>") == 1
    assert page.count("<option") == 1 + 4 + 3  # "any", four model ids, the feedback choices
    filtered = alice_client.get("/deployments/logs/?key=project&value=billing").content.decode()
    assert "Your Gold plan renews" in filtered and "Blue whale" not in filtered


def test_bob_cannot_see_or_use_alices_imported_logs(
    alice_client: Client, bob_client: Client, data_dir: Path
) -> None:
    assert import_logs(alice_client, RECORDS).status_code == 201
    alices = InvocationLog.objects.first()
    assert alices is not None
    assert bob_client.get("/api/invocation-logs/").json()["results"] == []
    assert bob_client.get(f"/api/invocation-logs/{alices.pk}/").status_code == 404
    assert "Blue whale" not in bob_client.get("/deployments/logs/").content.decode()
    built = bob_client.post(
        "/api/datasets/from-logs/", {"name": "stolen"}, content_type="application/json"
    )
    assert built.status_code == 400 and "No invocation logs match" in built.json()["detail"]
    # Bob importing the same export gets logs of his own; alice's are untouched.
    assert import_logs(bob_client, RECORDS).status_code == 201
    assert InvocationLog.objects.filter(owner__username="alice").count() == 6
    assert len(alice_client.get("/api/invocation-logs/").json()["results"]) == 6


def test_manage_py_import_dataset_reads_a_gz_export(alice: User, tmp_path: Path) -> None:
    path = tmp_path / "000001.json.gz"
    path.write_bytes(gz(RECORDS))
    out = io.StringIO()
    call_command("import_dataset", str(path), "--name", "s3-export", "--user", "alice", stdout=out)
    assert out.getvalue().splitlines()[-1] == "valid: 6 rows (6 converted), 0 problems"
    dataset = Dataset.objects.get(owner=alice, name="s3-export")
    assert dataset.converted == {"bedrock_log": 6} and "requestId" in dataset.fields
