"""Test-and-set conditions of Vespa's document API, the subset newsrec sends: a document type alone (`news`: the
document must exist) or one comparison of a numeric field with an integer (`news.live_seq < 17`).

Vespa evaluates a condition against the stored document before it applies the operation, atomically, and answers
412 when it does not hold (https://docs.vespa.ai/en/document-v1-api-guide.html, "conditional writes"; the
selection language: https://docs.vespa.ai/en/reference/document-select-language.html). The embedded index and the
contract server evaluate the same subset here and refuse any other condition (400) rather than guess.
"""
from __future__ import annotations

import operator
import re
from dataclasses import dataclass

from newsrec.pipeline.errors import NewsrecError

_COMPARISON = re.compile(r"^\s*(\w+)\.(\w+)\s*(<=|>=|==|!=|<|>)\s*(-?\d+)\s*$")
_OPERATORS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq,
              "!=": operator.ne}


class ConditionError(NewsrecError):
    """A condition outside the supported subset, or of another document type (Vespa: 400)."""


@dataclass(frozen=True)
class Condition:
    """`doctype` alone (field None) or `doctype.field OP value`."""

    doctype: str
    field: str | None = None
    op: str = "=="
    value: int = 0

    def holds(self, fields: dict) -> bool:
        """Whether the stored document's `fields` satisfy it (a missing numeric field reads as 0, as an attribute's
        default)."""
        if self.field is None:
            return True
        stored = fields.get(self.field, 0)
        return _OPERATORS[self.op](stored if stored is not None else 0, self.value)

    def __str__(self) -> str:
        return self.doctype if self.field is None else f"{self.doctype}.{self.field} {self.op} {self.value}"


def parse_condition(text: str | None, doctype: str) -> Condition | None:
    """The condition `text` of an operation on a document of `doctype` (None: unconditional)."""
    if text is None:
        return None
    if text.strip() == doctype:
        return Condition(doctype)
    match = _COMPARISON.match(text)
    if match is None:
        raise ConditionError(f"condition {text!r}: supported are {doctype!r} and '{doctype}.<field> <op> <integer>'")
    name, field, op, value = match.groups()
    if name != doctype:
        raise ConditionError(f"condition {text!r} names document type {name!r}, the document is a {doctype!r}")
    return Condition(doctype, field, op, int(value))
