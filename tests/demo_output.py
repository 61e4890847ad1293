"""What both demo tests check of the demo's printed Listing 4 answer against the store."""
from __future__ import annotations

from typing import Callable

LISTING_4_RECOMPUTED = """
    SELECT t.train_task_id, i.learning_rate FROM digits__itrain i JOIN (
      SELECT train_task_id, avg(accuracy) a FROM digits__otrain GROUP BY train_task_id
      ORDER BY a DESC LIMIT 1) t ON t.train_task_id = i.train_task_id"""


def assert_listing_4_printed_as_stored(output: str, sql: Callable[..., list[tuple]]) -> None:
    """The one row the demo printed under "Listing 4" is the answer recomputed from the store."""
    [(best_task, best_lr)] = sql(LISTING_4_RECOMPUTED)
    listing = output.split("Listing 4")[1].split("\nQ1 ")[0]  # the Q1–Q12 answers follow
    rows = [line.split() for line in listing.splitlines()
            if line.strip() and line.split()[0].isdigit()]
    assert len(rows) == 1, listing
    assert (int(rows[0][1]), float(rows[0][3])) == (best_task, best_lr)
