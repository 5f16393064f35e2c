"""Synthetic demo tasks for the starter models, written in the Bedrock RFT format.

Each task makes (a) RFT rows: a chat prompt, a `reference_answer` and extra fields, and (b) warm-up
answers for the supervised pre-training of the starter model. The warm-up answers deliberately mix
formats — the right content in the required form only part of the time — so the starter model ends
up "knowing" the answers but giving them in the form the reward checks only sometimes. That is the
honest situation RFT exists for, and exactly what a reward can teach.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

NAMES = [
    "Ana", "Ben", "Carl", "Dina", "Eli", "Fay", "Gus", "Hana", "Ivan", "Jo", "Kai", "Lea",
    "Max", "Nia", "Omar", "Pia", "Raj", "Sara", "Tom", "Uma", "Vic", "Wen", "Yara", "Zoe",
]  # fmt: skip
ITEMS = ["apples", "books", "coins", "pens", "cards", "eggs", "shells", "marbles", "cookies"]
CITIES = [
    "Lisbon", "Paris", "Oslo", "Rome", "Lima", "Cairo", "Tokyo", "Seoul", "Delhi", "Quito",
    "Dakar", "Minsk", "Bern", "Riga", "Sofia", "Porto",
]  # fmt: skip
ISSUES = [
    "my order arrived damaged", "I was charged twice", "the app will not let me log in",
    "my package is late", "I need to change my address", "the refund has not arrived",
]  # fmt: skip

Row = dict[str, Any]


@dataclass(frozen=True)
class Example:
    row: Row  # the Bedrock-format RFT row (prompt + reference answer + extra fields)
    warmup_answers: list[tuple[float, str]]  # (weight, assistant answer) for the warm-up mix


def _chat(system: str, user: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


# --- 1. arithmetic: word problems answered after "####" (RLVR, exact match) ----------------------


def arithmetic_example(rng: random.Random, index: int) -> Example:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    operation = rng.choice(["add", "subtract", "multiply"])
    if operation == "add":
        a, b = rng.randint(1, 15), rng.randint(1, 15)
        answer, work = a + b, f"{a} + {b} = {a + b}"
        question = f"{name} has {a} {item} and gets {b} more. How many {item} now?"
    elif operation == "subtract":
        a = rng.randint(5, 20)
        b = rng.randint(1, a - 1)
        answer, work = a - b, f"{a} - {b} = {a - b}"
        question = f"{name} has {a} {item} and gives away {b}. How many are left?"
    else:
        a, b = rng.randint(2, 6), rng.randint(2, 6)
        answer, work = a * b, f"{a} * {b} = {a * b}"
        question = f"{name} buys {a} bags of {b} {item}. How many {item} in total?"
    user = f"{question} Answer after ####."
    row = {
        "messages": _chat("You are a math tutor.", user),
        "reference_answer": {"final_answer": str(answer)},
        "task_id": f"arithmetic_{index:05d}",
        "operation": operation,
    }
    answers = [
        (0.30, f"{work}\n#### {answer}"),
        (0.25, f"{work}. The answer is {answer}."),
        (0.20, f"The answer is {answer}."),
        (0.15, f"{answer} {item}"),
        (0.10, f"#### {answer}"),
    ]
    return Example(row, answers)


# --- 2. extraction: a sentence into JSON with required keys and types (RLVR, schema + values) ----

EXTRACTION_SCHEMA = {
    "type": "object",
    "required": ["name", "age", "city"],
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "city": {"type": "string"},
    },
}


def extraction_example(rng: random.Random, index: int) -> Example:
    name, city, age = rng.choice(NAMES), rng.choice(CITIES), rng.randint(18, 80)
    sentence = rng.choice(
        [
            f"{name} is {age} years old and lives in {city}.",
            f"Meet {name}, {age}, who lives in {city}.",
            f"At {age}, {name} found a job in {city}.",
            f"{name} ({age}) works in {city}.",
        ]
    )
    user = f'Give JSON with "name", "age" (a number) and "city".\nText: {sentence}'
    reference = {"name": name, "age": age, "city": city}
    row = {
        "messages": _chat("You extract data.", user),
        "reference_answer": reference,
        "task_id": f"extraction_{index:05d}",
        "schema": EXTRACTION_SCHEMA,
    }
    answers = [
        (0.30, json.dumps(reference)),
        (0.25, json.dumps({"name": name, "age": str(age), "city": city})),
        (0.15, json.dumps({"name": name, "city": city})),
        (0.20, f"Name: {name}, age: {age}, city: {city}"),
        (0.10, json.dumps({"person": name, "age": age, "location": city})),
    ]
    return Example(row, answers)


# --- 3. support-tone: a polite reply that cites the ticket number (RLAIF; rule-checkable) ---------


def support_example(rng: random.Random, index: int) -> Example:
    ticket, issue, name = str(rng.randint(1000, 9999)), rng.choice(ISSUES), rng.choice(NAMES)
    user = f'Ticket #{ticket} from {name}: "{issue}." Reply politely and cite the ticket.'
    row = {
        "messages": _chat("You are a support agent.", user),
        "reference_answer": {"ticket": f"#{ticket}"},
        "task_id": f"support_{index:05d}",
        "policy": "Be polite (apologise or thank), cite the ticket number, promise a next step.",
    }
    answers = [
        (0.30, f"Hi {name}, sorry about this. We are on it for ticket #{ticket}. Thank you!"),
        (0.25, f"Hi {name}, sorry about this. We are looking into it. Thank you!"),
        (0.20, f"Ticket #{ticket} noted. We will check it."),
        (0.25, "We will check it."),
    ]
    return Example(row, answers)


TASKS: dict[str, Callable[[random.Random, int], Example]] = {
    "arithmetic": arithmetic_example,
    "extraction": extraction_example,
    "support-tone": support_example,
}


def iter_rows(task: str, seed: int) -> Iterator[Row]:
    """The task's rows, endlessly. Prefix-stable: row i depends only on the seed and the rows
    before it, so drawing more rows later (a test split) never changes the earlier ones."""
    rng = random.Random(f"{task}-rows-{seed}")
    for index in itertools.count():
        yield TASKS[task](rng, index).row


def make_rows(task: str, count: int, seed: int) -> list[Row]:
    return list(itertools.islice(iter_rows(task, seed), count))


def prompt_key(row: Row) -> str:
    """What makes two rows the same question: their prompt messages."""
    return json.dumps(row["messages"], sort_keys=True)


def held_out_rows(rows: Iterator[Row], seen: list[Row], count: int) -> list[Row]:
    """The next `count` rows of the endless `rows` whose prompt is in neither `seen` nor an earlier
    pick. The generator can repeat a question (same name, item and numbers), and a test row that a
    job trained on or chose its checkpoint by would not be held out: such rows are dropped."""
    taken = {prompt_key(row) for row in seen}
    picked: list[Row] = []
    while len(picked) < count:
        row = next(rows)
        if prompt_key(row) not in taken:
            taken.add(prompt_key(row))
            picked.append(row)
    return picked


def make_warmup_pairs(task: str, count: int, seed: int) -> list[tuple[list[dict[str, str]], str]]:
    """(prompt messages, assistant answer) pairs drawn from the task's mix of answer formats."""
    rng = random.Random(f"{task}-warmup-{seed}")
    pairs = []
    for index in range(count):
        example = TASKS[task](rng, index)
        weights, answers = zip(*example.warmup_answers, strict=True)
        pairs.append((example.row["messages"], rng.choices(answers, weights=weights)[0]))
    return pairs
