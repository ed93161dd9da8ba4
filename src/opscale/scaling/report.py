"""The rows of every fit table of a study, as the group steps add them."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass
class Report:
    """Rows of every table, and the fitted errors of every law, as they accumulate."""

    tables: dict = field(default_factory=dict)
    fitted: list = field(default_factory=list)

    def add(self, name: str, rows: list[dict]) -> None:
        self.tables.setdefault(name, []).extend(rows)

    def merge(self, other: Report) -> None:
        """Append another report's rows and fitted errors (a group fitted elsewhere)."""
        for name, rows in other.tables.items():
            self.add(name, rows)
        self.fitted.extend(other.fitted)

    def note(self, group: str, step: str, reason: str) -> None:
        log.info("%s, %s: %s", group, step, reason)
        self.add("note", [{"group": group, "step": step, "reason": reason}])
