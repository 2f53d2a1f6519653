"""Robustness: malformed JSON, undeclared methods, never a server error (reference §2.1, §2.4)."""

from __future__ import annotations

import pytest

from conformance.suite.plugin import expect
from conformance.suite.teller import OPERATIONS


@pytest.fixture
def gate(operation, profile):
    if operation != "getUserAmount" and not profile.money_allowed:
        pytest.skip("money movement is not allowed for this target (use --allow-money-movement)")


@pytest.mark.requirement("ROB-002", "ROB-001")
@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("payload", [b'{"thirdServerCode": "W-1', b"not json at all", b"[1, 2"])
def test_malformed_json_is_rejected_with_the_envelope(operation, payload, gate, teller, journal):
    exchange = teller.call(operation, raw_body=payload, negative=True)
    expect(journal, "ROB-002", exchange)
    expect(journal, "ROB-001", exchange)


@pytest.mark.requirement("ROB-003")
@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_undeclared_method_is_not_allowed(operation, method, teller, journal):
    exchange = teller.call(operation, method=method)
    expect(journal, "ROB-003", exchange)


@pytest.mark.requirement("ROB-001", "VAL-010")
@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("payload", [b"[1, 2]", b'"W-1001"', b"42", b"null"], ids=["array", "string", "number", "null"])
def test_json_that_is_not_an_object_is_refused_without_a_server_error(operation, payload, gate, teller, journal):
    """Well-formed JSON of the wrong shape reaches the handler's field access: a classic source of 500s."""
    exchange = teller.call(operation, raw_body=payload, negative=True)
    expect(journal, "ROB-001", exchange)
    expect(journal, "VAL-010", exchange)
