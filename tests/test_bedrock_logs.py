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
from django.core.management import CommandError, call_command
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


LLAMA_MISTRAL = (LOGS / "llama-mistral-records.jsonl").read_bytes()
ENVELOPES = (LOGS / "cloudwatch-envelopes.jsonl").read_bytes()


def record_line(record: dict[str, Any]) -> bytes:
    return json.dumps(record).encode() + b"\n"


def llama_mistral(number: int) -> dict[str, Any]:
    return json.loads(LLAMA_MISTRAL.splitlines()[number - 1])


def test_a_llama3_invoke_model_record_imports_with_its_system_prompt(
    alice_client: Client, data_dir: Path
) -> None:
    response = upload_dataset(alice_client, "llama-mistral", LLAMA_MISTRAL)
    assert response.status_code == 201, response.content
    rows = rows_of(response.json()["dataset"]["id"])
    assert rows[0]["messages"] == [
        {"role": "system", "content": "You are a travel agent. Be brief."},
        {"role": "user", "content": "I want to visit Japan."},
        {"role": "assistant", "content": "Spring is the best season for Japan."},
        {"role": "user", "content": "Which city first?"},
    ]  # the trailing empty assistant header is the model's, not a turn
    assert rows[0]["reference_answer"] == "Start in Tokyo."
    assert rows[0]["project"] == "travel" and rows[0]["modelId"].startswith("meta.llama3")
    assert not {"prompt", "max_gen_len", "temperature"} & set(rows[0])


def test_llama_and_mistral_streams_and_inst_prompts_import_as_conversations(
    alice_client: Client, data_dir: Path
) -> None:
    response = upload_dataset(alice_client, "llama-mistral", LLAMA_MISTRAL)
    assert response.status_code == 201, response.content
    assert response.json()["report"]["converted"] == {"bedrock_log": 5}
    rows = rows_of(response.json()["dataset"]["id"])
    assert [(r["operation"], r["reference_answer"]) for r in rows[1:]] == [
        ("InvokeModelWithResponseStream", "Red is one."),  # Llama chunks joined
        ("InvokeModel", "Merci"),  # Llama 2
        ("InvokeModel", "Whisk an egg yolk with oil, slowly."),  # Mistral `outputs`
        ("InvokeModelWithResponseStream", "Jupiter."),  # Mistral chunks joined
    ]
    assert rows[1]["messages"] == [{"role": "user", "content": "Name a primary colour."}]
    assert rows[2]["messages"] == [  # Llama 2: <<SYS>> inside the first [INST]
        {"role": "system", "content": "You translate English to French."},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Bonjour"},
        {"role": "user", "content": "Thank you"},
    ]
    assert rows[3]["messages"] == [  # Mistral: no system prompt
        {"role": "user", "content": "What is your favourite condiment?"},
        {"role": "assistant", "content": "Fresh lemon juice."},
        {"role": "user", "content": "Do you have a mayonnaise recipe?"},
    ]
    logs = import_logs(alice_client, gz(LLAMA_MISTRAL))
    assert logs.status_code == 201 and logs.json()["imported"] == 5
    mistral = InvocationLog.objects.get(model_id="mistral.mistral-7b-instruct-v0:2")
    assert mistral.request["messages"][-1]["content"] == "Do you have a mayonnaise recipe?"
    assert (mistral.response_text, mistral.prompt_tokens, mistral.completion_tokens) == (
        "Whisk an egg yolk with oil, slowly.",
        35,
        9,
    )


def with_prompt(prompt: str) -> bytes:
    record = llama_mistral(1)
    record["input"]["inputBodyJson"]["prompt"] = prompt
    return record_line(record)


