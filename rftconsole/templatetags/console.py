from django import template

register = template.Library()


@register.filter
def compact_count(value: int | None) -> str:
    """942976 -> '943 K', 1_540_000_000 -> '1.54 B'."""
    if value is None:
        return "—"
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if value >= size:
            return f"{value / size:.3g} {unit}"
    return str(value)
