"""Reward templates: working starting points, one click from a new reward.

Bedrock's seven (math, format/constraints, Lambda boilerplate, and four judges), plus JSON
extraction, code checked by unit tests, support tone, and two built-in graders. Each starter demo
task names its template in `STARTER_TEMPLATES`. Code templates live as real files in
`template_files/` so they can be read, linted and tested like any other code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FILES = Path(__file__).parent / "template_files"

# Judges point at our own OpenAI-compatible endpoint by default; pick the model when creating.
JUDGE_ENDPOINT = {
    "judge_type": "endpoint",
    "base_url": "http://127.0.0.1:8000/v1",
    "model": "",
    "score_min": 0,
    "score_max": 10,
}
SCORE_LINE = "Answer with one line: Score: <0-10>, then one sentence of justification."


# A multi grader that fits the starter's arithmetic rows: the python part checks the answer, the
# string_check part the "####" format.
OPENAI_ARITHMETIC_GRADER = {
    "type": "multi",
    "name": "arithmetic",
    "graders": {
        "exact": {
            "type": "python",
            "name": "exact",
            "source": (
                "def grade(sample, item):\n"
                "    text = sample['output_text']\n"
                "    answer = text.split('####')[-1].strip() if '####' in text else None\n"
                "    return float(answer == item['reference_answer']['final_answer'])\n"
            ),
        },
        "format": {
            "type": "string_check",
            "name": "format",
            "input": "{{sample.output_text}}",
            "reference": "####",
            "operation": "like",
        },
    },
    "calculate_output": "0.8 * exact + 0.2 * format",
}


@dataclass(frozen=True)
class RewardTemplate:
    slug: str
    name: str
    kind: str  # builtin | code | judge | openai_grader, as RewardFunction.Kind
    description: str
    config: dict[str, Any] = field(default_factory=dict)
    code_file: str = ""
    pass_threshold: float = 1.0
    task: str = ""  # the starter demo task it fits, if any

    @property
    def code(self) -> str:
        return (FILES / self.code_file).read_text(encoding="utf-8") if self.code_file else ""

    def summary(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "name": self.name,
            "kind": self.kind,
            "description": self.description,
            "task": self.task,
        }


def _judge(
    slug: str, name: str, description: str, instructions: str, **extra: Any
) -> RewardTemplate:
    config = {**JUDGE_ENDPOINT, "instructions": instructions.strip() + "\n\n" + SCORE_LINE}
    return RewardTemplate(slug, name, "judge", description, config, pass_threshold=0.7, **extra)


TEMPLATES: list[RewardTemplate] = [
    RewardTemplate(
        "math-ground-truth",
        "Math with ground-truth verification",
        "code",
        "Bedrock Lambda: 1.0 when the number after #### equals the reference answer, plus a "
        "small bonus for the right format. Charts 'correct' and 'format' separately.",
        code_file="math_ground_truth.py",
        task="arithmetic",
    ),
    RewardTemplate(
        "math-sympy",
        "Math answer, checked with SymPy",
        "code",
        "Bedrock Lambda using SymPy (a sandbox library): 1.0 when the final answer equals the "
        "reference as mathematics — 1/2 = 0.5, 2(x+2) = 2x+4, sqrt(8) = 2 sqrt(2).",
        code_file="math_sympy.py",
    ),
    RewardTemplate(
        "format-constraints",
        "Format validation and constraint checking",
        "code",
        "Bedrock Lambda: share of constraints met (length, required and forbidden phrases, a "
        "regex); each row can set its own constraints as extra fields.",
        code_file="format_constraints.py",
    ),
    RewardTemplate(
        "lambda-boilerplate",
        "Generic reward Lambda",
        "code",
        "The Bedrock lambda_handler skeleton with metrics_list: fill in score(). Runs unchanged "
        "on Amazon Bedrock.",
        code_file="lambda_boilerplate.py",
    ),
    _judge(
        "judge-instruction-following",
        "Instruction following (judge)",
        "An LLM judge scores how completely and precisely the reply follows the instructions.",
        """
You are grading how well an assistant followed the user's instructions.

Conversation:
{{prompt}}

Assistant's reply:
{{response}}

