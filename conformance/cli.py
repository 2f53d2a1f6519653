"""The ``conformance`` command line.

Exit codes (also in the README):

  0  every MUST requirement passed
  1  a MUST requirement failed
  2  usage or configuration error
  3  the target could not be reached (DNS, refused, TLS, timeout, not HTTP/JSON) before testing
  4  incomplete: nothing failed, but some MUST requirements were not judged (e.g. money movement not allowed)
  5  internal error of the suite itself
  130/143  stopped by SIGINT/SIGTERM: new traffic stopped, money settled, reports written
           (a second signal exits at once with the same code and prints the `conformance settle` command)

`conformance settle REPORT_DIR`: 0 nothing outstanding, 2 usage error, 4 adjustments still outstanding.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

EXIT_INTERNAL = 5


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (argparse prints usage + error by default)
        self.exit(2, f"conformance: error: {message} (see --help)\n")


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--base-url", help="the wallet's base URL, e.g. https://wallet.example/api/cats-gateway "
        "(default: start the embedded reference wallet)")
    add("--company-id", type=int, help="companyId header value (default 439)")
    add("--account", action="append", dest="accounts", metavar="THIRD:USER:CUR",
        help="a test account on the target; repeat for more")
    add("--header", action="append", dest="headers", metavar="'NAME: VALUE'",
        help="an extra header on every request (e.g. a gateway key); treated as a secret")
    add("--allow-money-movement", action="store_const", const=True, default=None,
        help="allow execute/cancel calls against this target (every adjustment is compensated)")
    add("--config", help="a TOML profile (see examples/profile.toml)")
    add("--report-dir", help="where to write the reports (default reports/run-<UTC time>)")
    add("--seed", type=int, help="seed of the property-based runs (default 20261125)")
    add("--max-examples", type=int, help="examples per operation and mode (default 100)")
    add("--keys", choices=("camel", "snake", "either"), help="balance key style to require (default either)")
    add("--currency-allowlist", help="comma-separated non-ISO currency codes accepted (default USDT)")
    add("--timeout", type=float, help="request timeout in seconds (default 10)")
    add("--rate-limit", type=float, help="max requests per second (default 20 for external targets; 0 = none)")
    add("--insecure", action="store_const", const=False, dest="verify_tls", default=None,
        help="do not verify TLS certificates")
    add("--ca-bundle", help="a CA bundle to verify the target's TLS certificate")
    add("--phases", help="comma-separated: examples,coverage,fuzzing,stateful,handwritten,delivery (default all)")
    add("--concurrency", type=int, help="delivery phase: orders in flight at once (default 8, at most 64)")
    add("--delivery-rate-limit", type=float,
        help="delivery phase: max requests per second (default: as --rate-limit; 0 = none)")
    add("--retry-window", type=float,
        help="delivery phase: seconds over which replays are spread (default 2.5, at most 60)")
    add("--long-retry-windows", action="store_const", const=True, default=None,
        help="delivery phase: also replay after 30 s and 120 s (adds about 2.5 minutes to the run)")
    add("--compare", metavar="PREVIOUS_SUMMARY", help="a previous summary.json: list regressions and recoveries")
    add("--history", metavar="PREVIOUS_REPORT_DIR", help="a previous report dir whose Allure history to carry over")
    add("--signing-key", help="an Ed25519 private key (PEM) to sign the evidence bundle")
    add("--no-html", action="store_const", const=False, dest="html", default=None,
        help="do not render report.html even when the Allure command line is available")
    add("--verbose", "-v", action="store_true", help="one line per test, and tracebacks of failing tests")
    _money_arguments(parser)
    add("--max-duration", type=float, help="seconds for the whole run; then stop, settle, report (exit 4)")
    add("--max-outstanding", type=int, help="adjustments open at once; reaching it settles first (default 20)")
    add("--max-executes", type=int, help="executes per run (default 2000 for external targets; 0 = no bound)")
    add("--max-execute-amount", help="largest |amount| of one execute (default 100 for external targets; 0 = none)")
    add("--max-body-bytes", type=int, help="bytes read, decompressed and kept per response (default 1048576)")
    add("--overwrite", action="store_const", const=True, default=None,
        help="reuse a report dir that holds an earlier run (set aside until the target is reached)")
    # nightly: waivers, replays, flaky failures (conformance.waivers, conformance.suite.replay)
    add("--waivers", metavar="FILE", help="a TOML file of [[waiver]] tables (see examples/waivers.toml)")
    add("--strict-waivers", action="store_const", const=True, default=None,
        help="a waiver whose requirement now passes fails the run")
    add("--replays", type=int, metavar="K", help="replay a failing MUST probe K times before the failure is "
        "final; one that does not reproduce is flaky (default 2; 0 = off)")
    add("--flaky-fails", action="store_const", const=True, default=None, help="a flaky requirement fails the run")

def _money_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags ``run`` and ``settle`` share (settle takes the same secrets and bounds as the run)."""
    parser.add_argument("--settle-timeout", type=float, help="seconds for settling outstanding money (default 120)")


