"""OpenAI's Files API against a real Daphne serving the console, driven by the official `openai`
client (`client.files.create / list / retrieve / content / delete`): an upload becomes a dataset of
the key's owner (`file-<dataset pk>`), bad data is refused with its line numbers and leaves nothing
behind, ids are owner-scoped and malformed ones are OpenAI's 404, and a file a job uses stays."""

from __future__ import annotations

import gzip
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

from jobs.datasets.storage import iter_rows
from jobs.models import Dataset
from rftconsole.models import ApiKeyScope, AuditEvent
from rftconsole.services import create_api_key
from tests.support.job_rows import make_job
from tests.support.stack import serving_v1

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]

GSM8K = Path(__file__).parent / "data" / "bedrock-rft-gsm8k" / "train.jsonl"
MAX_BYTES = 64 * 1024  # the server's RFT_DATASET_MAX_BYTES, so a too-large upload is cheap
CONVERSE_ROW = {
    "system": [{"text": "Answer after ####."}],
    "messages": [{"role": "user", "content": [{"text": "What is 2 + 2?"}]}],
    "reference_answer": "4",
}


@pytest.fixture(scope="module")
def server(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving_v1(tmp_path_factory.mktemp("daphne"), RFT_DATASET_MAX_BYTES=str(MAX_BYTES)) as url:
        yield url


def key_for(user: User, scope: str = ApiKeyScope.API) -> str:
    return create_api_key(user, "files", scope)[1]


def client_for(server: str, user: User, scope: str = ApiKeyScope.API) -> openai.OpenAI:
    return openai.OpenAI(base_url=server, api_key=key_for(user, scope), max_retries=0, timeout=60)


@pytest.fixture
def client(server: str, alice: User) -> openai.OpenAI:
    return client_for(server, alice)


def raw(method: str, url: str, api_key: str, form: dict[str, str] | None = None) -> tuple[int, Any]:
    """A request the client would not send (a malformed id, a form without a file)."""
    headers = {"Authorization": f"Bearer {api_key}"}
    data = None
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - loopback
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def gsm8k_lines(count: int = 20) -> bytes:
    return b"".join(GSM8K.read_bytes().splitlines(keepends=True)[:count])


def upload(client: openai.OpenAI, name: str, data: bytes) -> openai.types.FileObject:
    return client.files.create(file=(name, data), purpose="fine-tune")


def stored_files(user: User) -> list[str]:
    directory = Path(settings.DATA_DIR) / "datasets" / str(user.pk)
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_an_upload_is_a_dataset_listed_retrieved_and_read_back(
    client: openai.OpenAI, alice: User, alice_client: Client
) -> None:
    data = gsm8k_lines() + json.dumps(CONVERSE_ROW).encode() + b"\n"
    created = upload(client, "gsm8k.jsonl", data)
    assert created.object == "file" and created.purpose == "fine-tune"
    assert created.status == "processed" and created.filename == "gsm8k.jsonl"
    assert "Converted 1 from Bedrock Converse" in (created.status_details or "")
    dataset = Dataset.objects.get(owner=alice, name="gsm8k.jsonl")
    assert created.id == f"file-{dataset.pk}" and created.bytes == dataset.size_bytes
    assert dataset.row_count == 21 and created.created_at == int(dataset.created_at.timestamp())

    assert [f.id for f in client.files.list()] == [created.id]
    assert client.files.retrieve(created.id) == created

    rows = [json.loads(line) for line in client.files.content(created.id).text.splitlines()]
    assert rows == list(iter_rows(dataset.path))  # the converted rows, as stored
    originals = [json.loads(line) for line in gsm8k_lines().splitlines()]
    assert [row["messages"] for row in rows[:20]] == [row["messages"] for row in originals]
    assert rows[20]["messages"] == [
        {"role": "system", "content": "Answer after ####."},
        {"role": "user", "content": "What is 2 + 2?"},
    ]
    assert AuditEvent.objects.filter(action="dataset.download", actor=alice).count() == 1

    page = alice_client.get("/datasets/")  # the same data, in the console
    assert page.status_code == 200 and "gsm8k.jsonl" in page.content.decode()


def test_the_same_filename_again_gets_a_unique_dataset_name(client: openai.OpenAI) -> None:
    first = upload(client, "train.jsonl", gsm8k_lines(3))
    second = upload(client, "train.jsonl", gzip.compress(gsm8k_lines(3)))  # .gz as S3 holds it
    assert (first.filename, second.filename) == ("train.jsonl", "train.jsonl (2)")
    assert client.files.content(second.id).text == client.files.content(first.id).text


def test_a_bad_file_is_refused_with_its_line_numbers_and_nothing_stored(
    client: openai.OpenAI, alice: User
) -> None:
    before = stored_files(alice)
    lines = gsm8k_lines(4).splitlines(keepends=True)
    lines[1] = b'{"prompt": "no messages here"}\n'
    lines[3] = b"{not json\n"
    with pytest.raises(openai.BadRequestError) as caught:
        upload(client, "broken.jsonl", b"".join(lines))
    error = caught.value
    assert error.status_code == 400 and error.param == "file"
    assert error.code == "invalid_file_format"
    assert "line 2:" in error.message and "line 4:" in error.message
    assert "line 1:" not in error.message and "nothing was stored" in error.message
    assert not Dataset.objects.filter(owner=alice).exists()
    assert stored_files(alice) == before  # no half-written file either


def test_an_empty_or_too_large_file_is_refused_by_name(client: openai.OpenAI, alice: User) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        upload(client, "empty.jsonl", b"")
    assert "no rows" in caught.value.message
    with pytest.raises(openai.BadRequestError) as caught:
        upload(client, "huge.jsonl", gsm8k_lines(200))  # ~140 KB, over the server's 64 KB
    assert "RFT_DATASET_MAX_BYTES" in caught.value.message and caught.value.param == "file"
    assert not Dataset.objects.filter(owner=alice).exists()


def test_only_the_fine_tune_purpose_is_accepted(client: openai.OpenAI, alice: User) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.files.create(file=("batch.jsonl", gsm8k_lines(2)), purpose="batch")
    assert caught.value.param == "purpose" and "fine-tune" in caught.value.message
    assert not Dataset.objects.filter(owner=alice).exists()
    assert client.files.list(purpose="batch").data == []


def test_the_list_pages_with_after_and_limit(server: str, client: openai.OpenAI) -> None:
    ids = [upload(client, f"part-{n}.jsonl", gsm8k_lines(2)).id for n in range(3)]
    first = client.files.list(limit=2)
    assert [f.id for f in first.data] == ids[::-1][:2] and first.has_more is True
    assert first.model_extra == {"object": "list", "first_id": ids[2], "last_id": ids[1]}
    second = client.files.list(limit=2, after=first.data[-1].id)
    assert [f.id for f in second.data] == [ids[0]] and second.has_more is False
    assert [f.id for f in client.files.list(limit=2, order="asc")] == ids  # every page, in turn
    oldest = client.files.list(order="asc", after=ids[2])
    assert oldest.data == [] and oldest.has_more is False
    for name, value in (("limit", 0), ("limit", 10_001), ("order", "up"), ("after", "part-1")):
        with pytest.raises(openai.BadRequestError) as caught:
            client.files.list(**{name: value})  # type: ignore[arg-type]
        assert caught.value.param == name


def test_another_owners_file_is_no_such_file(server: str, client: openai.OpenAI, bob: User) -> None:
    file_id = upload(client, "mine.jsonl", gsm8k_lines(2)).id
    assert client.files.retrieve(file_id).id == file_id  # control: the owner's key finds it
    intruder = client_for(server, bob)
    assert intruder.files.list().data == []
    for attempt in (intruder.files.retrieve, intruder.files.content, intruder.files.delete):
        with pytest.raises(openai.NotFoundError) as caught:
            attempt(file_id)
        assert caught.value.body["message"] == f"No such File object: {file_id}"  # type: ignore[index]
    assert client.files.retrieve(file_id).id == file_id  # still there


def test_an_inference_key_may_not_manage_files(server: str, alice: User) -> None:
    narrow = client_for(server, alice, ApiKeyScope.INFERENCE)
    with pytest.raises(openai.PermissionDeniedError) as caught:
        narrow.files.list()
    assert "'api' scope" in caught.value.message
    with pytest.raises(openai.PermissionDeniedError):
        upload(narrow, "train.jsonl", gsm8k_lines(2))
    assert client_for(server, alice).files.list().data == []  # control: an api key may


def test_delete_removes_the_file_unless_a_job_uses_it(client: openai.OpenAI, alice: User) -> None:
    created = upload(client, "gone.jsonl", gsm8k_lines(2))
    path = Path(Dataset.objects.get(pk=created.id.removeprefix("file-")).path)
    deleted = client.files.delete(created.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (created.id, "file", True)
    assert not path.exists()
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(created.id)

    used = make_job(alice).train_dataset
    with pytest.raises(openai.ConflictError) as caught:
        client.files.delete(f"file-{used.pk}")
    assert "1 job(s) use" in caught.value.message and caught.value.param == "id"
    assert Dataset.objects.filter(pk=used.pk).exists()


@pytest.mark.parametrize(
    "given",
    [
        "file-abc",
        "file-1%2F..%2F2",
        "1",
        "file-01",
        "file-+1",
        "file-1%20",
        "file-1/../2",
        "file-" + "9" * 30,
    ],
)
def test_a_malformed_id_is_no_such_file(server: str, alice: User, given: str) -> None:
    Dataset.objects.create(owner=alice, name="one", path="/d", row_count=1, size_bytes=1)
    api_key = key_for(alice)
    for method, suffix in (("GET", ""), ("GET", "/content"), ("DELETE", "")):
        status, body = raw(method, f"{server}/files/{given}{suffix}", api_key)
        assert status == 404, (given, method, suffix)
        assert body["error"]["message"].startswith("No such File object: ")
        assert (body["error"]["type"], body["error"]["param"]) == ("invalid_request_error", "id")


def test_a_form_without_a_file_is_refused_by_name(server: str, alice: User) -> None:
    api_key = key_for(alice)
    status, body = raw("POST", f"{server}/files", api_key, {"purpose": "fine-tune"})
    assert status == 400 and body["error"]["param"] == "file"
    status, body = raw("POST", f"{server}/files", api_key, {})  # no purpose either
    assert status == 400 and body["error"]["param"] == "purpose"
