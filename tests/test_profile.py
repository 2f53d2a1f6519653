"""The target profile: precedence CLI > environment > TOML > defaults, validation, secrets."""

from __future__ import annotations

import pytest

from conformance.profile import ConfigError, Profile, TestAccount, build


def write(tmp_path, text):
    path = tmp_path / "profile.toml"
    path.write_text(text)
    return str(path)


def test_defaults():
    profile = build({}, environ={})
    assert profile.embedded and profile.money_allowed
    assert profile.keys == "either" and profile.currency_allowlist == ("USDT",)
    assert profile.max_examples == 100 and profile.seed == 20261125
    assert profile.effective_rate_limit is None  # the embedded wallet is ours


def test_precedence_cli_over_environment_over_file(tmp_path):
    config = write(
        tmp_path, '[target]\nbase_url = "https://file.example/api"\ncompany_id = 1\n[run]\nseed = 3\nmax_examples = 7\n'
    )
    environ = {"CONFORMANCE_COMPANY_ID": "2", "CONFORMANCE_SEED": "4"}
    profile = build({"config": config, "seed": 5}, environ=environ)
    assert profile.base_url == "https://file.example/api"  # file only
    assert profile.company_id == 2  # environment over file
    assert profile.seed == 5  # CLI over environment
    assert profile.max_examples == 7


def test_config_file_from_environment(tmp_path):
    config = write(tmp_path, "[run]\nmax_examples = 9\n")
    assert build({}, environ={"CONFORMANCE_CONFIG": config}).max_examples == 9


def test_external_target_is_gentle_and_money_is_opt_in():
    profile = build({"base_url": "https://wallet.example/api/cats-gateway/"}, environ={})
    assert profile.base_url == "https://wallet.example/api/cats-gateway"
    assert not profile.embedded and not profile.money_allowed
    assert profile.effective_rate_limit == 20.0
    assert build({"base_url": "https://w.example", "allow_money_movement": True}, environ={}).money_allowed
    assert build({"base_url": "https://w.example", "rate_limit": 0}, environ={}).effective_rate_limit is None


def test_accounts_headers_and_lists_from_environment():
    environ = {
        "CONFORMANCE_ACCOUNTS": "W-1:86000001:USD, W-2:86000002:HKD",
        "CONFORMANCE_HEADERS": "X-Gateway-Key: abc;;Authorization: Bearer t0k3n",
        "CONFORMANCE_CURRENCY_ALLOWLIST": "USDT,USDC",
        "CONFORMANCE_ALLOW_MONEY_MOVEMENT": "true",
        "CONFORMANCE_PHASES": "examples,handwritten",
    }
    profile = build({}, environ=environ)
    assert profile.accounts == (TestAccount("W-1", "86000001", "USD"), TestAccount("W-2", "86000002", "HKD"))
    assert profile.headers == (("X-Gateway-Key", "abc"), ("Authorization", "Bearer t0k3n"))
    assert profile.currency_allowlist == ("USDT", "USDC")
    assert profile.allow_money_movement is True
    assert profile.phases == ("examples", "handwritten")


def test_secrets_are_redacted_from_the_record():
    profile = build({"headers": ["Authorization: Bearer s3cr3t"]}, environ={})
    record = repr(profile.to_record())
    assert "s3cr3t" not in record and "<redacted>" in record
    assert profile.secret_values == ("Bearer s3cr3t",)


def test_toml_headers_table(tmp_path):
    config = write(tmp_path, '[target]\nbase_url = "http://127.0.0.1:1"\n[target.headers]\nX-Key = "v"\n')
    # [target.headers] is a sub-table of [target]
    assert build({"config": config}, environ={}).headers == (("X-Key", "v"),)


@pytest.mark.parametrize(
    ("values", "environ", "fragment"),
    [
        ({"base_url": "ftp://x"}, {}, "not an http(s) URL"),
        ({"base_url": "wallet.example"}, {}, "not an http(s) URL"),
        ({"accounts": ["W-1:86000001"]}, {}, "THIRD:USER:CUR"),
        ({"headers": ["X-Key secret-value-123"]}, {}, "expected 'NAME: VALUE'"),
        ({"keys": "kebab"}, {}, "keys"),
        ({"max_examples": 0}, {}, "at least 1"),
        ({}, {"CONFORMANCE_MAX_EXAMPLES": "many"}, "not an integer"),
        ({}, {"CONFORMANCE_ALLOW_MONEY_MOVEMENT": "perhaps"}, "not a boolean"),
        ({"phases": "examples,smoke"}, {}, "smoke"),
        ({"ca_bundle": "/no/such/ca.pem"}, {}, "does not exist"),
        ({"config": "/no/such/profile.toml"}, {}, "does not exist"),
    ],
)
def test_bad_configuration_is_one_clear_error(values, environ, fragment):
    with pytest.raises(ConfigError) as error:
        build(values, environ=environ)
    message = str(error.value)
    assert fragment in message and "\n" not in message
    assert "secret-value-123" not in message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[target\nbase_url = 1", "not valid TOML"),
        ("[surprise]\nx = 1", "unknown section"),
        ("[run]\ncolour = 'blue'", "unknown setting"),
        ("[run]\ntarget = 'embedded'", "unknown setting"),
    ],
)
def test_bad_config_file(tmp_path, text, fragment):
    with pytest.raises(ConfigError, match=fragment):
        build({"config": write(tmp_path, text)}, environ={})


def test_profile_is_frozen():
    with pytest.raises(AttributeError):
        Profile().seed = 1  # type: ignore[misc]


def test_html_report_can_be_turned_off_everywhere(tmp_path):
    assert build({}, environ={}).html is True
    assert build({"html": False}, environ={}).html is False
    assert build({}, environ={"CONFORMANCE_HTML": "false"}).html is False
    assert build({"config": write(tmp_path, "[evidence]\nhtml = false\n")}, environ={}).html is False
    with pytest.raises(ConfigError):
        build({}, environ={"CONFORMANCE_HTML": "perhaps"})


def test_transport_errors_never_quote_a_secret():
    from conformance.transport import Client

    profile = build({"base_url": "https://wallet.example/api", "headers": ["X-Api-Key: k3y-ABC-987"]}, environ={})
    text = "InvalidHeader: Invalid leading whitespace in header value ' k3y-ABC-987'"
    client = Client(profile)
    try:
        assert client._scrub(text) == "InvalidHeader: Invalid leading whitespace in header value ' <redacted>'"
    finally:
        client.close()
