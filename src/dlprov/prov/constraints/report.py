"""What validation finds: :class:`Violation` (one broken constraint, the records involved)
and :class:`Report` (all of them, for a document), as a table or as JSON."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from dlprov.prov.constraints.catalog import name as constraint_name


@dataclass
class Violation:
    """Constraint ``number`` of PROV-CONSTRAINTS does not hold: ``message`` says how, and
    ``records`` are the identifiers (or PROV-N text) of the records involved, ``lines`` their
    line numbers where the format has them; ``bundle`` the bundle, None at the top level."""

    number: int
    message: str
    records: list[str] = field(default_factory=list)
    bundle: str | None = None
    lines: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        return constraint_name(self.number)

    @property
    def key(self) -> tuple:
        return (self.number, self.bundle, tuple(sorted(self.records)), self.message)

    def as_dict(self) -> dict[str, Any]:
        return {"constraint": self.number, "name": self.name, "message": self.message,
                "records": self.records, "lines": self.lines, "bundle": self.bundle}


@dataclass
class Report:
    """The verdict on one document: valid when no violation was found."""

    source: str = "<document>"
    violations: list[Violation] = field(default_factory=list)
    records: int = 0
    bundles: int = 0

    @property
    def valid(self) -> bool:
        return not self.violations

    def __bool__(self) -> bool:
        return self.valid

    def add(self, violation: Violation) -> None:
        self.violations.append(violation)

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "valid": self.valid, "records": self.records,
                "bundles": self.bundles,
                "violations": [v.as_dict() for v in self.violations]}

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, default=str)

    def summary(self) -> str:
        """One line: ``VALID source (n records)`` or ``INVALID source: k violations``."""
        if self.valid:
            return f"VALID {self.source} ({self.records} records, {self.bundles} bundles)"
        return (f"INVALID {self.source}: {len(self.violations)} violation(s) of "
                f"PROV-CONSTRAINTS ({self.records} records)")

    def table(self) -> str:
        """The summary line, then one line per violation."""
        lines = [self.summary()]
        for v in self.violations:
            where = f" [bundle {v.bundle}]" if v.bundle else ""
            at = f" (line {', '.join(map(str, v.lines))})" if v.lines else ""
            lines.append(f"  constraint {v.number} {v.name}{where}: {v.message}; records: "
                         f"{', '.join(v.records)}{at}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()
