"""Fixtures of the handwritten suite (the session-wide ones come from plugin.SuitePlugin)."""

from __future__ import annotations

import pytest

from conformance.suite.teller import Teller


@pytest.fixture
def teller(client, state, origin) -> Teller:
    return Teller(client, state, origin)


@pytest.fixture(scope="session")
def accounts(profile):
    if not profile.accounts:
        pytest.skip("the profile names no test accounts (--account THIRD:USER:CUR)")
    return profile.accounts


@pytest.fixture(scope="session")
def account(accounts):
    return accounts[0]
