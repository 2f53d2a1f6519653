"""``conformance reference``: run the reference wallet until SIGINT or SIGTERM.

    conformance reference --port 8080 [--host H] [--prefix P] [--keys camel|snake]
                          [--account THIRD:USER:CUR:BALANCE ...] [--db FILE] [--fault NAME]
                          [--variant NAME ...]
    conformance reference --list-faults
    conformance reference --list-variants

Also runnable as ``python -m conformance.reference.cli``. Errors (a bad account, an
unknown fault, a port in use) print one line to stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import signal
import sqlite3
import sys
import threading
from collections.abc import Sequence

from conformance.reference.accounts import DEFAULT_ACCOUNTS, Account
from conformance.reference.config import DEFAULT_PREFIX, KEY_STYLES, WalletConfig
from conformance.reference.faults import FAULTS
from conformance.reference.server import serve
from conformance.reference.variants import VARIANTS

USAGE_ERROR = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=None, help="TCP port to listen on; 0 picks a free one")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--prefix", default=DEFAULT_PREFIX, help=f"path prefix (default {DEFAULT_PREFIX})")
    parser.add_argument(
        "--keys",
        choices=KEY_STYLES,
        default="camel",
        help="balance data keys: camel (userName) or snake (user_name)",
    )
    parser.add_argument(
        "--account",
        action="append",
        default=None,
        metavar="THIRD:USER:CUR:BALANCE",
        help="an account to provision, repeatable (default: "
        + ", ".join(a.spec() for a in DEFAULT_ACCOUNTS)
        + ")",
    )
    parser.add_argument(
        "--db",
        default=None,
        metavar="FILE",
        help="SQLite file that keeps the ledger across restarts (default: in memory)",
    )
    parser.add_argument("--fault", default=None, metavar="NAME", help="run with one deliberate fault")
    parser.add_argument("--list-faults", action="store_true", help="list the faults and exit")
    parser.add_argument(
        "--variant",
        action="append",
        default=None,
        metavar="NAME",
        help="run a conforming variant (another legal reading of the docs), repeatable",
    )
    parser.add_argument("--list-variants", action="store_true", help="list the conforming variants and exit")


def list_faults(out=None) -> None:
    out = out or sys.stdout
    width = max(len(name) for name in FAULTS)
    for fault in FAULTS.values():
        print(f"{fault.name:<{width}}  {fault.requirement}  {fault.level:<6}  {fault.description}", file=out)


def list_variants(out=None) -> None:
    out = out or sys.stdout
    width = max(len(name) for name in VARIANTS)
    decision_width = max(len(variant.decision) for variant in VARIANTS.values())
    for variant in VARIANTS.values():
        print(f"{variant.name:<{width}}  {variant.decision:<{decision_width}}  {variant.description}", file=out)


def _error(message: str) -> int:
    print(f"conformance reference: error: {message}", file=sys.stderr, flush=True)
    return USAGE_ERROR


def run(args: argparse.Namespace) -> int:
    if args.list_faults:
        list_faults()
        return 0
    if args.list_variants:
        list_variants()
        return 0
    if args.port is None:
        return _error("--port is required (0 picks a free port)")
    if not 0 <= args.port <= 65535:
        return _error(f"--port must be between 0 and 65535, not {args.port}")
    try:
        accounts = tuple(Account.parse(a) for a in args.account) if args.account else DEFAULT_ACCOUNTS
        config = WalletConfig(
            accounts=accounts,
            keys=args.keys,
            prefix=args.prefix,
            db=args.db,
            fault=args.fault,
            variants=frozenset(args.variant or ()),
        )
    except ValueError as exc:
        return _error(str(exc))

    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with serve(config, host=args.host, port=args.port) as url:
            print(f"listening on {url}", flush=True)
            while not stop.wait(0.2):
                pass
    except OSError as exc:
        return _error(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
    except ValueError as exc:  # e.g. the ledger file disagrees with the accounts
        return _error(str(exc))
    except sqlite3.Error as exc:
        return _error(f"cannot use the ledger file {args.db}: {exc}")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="conformance reference", description="Run the reference wallet.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
