"""Opt-in repair of model-written code before it runs (``repair=True`` in the graph).

Off by default so that training data shows the model's own code. Repairs:

* strip stray Markdown fences (```python ... ```);
* dedent code that is indented as a whole;
* guard every ``X.crop(box)`` call so that boxes are clamped to the image at run time.
"""

from __future__ import annotations

import ast
import re
import textwrap

__all__ = ["guard_crops", "repair_code", "strip_fences"]

_WRAPPING_FENCE = re.compile(
    r"\A\s*```[ \t]*[A-Za-z0-9_+-]*[ \t]*\n?(.*?)\n?[ \t]*(?:```\s*)?\Z", re.DOTALL
)


def strip_fences(code: str) -> str:
    """Remove a Markdown code fence around the code (a missing closing fence is tolerated)."""
    match = _WRAPPING_FENCE.match(code)
    if match is None or not code.lstrip().startswith("```"):
        return code
    return match.group(1).strip("\n")


class _GuardCrops(ast.NodeTransformer):
    def __init__(self) -> None:
        self.count = 0

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "crop" and len(node.args) == 1:
            self.count += 1
            guard = ast.parse("__cv_runtime__.clamp_box(_x, _b)", mode="eval").body
            assert isinstance(guard, ast.Call)
            guard.args = [func.value, node.args[0]]
            node.args = [guard]
        return node


def guard_crops(code: str) -> tuple[str, int]:
    """Rewrite ``X.crop(box)`` into ``X.crop(clamp_box(X, box))``; returns (code, count)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code, 0
    guard = _GuardCrops()
    tree = guard.visit(tree)
    if not guard.count:
        return code, 0
    return ast.unparse(ast.fix_missing_locations(tree)), guard.count


def repair_code(code: str) -> tuple[str, list[str]]:
    """Apply every repair; returns the new code and what was changed."""
    notes: list[str] = []
    stripped = strip_fences(code)
    if stripped != code:
        notes.append("removed Markdown code fences")
    dedented = textwrap.dedent(stripped)
    if dedented != stripped:
        notes.append("removed common indentation")
    guarded, count = guard_crops(dedented)
    if count:
        notes.append(f"clamped {count} crop box(es) to the image bounds")
    return guarded, notes
