"""Conformance suite for the MultiMarkets (TradeBoss) Webhook API.

The public surface is small: :func:`conformance.contract.load` (the contract as
data), :mod:`conformance.checks` (the rules, one pure function each), the
``conformance`` command line, and the embedded reference wallet
(:mod:`conformance.reference`).
"""

__version__ = "0.1.0"
