"""Policy validation errors: every problem of a policy set, reported at once.

Owns `PolicyProblem` (one finding: file, rule, key path, offending value, what was expected) and
`PolicyError` (all findings of one load). Never raised at request time: only loading and reloading
produce these. Policy files hold no secrets, so values are shown as written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["PolicyError", "PolicyProblem"]

_MAX_VALUE = 80


@dataclass(frozen=True, slots=True)
class PolicyProblem:
    file: str  # the file path, or the glob pattern when no file matched
    rule: str | None  # rule name, "#N" (1-based position in the file) when unnamed, None for files
    key: str  # key path inside the file, e.g. "rules[2].match.paths[0]"; "" for the whole file
    value: object
    expected: str

    @property
    def where(self) -> str:
        """'file: rule R: key', the parts that are known."""
        where = Path(self.file).name if self.file.endswith((".yaml", ".yml")) else self.file
        if self.rule is not None:
            where += f": rule {self.rule}"
        if self.key:
            where += f": {self.key}"
        return where

    def __str__(self) -> str:
        where = self.where
        shown = repr(self.value)
        if len(shown) > _MAX_VALUE:
            shown = shown[: _MAX_VALUE - 3] + "..."
        return f"{where}: got {shown}; expected {self.expected}"


class PolicyError(Exception):
    """The policy set is invalid; `problems` lists every finding: file by file, then set-wide."""

    def __init__(self, problems: list[PolicyProblem]) -> None:
        self.problems = list(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        count = len(self.problems)
        head = f"{count} policy problem{'s' if count != 1 else ''}:"
        return "\n".join([head, *(f"  {p}" for p in self.problems)])
