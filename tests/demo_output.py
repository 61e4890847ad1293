"""What both demo tests check of the demo's printed Listing 4 answer against the store."""
from __future__ import annotations

from typing import Callable

LISTING_4_RECOMPUTED = """
    SELECT t.train_task_id, i.learning_rate FROM digits__itrain i JOIN (
      SELECT train_task_id, avg(accuracy) a FROM digits__otrain GROUP BY train_task_id
      ORDER BY a DESC LIMIT 1) t ON t.train_task_id = i.train_task_id"""


def assert_listing_4_printed_as_stored(output: str, sql: Callable[..., list[tuple]]) -> None:
    """The one row the demo printed as a table under "Listing 4" is the answer recomputed from
    the store (its columns found by their headers)."""
    [(best_task, best_lr)] = sql(LISTING_4_RECOMPUTED)
    listing = output.split("Listing 4")[1].split("\nQ1 ")[0]  # the Q1–Q12 answers follow
    lines = [line.split() for line in listing.splitlines()[1:] if line.strip()]
    header = lines[0]
    assert {"train_task_id", "learning_rate"} <= set(header), listing
    assert set(lines[1][0]) == {"-"}, listing  # a table: the header's rule
    rows = [line for line in lines[2:] if line[0].isdigit()]
    assert len(rows) == 1, listing
    row = dict(zip(header, rows[0]))
    assert (int(row["train_task_id"]), float(row["learning_rate"])) == (best_task, best_lr)
