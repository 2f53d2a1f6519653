"""Views of a run's verdicts: the table on screen, and the files auditors and CI read.

Every view is derived from the one ``summary.json`` structure built by
:mod:`conformance.verdicts` and the journal's recorded exchanges.
"""

from __future__ import annotations

from collections.abc import Callable

from conformance.reporting import table


def finish(result, profile, *, say: Callable[[str], None] = print) -> None:
    """Everything a run writes after its verdicts exist, then the table on screen."""
    for line in table.render(result.summary):
        say(line)
    say(f"reports: {result.report_dir}")