def test_a_raw_prompt_without_chat_markers_is_refused_by_line_naming_the_read_formats(
    alice_client: Client, data_dir: Path
) -> None:
    refused = {
        "Translate to French: cheese": "no chat markers this console reads: only Llama 3",
        "\n\nHuman: Hi\n\nAssistant:": "Llama 2 / Mistral ([INST] … [/INST]",
        "<s>[INST] a [/INST] b [/INST]": "markers do not alternate",
        "Intro <s>[INST] Hi [/INST]": "text before the first [INST]",
        "<s>[INST] Hi [/INST] Hello": "ends with an assistant turn",
        "<|begin_of_text|><|start_header_id|>ipython<|end_header_id|>\n\n{}<|eot_id|>": (
            "a tool turn ('ipython')"
        ),
    }
    for prompt, problem in refused.items():
        for answer in (
            upload_dataset(alice_client, "raw", RECORDS + with_prompt(prompt)),
            import_logs(alice_client, RECORDS + with_prompt(prompt)),
        ):
            assert answer.status_code == 400, (prompt, answer.content)
            [found] = answer.json()["report"]["problems"]
            assert found["line"] == 7 and found["problem"].startswith("input body: "), found
            assert problem in found["problem"], (prompt, found)
    assert not Dataset.objects.exists() and stored_files(data_dir) == []
    assert not InvocationLog.objects.exists()
    # Control: the same probe with Mistral's markers imports.
    control = import_logs(alice_client, RECORDS + with_prompt("<s>[INST] cheese? [/INST]"))
    assert control.status_code == 201 and control.json()["imported"] == 7


def with_turns(operation: str, body: dict[str, Any]) -> bytes:
    record = json.loads(RECORDS.splitlines()[0 if operation == "Converse" else 2])
    record["input"]["inputBodyJson"] = body
    return record_line(record)


def test_tool_blocks_in_the_prompt_are_refused_by_line_with_the_reason(
    alice_client: Client, data_dir: Path
) -> None:
    call = {"toolUseId": "t1", "name": "plan", "input": {}}
    converse_use = [
        {"role": "user", "content": [{"text": "Plan?"}]},
        {"role": "assistant", "content": [{"toolUse": call}]},
        {
            "role": "user",
            "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "Gold"}]}}],
        },
    ]
    anthropic_use = [{"role": "user", "content": "Plan?"},
                     {"role": "assistant", "content": [{"type": "tool_use", "id": "t1",
                                                        "name": "plan", "input": {}}]},
                     {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                                   "content": "Gold"}]}]  # fmt: skip
    anthropic = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 64}
    cases = [
        (with_turns("Converse", {"messages": converse_use}), "message 2 has a toolUse block"),
        (with_turns("Converse", {"messages": converse_use[:1] + converse_use[2:]}),
         "message 2 has a toolResult block"),
        (with_turns("InvokeModel", {**anthropic, "messages": anthropic_use}),
         "message 2 has a tool_use block"),
        (with_turns("InvokeModel", {**anthropic, "messages": anthropic_use[:1] + anthropic_use[2:]}),
         "message 2 has a tool_result block"),
    ]  # fmt: skip
    for line, problem in cases:
        for answer in (
            upload_dataset(alice_client, "tools", RECORDS + line),
            import_logs(alice_client, RECORDS + line),
        ):
            assert answer.status_code == 400, answer.content
            [found] = answer.json()["report"]["problems"]
            assert found["line"] == 7 and problem in found["problem"], found
            assert "tool call or its result" in found["problem"]
    assert not Dataset.objects.exists() and not InvocationLog.objects.exists()
    # Control: the same conversation with its turns as text imports.
    text_only = [{"role": "user", "content": [{"text": "Plan?"}]}]
    control = import_logs(alice_client, RECORDS + with_turns("Converse", {"messages": text_only}))
    assert control.status_code == 201 and control.json()["imported"] == 7