def _settle_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("report_dir", help="the report dir of a run (holds money-journal.jsonl)")
    add("--base-url", help="the wallet's base URL (default: the one the journal names)")
    add("--company-id", type=int, help="companyId header value (default: the run's)")
    add("--header", action="append", dest="headers", metavar="'NAME: VALUE'",
        help="an extra header on every request (the run's secrets; never stored)")
    add("--config", help="a TOML profile (for headers, TLS, timeout)")
    add("--timeout", type=float, help="bound of one whole exchange in seconds (default 10)")
    add("--insecure", action="store_const", const=False, dest="verify_tls", default=None,
        help="do not verify TLS certificates")
    add("--ca-bundle", help="a CA bundle to verify the target's TLS certificate")
    _money_arguments(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="conformance", description="Conformance suite for the MultiMarkets Webhook API.")
    from conformance import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _run_arguments(commands.add_parser("run", help="run the suite against a target (default: the embedded wallet)"))
    from conformance.reference import cli as reference_cli

    reference_cli.add_arguments(commands.add_parser("reference", help="serve the embedded reference wallet"))
    verify = commands.add_parser("verify", help="is an evidence bundle intact, and signed by a key you trust?")
    verify.add_argument("bundle", help="an evidence-*.zip written by a run")
    verify.add_argument("--public-key", help="the Ed25519 public key (PEM) the bundle must be signed with")
    verify.add_argument("--fingerprint", help="sha256:<hex> of the signer's key, as printed by the signing run")
    verify.add_argument("--intact-only", action="store_true",
                        help="exit 0 for an intact bundle even when no trusted key vouches for it")
    listing = commands.add_parser("requirements", help="list the requirement catalogue")
    listing.add_argument("--format", choices=("table", "json"), default="table")
    listing.add_argument("--id", dest="id_prefix", metavar="PREFIX", help="only ids starting with PREFIX (e.g. CAN-)")
    listing.add_argument("--level", choices=("MUST", "SHOULD"), type=str.upper)
    listing.add_argument("--operation", help="only requirements of this operation (e.g. cancelAdjustment)")
    _settle_arguments(commands.add_parser(
        "settle", help="cancel every adjustment a run left applied or unknown (reads its money journal)"))
    from conformance import fleet
    from conformance.reporting import trend

    trend.add_arguments(commands.add_parser("trend", help="requirement-by-run matrix of several runs (HTML, text)"))
    fleet.add_arguments(commands.add_parser("fleet", help="target-by-requirement table of per-target runs"))
    return parser