Give 10 when every instruction (content, format, length, tone) is followed exactly, 5 when some
are missed, 0 when the reply ignores them.""",
    ),
    _judge(
        "judge-summarization",
        "Summarization quality (judge)",
        "An LLM judge scores a summary for faithfulness, coverage and concision against the "
        "reference summary.",
        """
You are grading a summary.

Source and request:
{{prompt}}

Summary to grade:
{{response}}

A good reference summary:
{{reference_answer}}

Give 10 for a faithful, complete and concise summary; take points for invented facts (most),
missing key points, and padding.""",
    ),
    _judge(
        "judge-reasoning",
        "Reasoning evaluation (judge)",
        "An LLM judge scores the reasoning steps as well as the final answer.",
        """
You are grading a step-by-step solution.

Problem:
{{prompt}}

Solution to grade:
{{response}}

Reference answer:
{{reference_answer}}

Give 10 when every step is valid and the final answer matches the reference, 5 for a right answer
with a flawed step or a sound method with a slip, 0 for wrong reasoning.""",
    ),
    _judge(
        "judge-rag-faithfulness",
        "RAG faithfulness (judge)",
        "An LLM judge checks that every claim in the answer is supported by the retrieved "
        "context (the row's 'context' field).",
        """
You are checking an answer against retrieved documents.

Question:
{{prompt}}

Retrieved context:
{{metadata.context}}

Answer to grade:
{{response}}

Give 10 when every claim is supported by the context, 0 when the answer contradicts it or adds
facts that are not there. An honest "the context does not say" is fully faithful.""",
    ),
    RewardTemplate(
        "json-extraction-schema",
        "JSON extraction with schema",
        "builtin",
        "Built-in: the answer must be a JSON object that meets the row's 'schema' and whose "
        "values equal the reference; partial credit for valid JSON and the schema.",
        config={"grader": "json_fields"},
        task="extraction",
    ),
    RewardTemplate(
        "code-unit-tests",
        "Code generation checked by unit tests",
        "code",
        "grade(): runs the row's 'tests' (assert lines) against the generated function inside "
        "the sandbox; the score is the share of tests passed.",
        code_file="code_unit_tests.py",
    ),
    _judge(
        "support-tone-policy",
        "Support reply: tone and policy (judge)",
        "An LLM judge scores a support reply for politeness and the row's 'policy'. For a "
        "rule-based version use the built-in support_policy grader.",
        """
You are reviewing a customer-support reply.

Ticket:
{{prompt}}

Reply:
{{response}}

Company policy:
{{metadata.policy}}

Give 10 when the reply is polite, cites the ticket number and follows every rule of the policy;
take 3 points for each rule broken and 5 for any rudeness.""",
        task="support-tone",
    ),
    RewardTemplate(
        "number-match",
        "Number match with tolerance",
        "builtin",
        "Built-in: the final number in the answer equals the reference within an absolute or "
        "relative tolerance.",
        config={"grader": "number_match", "tolerance": 0.01},
    ),
    RewardTemplate(
        "semantic-similarity",
        "Semantic similarity to the reference",
        "builtin",
        "Built-in: cosine similarity between sentence embeddings of the answer and the reference "
        "(all-MiniLM-L6-v2, bundled offline).",
        config={"grader": "text_similarity", "metric": "cosine"},
        pass_threshold=0.8,
    ),
    RewardTemplate(
        "openai-grader",
        "OpenAI grader (paste yours)",
        "openai_grader",
        "An OpenAI reinforcement fine-tuning grader as JSON: string_check, text_similarity, "
        "python, score_model, label_model or multi. This one checks the number after #### with "
        "python and the format with string_check; replace it with your own.",
        config={"grader": OPENAI_ARITHMETIC_GRADER},
        task="",
    ),
]

BY_SLUG = {template.slug: template for template in TEMPLATES}
STARTER_TEMPLATES = {template.task: template for template in TEMPLATES if template.task}


def get_template(slug: str) -> RewardTemplate:
    try:
        return BY_SLUG[slug]
    except KeyError:
        raise KeyError(f"No reward template {slug!r}; see GET /api/reward-templates/.") from None
