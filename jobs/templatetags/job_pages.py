"""Filters for the job pages: status colours, durations, rewards and fractions."""

from __future__ import annotations

from typing import Any

from django import template

from jobs.registry.checkpoints import answered_steps, checkpoint_rows

register = template.Library()

TONES = {
    "queued": "muted",
    "validating": "live",
    "training": "live",
    "evaluating": "live",
    "stopping": "warn",
    "paused": "warn",
    "completed": "ok",
    "failed": "bad",
    "stopped": "muted",
}


@register.filter
def status_tone(status: str) -> str:
    return TONES.get(status, "muted")


@register.filter
def duration(seconds: float | None) -> str:
    """90 -> '2 min', 4000 -> '1 h 7 min', 20 -> '< 1 min'."""
    if seconds is None:
        return "—"
    minutes = round(seconds / 60)
    if minutes < 1:
        return "< 1 min"
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"


@register.filter
def percent(value: Any) -> str:
    return f"{value:.0%}" if isinstance(value, int | float) else "—"


@register.filter
def score(value: Any) -> str:
    """A reward as people read it: 3 significant digits, or a dash when there is none."""
    return f"{value:.3g}" if isinstance(value, int | float) else "—"


@register.filter
def signed_points(value: Any) -> str:
    """An accuracy gain in percentage points: +46 pp."""
    return f"{value * 100:+.0f} pp" if isinstance(value, int | float) else ""


@register.filter
def pretty_json(value: Any) -> str:
    import json

    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


@register.simple_tag
def job_checkpoints(job: Any) -> dict[str, Any]:
    """The checkpoints card (templates/jobs/_checkpoints.html): its rows (see checkpoint_rows)
    and whether the base model's answers (step 0) are kept."""
    answered = answered_steps(job)
    return {"rows": checkpoint_rows(job, answered), "base_answers": 0 in answered}
