"""Dataset pages: upload with a per-line report, chat preview with paging, token stats, split."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from jobs.models import Dataset, ModelEntry
from jobs.registry.services import register_model
from tests.support.tiny_models import save_tiny_model

GOOD = {"messages": [{"role": "user", "content": "What is 2+2?"}], "reference_answer": "4"}
HTMX = {"HX-Request": "true"}


def jsonl(rows: list[Any]) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in rows)


def upload(client: Client, name: str, rows: list[Any], **extra: str) -> Any:
    file = SimpleUploadedFile("rows.jsonl", jsonl(rows))
    return client.post("/datasets/upload/", {"name": name, "file": file, **extra}, headers=HTMX)


@pytest.fixture
def numbered(alice_client: Client) -> Dataset:
    rows = [
        {**GOOD, "messages": [{"role": "user", "content": f"Question {i}"}], "n": i}
        for i in range(25)
    ]
    response = upload(alice_client, "numbered", rows)
    assert response.status_code == 200 and response.headers["HX-Redirect"].startswith("/datasets/")
    return Dataset.objects.get(name="numbered")


def test_the_upload_page_has_a_progress_bar_and_no_cdn(alice_client: Client) -> None:
    html = alice_client.get("/datasets/upload/").content.decode()
    assert '<progress id="upload-progress"' in html and 'hx-encoding="multipart/form-data"' in html
    assert "/static/js/upload-progress.js" in html


def test_a_bad_upload_shows_each_problem_with_its_line(alice_client: Client) -> None:
    response = upload(
        alice_client, "bad", [GOOD, GOOD, b'{"messages": [{"role": "bot", "content": "x"}]}']
    )
    html = response.content.decode()
    assert "<td>3</td><td>message 1 has role &#x27;bot&#x27;" in html
    assert not Dataset.objects.filter(name="bad").exists()


def test_check_only_reports_without_storing(alice_client: Client) -> None:
    html = upload(alice_client, "dry", [GOOD], dry_run="on").content.decode()
    assert "The file is valid: 1 rows" in html and "at least 100" in html
    assert not Dataset.objects.exists()


def test_rows_show_as_chat_with_reference_and_metadata_and_page(
    alice_client: Client, numbered: Dataset
) -> None:
    html = alice_client.get(f"/datasets/{numbered.pk}/").content.decode()
    assert "Rows 1–10 of 25" in html and "Question 0" in html and "Question 10" not in html
    assert 'class="bubble bubble-user"' in html and 'class="bubble bubble-reference"' in html
    assert "<dt>n</dt>" in html
    page3 = alice_client.get(f"/datasets/{numbered.pk}/rows/?offset=20").content.decode()
    assert "Rows 21–25 of 25" in page3 and "Question 24" in page3 and "Next" not in page3


def test_token_stats_use_the_chosen_models_tokenizer(
    alice: User, alice_client: Client, numbered: Dataset, tmp_path: Path
) -> None:
    entry = register_model(alice, str(save_tiny_model(tmp_path / "tiny")), "tiny")
    html = alice_client.get(f"/datasets/{numbered.pk}/stats/?model={entry.pk}").content.decode()
    assert "<dt>Rows counted</dt><dd>25</dd>" in html and 'id="token-histogram-data"' in html
    numbered.refresh_from_db()
    stats = numbered.token_stats["tiny"]
    assert stats["rows"] == 25 and 0 < stats["min"] <= stats["p50"] <= stats["max"]
    assert sum(stats["histogram"]["counts"]) == 25


def test_token_stats_default_to_a_base_model_not_the_newest_tuned_one(
    alice: User, alice_client: Client, numbered: Dataset, tmp_path: Path
) -> None:
    base = register_model(alice, str(save_tiny_model(tmp_path / "tiny")), "tiny")
    ModelEntry.objects.create(  # newer, and first by name: it used to be the default
        owner=alice, name="a-tuned", kind=ModelEntry.Kind.TUNED, base=base,
        status=ModelEntry.Status.READY, path=base.path, source="job",
    )  # fmt: skip
    html = alice_client.get(f"/datasets/{numbered.pk}/").content.decode()
    picker = html[html.index('name="model"') :].split("</select>", 1)[0]
    options = re.findall(r'<option value="(\d+)"', picker)
    assert options[0] == str(base.pk) and len(options) == 2  # the first option is the default


def test_split_from_the_page(alice_client: Client, numbered: Dataset) -> None:
    response = alice_client.post(
        f"/datasets/{numbered.pk}/split/", {"fraction": "0.2", "seed": "1"}
    )
    assert response.status_code == 302
    counts = dict(Dataset.objects.values_list("name", "row_count"))
    assert counts["numbered-train"] == 20 and counts["numbered-validation"] == 5


def test_delete_removes_the_file(alice_client: Client, numbered: Dataset) -> None:
    path = Path(numbered.path)
    alice_client.post(f"/datasets/{numbered.pk}/delete/")
    assert not Dataset.objects.filter(pk=numbered.pk).exists() and not path.exists()


def test_bob_gets_404_on_alices_dataset_pages(bob_client: Client, numbered: Dataset) -> None:
    for path in ("", "rows/", "stats/?model=1"):
        assert bob_client.get(f"/datasets/{numbered.pk}/{path}").status_code == 404
    for path in ("split/", "delete/"):
        assert bob_client.post(f"/datasets/{numbered.pk}/{path}").status_code == 404
    assert "numbered" not in bob_client.get("/datasets/").content.decode()
    assert Dataset.objects.filter(pk=numbered.pk).exists()


def test_a_dataset_is_built_from_invocation_logs_on_its_page(
    alice: User, bob: User, alice_client: Client
) -> None:
    from tests.test_logs_dataset import log

    log(alice, "Where is my order?", "On its way.", metadata={"team": "support"}, feedback="up")
    log(alice, "Reset password?", "Use the link.", metadata={"team": "billing"})
    log(bob, "Bob's question", "Bob's answer", metadata={"team": "support"})
    page = alice_client.get("/datasets/from-logs/").content.decode()
    assert "You have 2 logged requests" in page
    response = alice_client.post(
        "/datasets/from-logs/",
        {"name": "support", "key_0": "team", "op_0": "equals", "value_0": "support",
         "combine": "and", "use_response": "on"},
    )  # fmt: skip
    dataset = Dataset.objects.get(owner=alice, name="support")
    assert response.status_code == 302 and dataset.row_count == 1
    row = json.loads(Path(dataset.path).read_text().strip())
    assert row["reference_answer"] == "On its way." and row["feedback"] == "up"
    empty = alice_client.post(
        "/datasets/from-logs/", {"name": "none", "key_0": "team", "value_0": "x"}
    )
    assert "No invocation logs match these filters." in empty.content.decode()
