"""The platform simulator: the money conversation as MultiMarkets really delivers it (issue 10).

- :mod:`conformance.delivery` models one order's conversation (deadline, cut-off, cancel retried);
- :mod:`.platform` sends as the platform does (deadline to the last byte, lost answers, bounded
  concurrency and rate), through the suite's recording client;
- :mod:`.scenarios` plays the scenarios, each ending in a money check judged by
  :mod:`conformance.checks.delivery`;
- :mod:`.report` keeps what the phase reports (per scenario, latency under load).

The suite runs it as the ``delivery`` phase (``conformance/suite/test_delivery.py``).
"""

from conformance.simulator.platform import Platform
from conformance.simulator.report import percentiles, summary_section
from conformance.simulator.scenarios import LONG_RETRY_WINDOWS, SCENARIOS, Simulation, Story

__all__ = ["LONG_RETRY_WINDOWS", "SCENARIOS", "Platform", "Simulation", "Story", "percentiles", "summary_section"]