def test_cloudwatch_logs_envelopes_give_one_row_per_log_event(
    alice_client: Client, data_dir: Path
) -> None:
    """A subscription/Firehose DATA_MESSAGE and `aws logs get-log-events`/`filter-log-events`
    output: each event's message is a record; a CONTROL_MESSAGE gives no row."""
    response = upload_dataset(alice_client, "from-cloudwatch", ENVELOPES)
    assert response.status_code == 201, response.content
    assert response.json()["dataset"]["row_count"] == 4
    plain = upload_dataset(alice_client, "plain", b"".join(RECORDS.splitlines(True)[:4]))
    assert rows_of(response.json()["dataset"]["id"]) == rows_of(plain.json()["dataset"]["id"])
    logs = import_logs(alice_client, gz(ENVELOPES), "cloudwatch.json.gz")
    assert logs.status_code == 201 and logs.json()["imported"] == 4
    assert sorted(InvocationLog.objects.values_list("operation", flat=True)) == [
        "Converse",
        "ConverseStream",
        "InvokeModel",
        "InvokeModel",
    ]
    # A CONTROL_MESSAGE alone is no record, and no error either.
    control_only = ENVELOPES.splitlines(True)[0]
    empty = upload_dataset(alice_client, "control", control_only)
    assert empty.status_code == 400
    assert empty.json()["report"]["problems"] == [{"line": 0, "problem": "the file has no rows"}]
    no_logs = import_logs(alice_client, control_only)
    assert no_logs.json()["detail"] == "The file has no invocation log records."


def test_a_bad_record_inside_an_envelope_is_reported_by_line_and_event(
    alice_client: Client, data_dir: Path
) -> None:
    bad = [json.loads(line) for line in BAD_RECORDS.splitlines()[:4]]
    envelope = {
        "messageType": "DATA_MESSAGE",
        "logGroup": "/aws/bedrock/modelinvocations",
        "logEvents": [
            {"id": "1", "timestamp": 1, "message": json.dumps(bad[0])},  # usable
            {"id": "2", "timestamp": 2, "message": json.dumps(bad[2])},  # errorCode
            {"id": "3", "timestamp": 3, "message": "START RequestId: not a record"},
            {"id": "4", "timestamp": 4},
        ],
    }
    content = ENVELOPES + record_line(envelope)
    expected = [
        (5, "event 2: the call failed (ThrottlingException)"),
        (5, "event 3: the message is not a JSON record"),
        (5, "event 4: the log event has no `message` string"),
    ]
    for answer in (
        upload_dataset(alice_client, "bad", content),
        import_logs(alice_client, content),
    ):
        assert answer.status_code == 400, answer.content
        problems = [(p["line"], p["problem"]) for p in answer.json()["report"]["problems"]]
        assert len(problems) == len(expected)
        for (line, text), (want_line, want) in zip(problems, expected, strict=True):
            assert line == want_line and text.startswith(want), (line, text)
    assert not Dataset.objects.exists() and stored_files(data_dir) == []
    assert not InvocationLog.objects.exists()
    # Control: the envelope without its bad events imports.
    envelope["logEvents"] = envelope["logEvents"][:1]
    control = import_logs(alice_client, ENVELOPES + record_line(envelope))
    assert control.status_code == 201 and control.json()["imported"] == 5


def test_envelopes_count_against_the_row_limit_and_import_with_manage_py(
    alice: User, alice_client: Client, settings: Any, tmp_path: Path
) -> None:
    settings.RFT_DATASET_MAX_ROWS = 3
    for answer in (
        upload_dataset(alice_client, "too-many", ENVELOPES),
        import_logs(alice_client, ENVELOPES),
    ):
        assert answer.status_code == 400, answer.content
        [found] = answer.json()["report"]["problems"]
        assert found["line"] == 4 and "more than 3" in found["problem"], found
    assert not Dataset.objects.exists() and not InvocationLog.objects.exists()
    settings.RFT_DATASET_MAX_ROWS = 4  # control: exactly the limit
    path = tmp_path / "cloudwatch.json.gz"
    path.write_bytes(gz(ENVELOPES + LLAMA_MISTRAL))
    out = io.StringIO()
    with pytest.raises(CommandError, match="invalid: 5 rows"):  # 9 rows, over the limit
        call_command("import_dataset", str(path), "--name", "cw", "--user", "alice", stdout=out)
    settings.RFT_DATASET_MAX_ROWS = 9
    call_command("import_dataset", str(path), "--name", "cw", "--user", "alice", stdout=out)
    assert out.getvalue().splitlines()[-1] == "valid: 9 rows (9 converted), 0 problems"
