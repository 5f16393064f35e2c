"""Custom-code rewards: which interface a file uses (read with `ast`, never executed here)."""

from __future__ import annotations

import ast
from typing import Literal

Interface = Literal["lambda", "grade"]


class CodeError(ValueError):
    """The code cannot be a reward; the message points at the problem."""


def detect_interface(code: str) -> Interface:
    """Which interface: Bedrock `lambda_handler(event, context)` or `grade(sample, item)`."""
    try:
        tree = ast.parse(code, filename="reward.py")
    except SyntaxError as error:
        raise CodeError(f"line {error.lineno}: {error.msg}") from None
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    for name, interface, arity in (("lambda_handler", "lambda", 2), ("grade", "grade", 2)):
        if name in functions:
            given = len(functions[name].args.args)
            if given != arity:
                raise CodeError(f"{name} takes {given} arguments; it must take {arity}.")
            return interface  # type: ignore[return-value]
    raise CodeError("Define lambda_handler(event, context) (Bedrock style) or grade(sample, item).")