def _profile_values(args: argparse.Namespace) -> dict[str, Any]:
    names = ("base_url", "company_id", "accounts", "headers", "allow_money_movement", "config", "report_dir",
             "seed", "max_examples", "keys", "currency_allowlist", "timeout", "rate_limit", "verify_tls",
             "ca_bundle", "phases", "compare", "history", "signing_key", "html", "concurrency",
             "delivery_rate_limit", "retry_window", "long_retry_windows", "settle_timeout", "max_duration",
             "max_outstanding", "max_executes", "max_execute_amount", "max_body_bytes", "overwrite",
             "waivers", "strict_waivers", "replays", "flaky_fails")
    return {name: getattr(args, name, None) for name in names}


def _say(line: str) -> None:
    print(line, flush=True)


def command_run(args: argparse.Namespace) -> int:
    from conformance import profile as profiles
    from conformance import reporting
    from conformance.preflight import SetupError, TargetUnreachable
    from conformance.reporting.progress import Progress
    from conformance.reporting.redaction import Secrets, scrub
    from conformance.run import ReportDirInUse, execute

    raw = _raw_secrets(args)
    try:
        profile = profiles.build(_profile_values(args))
    except profiles.ConfigError as error:
        print(f"conformance: configuration error: {scrub(str(error), raw)}", file=sys.stderr)
        return 2
    secrets = Secrets.of(profile)
    with Progress(verbose=args.verbose, secrets=secrets) as progress:
        try:
            result = execute(profile, progress=progress, verbose=args.verbose)
        except SetupError as error:
            print(f"conformance: configuration error: {scrub(str(error), secrets)}", file=sys.stderr)
            return 2
        except TargetUnreachable as error:
            print(f"conformance: target unreachable: {scrub(str(error), secrets)}", file=sys.stderr)
            return 3
        except ReportDirInUse as error:
            print(f"conformance: report dir: {scrub(str(error), secrets)}", file=sys.stderr)
            return 2
        reporting.finish(result, profile, say=progress)
    return result.exit_code


def _raw_secrets(args: argparse.Namespace):
    """Secrets of the raw arguments, before the profile is valid (an error message may quote them)."""
    import re

    from conformance.reporting.redaction import Secrets

    values, headers = [], []
    for text in getattr(args, "headers", None) or []:  # 'NAME: VALUE', or malformed: 'NAME=VALUE', 'NAME VALUE'
        match = re.match(r"\s*([^:=\s]*)\s*[:=]?\s*(.*)", text)
        name, value = (match.group(1), match.group(2).strip()) if match else ("", text.strip())
        if name:
            headers.append((name, value))
        if value:
            values.append(value)
    return Secrets.build(headers=headers, urls=(getattr(args, "base_url", None),), values=values)


def command_requirements(args: argparse.Namespace) -> int:
    from conformance.reporting import catalogue

    rows = catalogue.select(prefix=getattr(args, "id_prefix", None), level=getattr(args, "level", None),
                            operation=getattr(args, "operation", None))
    for line in catalogue.render(rows, getattr(args, "format", "table")):
        print(line)
    return 0


def command_verify(args: argparse.Namespace) -> int:
    from conformance.reporting import evidence

    return evidence.verify_command(args.bundle, public_key=args.public_key, say=_say,
                                   fingerprint_pin=args.fingerprint, intact_only=args.intact_only)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "run":
            return command_run(args)
        if args.command == "reference":
            from conformance.reference import cli as reference_cli

            return reference_cli.run(args)
        if args.command == "verify":
            return command_verify(args)
        if args.command == "settle":
            from conformance import settle

            names = ("base_url", "company_id", "headers", "config", "timeout", "verify_tls", "ca_bundle",
                     "settle_timeout")
            return settle.command(args.report_dir, {n: getattr(args, n, None) for n in names}, say=_say,
                                  err=lambda line: print(line, file=sys.stderr))
        if args.command in ("trend", "fleet"):
            return args.handler(args)
        return command_requirements(args)
    except KeyboardInterrupt:
        print("conformance: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # the suite's own defect: one line, documented exit code
        if getattr(args, "verbose", False):
            raise
        print(f"conformance: internal error: {type(error).__name__}: {error} (rerun with --verbose)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
