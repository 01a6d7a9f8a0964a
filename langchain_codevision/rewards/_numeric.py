"""Evaluate the simple numeric expressions models write around crops and rotations.

:func:`eval_node` follows the release's evaluator exactly (numbers, names from an
environment, unary ``+``/``-``, ``+ - * / // %``, tuples and lists, and the builtins
``int float abs round min max tuple list``); with ``extended=True`` it also knows ``**``,
subscripts of known lists and the ``size``/``width``/``height`` of images whose size is
known (the AST mode). Nothing is ever executed; every failure gives ``None``.
"""

from __future__ import annotations

import ast
import math
import warnings
from collections.abc import Mapping
from typing import Any

__all__ = ["Value", "eval_expression", "eval_node", "parse_code"]

Value = float | list[float]
"""What an expression evaluates to: a number or a flat list of numbers."""

_BINOPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod)
_MAX_ABS = 1e12


def _binop(op: ast.operator, left: float, right: float) -> float | None:
    try:
        if isinstance(op, ast.Add):
            return left + right
        if isinstance(op, ast.Sub):
            return left - right
        if isinstance(op, ast.Mult):
            return left * right
        if isinstance(op, ast.Div):
            return left / right
        if isinstance(op, ast.FloorDiv):
            return float(left // right)
        if isinstance(op, ast.Mod):
            return left % right
        if isinstance(op, ast.Pow) and abs(right) <= 64 and abs(left) <= _MAX_ABS:
            result = left**right
            return float(result) if isinstance(result, (int, float)) else None
    except (ArithmeticError, ValueError, TypeError):
        return None
    return None


def _as_float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _floats(values: list[Any]) -> list[float] | None:
    out = [_as_float(v) for v in values]
    return None if any(v is None for v in out) else out  # type: ignore[return-value]


def _builtin(name: str, args: list[Any], node: ast.Call, env: Mapping[str, Any], ext: bool) -> Any:
    if name in ("int", "float", "abs"):
        first = _as_float(args[0]) if args and args[0] is not None else None
        if first is None:
            return None
        try:
            return float(int(first)) if name == "int" else abs(first) if name == "abs" else first
        except (ValueError, OverflowError):
            return None
    if name == "round":
        first = _as_float(args[0]) if args and args[0] is not None else None
        if first is None:
            return None
        try:
            if len(args) >= 2 and args[1] is not None:
                return float(round(first, int(float(args[1]))))
            return float(round(first))
        except (ValueError, OverflowError, TypeError):
            return None
    if name in ("min", "max"):
        if not args or any(a is None for a in args):
            return None
        numbers = _floats(args)
        if numbers is None and ext and len(args) == 1 and isinstance(args[0], list):
            numbers = args[0] or None
        if numbers is None:
            return None
        return float(min(numbers) if name == "min" else max(numbers))
    if name in ("tuple", "list"):
        if len(args) == 1 and isinstance(node.args[0], (ast.List, ast.Tuple)):
            inner = eval_node(node.args[0], env, extended=ext)
            if isinstance(inner, list):
                return inner
        if ext and len(args) == 1 and isinstance(args[0], list):
            return args[0]
        if args and all(a is not None for a in args):
            return _floats(args)
    return None


def eval_node(node: ast.AST, env: Mapping[str, Any], *, extended: bool = False) -> Any:
    """The value of ``node`` under ``env`` (names to numbers or lists), or ``None``.

    Args:
        node: An expression node.
        env: Known names. With ``extended``, a value of the form ``("image", w, h)``
            stands for an image of that size.
        extended: Also evaluate ``**``, ``x[i]`` and image ``size``/``width``/``height``.
    """
    try:
        return _eval(node, env, extended)
    except RecursionError:
        return None


def _eval(n: ast.AST, env: Mapping[str, Any], ext: bool) -> Any:
    if isinstance(n, ast.Constant) and isinstance(n.value, (int, float)):
        return _as_float(n.value)
    if isinstance(n, ast.Name):
        value = env.get(n.id)
        return None if isinstance(value, tuple) and not ext else value
    if isinstance(n, ast.UnaryOp) and isinstance(n.op, (ast.UAdd, ast.USub)):
        value = _as_float(_eval(n.operand, env, ext))
        if value is None:
            return None
        return value if isinstance(n.op, ast.UAdd) else -value
    if isinstance(n, ast.BinOp) and (
        isinstance(n.op, _BINOPS) or (ext and isinstance(n.op, ast.Pow))
    ):
        left, right = _eval(n.left, env, ext), _eval(n.right, env, ext)
        if left is None or right is None:
            return None
        lf, rf = _as_float(left), _as_float(right)
        if lf is None or rf is None:
            return None
        return _binop(n.op, lf, rf)
    if isinstance(n, (ast.Tuple, ast.List)):
        values = [_eval(elt, env, ext) for elt in n.elts]
        if any(v is None for v in values):
            return None
        return _floats(values)
    if isinstance(n, ast.Call):
        args = [_eval(a, env, ext) for a in n.args]
        if isinstance(n.func, ast.Name):
            return _builtin(n.func.id, args, n, env, ext)
        return None
    if ext and isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name):
        image = env.get(n.value.id)
        if isinstance(image, tuple) and len(image) == 3 and image[0] == "image":
            _, width, height = image
            return {"size": [width, height], "width": width, "height": height}.get(n.attr)
    if ext and isinstance(n, ast.Subscript):
        seq, index = _eval(n.value, env, ext), _eval(n.slice, env, ext)
        if isinstance(seq, list) and isinstance(index, float) and index.is_integer():
            position = int(index)
            if -len(seq) <= position < len(seq):
                return seq[position]
    return None


def parse_code(source: str, mode: str = "exec") -> ast.AST:
    """``ast.parse`` without the ``SyntaxWarning`` noise of model-written code."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)
        return ast.parse(source, mode=mode)


def eval_expression(text: str) -> float | None:
    """A numeric expression in source form (the release's ``.rotate(...)`` argument rule).

    Only numbers, unary ``+``/``-`` and ``+ - * / // %`` are evaluated; names, calls and
    anything else give ``None``.
    """
    try:
        tree = parse_code(text, mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None
    value = _eval_plain(tree.body)  # type: ignore[attr-defined]
    return None if value is None or math.isnan(value) else value


def _eval_plain(n: ast.AST) -> float | None:
    if isinstance(n, ast.Constant) and isinstance(n.value, (int, float)):
        return _as_float(n.value)
    if isinstance(n, ast.UnaryOp) and isinstance(n.op, (ast.UAdd, ast.USub)):
        value = _eval_plain(n.operand)
        return None if value is None else (value if isinstance(n.op, ast.UAdd) else -value)
    if isinstance(n, ast.BinOp) and isinstance(n.op, _BINOPS):
        left, right = _eval_plain(n.left), _eval_plain(n.right)
        if left is None or right is None:
            return None
        return _binop(n.op, left, right)
    return None
