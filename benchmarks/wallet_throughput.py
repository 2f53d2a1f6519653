"""Throughput and latency of the reference wallet, per operation, over loopback.

    python benchmarks/wallet_throughput.py [--requests 2000] [--threads 4] [--in-process] [--db FILE]

Starts the wallet (a subprocess by default, so client and server do not share a
GIL; ``--in-process`` runs it in this process), then for each operation sends a
bounded number of requests from several threads, each with its own keep-alive
``requests.Session``, and prints requests/second and p50/p95/p99 latency.

The execute phase debits 0.01 USD per request (OPEN_POSITION) with unique
requestUniqueNo; the cancel phase reverses every one of them, so the ledger must
end where it started, which is checked at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal

import requests

ACCOUNT = {"thirdServerCode": "W-1001", "userName": "86000001", "currency": "USD"}
HEADERS = {"companyId": "439", "timestamp": "1764064800000", "Content-Type": "application/json"}


@contextlib.contextmanager
def wallet(in_process: bool, db: str | None) -> Iterator[str]:
    if in_process:
        from conformance.reference import WalletConfig, serve

        with serve(WalletConfig(db=db)) as url:
            yield url
        return
    command = [sys.executable, "-m", "conformance.reference.cli", "--port", "0"]
    if db:
        command += ["--db", db]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline().strip()
        if not line.startswith("listening on "):
            raise SystemExit(f"the wallet did not start: {line!r}")
        yield line.removeprefix("listening on ")
    finally:
        process.terminate()
        process.wait(timeout=15)
        process.stdout.close()


def execute_body(number: str) -> dict:
    return {
        **ACCOUNT,
        "bizType": 1,
        "operationType": "OPEN_POSITION",
        "amount": "0.01",
        "amountDigits": 2,
        "orderId": 7200000000000001,
        "requestUniqueNo": number,
        "requestTime": 1764064800000,
        "ip": "127.0.0.1",
    }


def cancel_body(reverse: str) -> dict:
    body = execute_body(f"C-{reverse}")
    del body["operationType"]
    return {**body, "reverseRequestUniqueNo": reverse, "cancelRemark": "benchmark"}


def run_phase(url: str, path: str, bodies: list[dict], threads: int) -> tuple[float, list[float], int]:
    """Send every body once, spread over ``threads`` keep-alive sessions; (seconds, latencies, failures)."""
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    barrier = threading.Barrier(threads + 1)

    def worker(share: list[dict]) -> None:
        session = requests.Session()
        session.post(url + "/get-user-amount", json=ACCOUNT, headers={**HEADERS, "trace": "warm-up"})
        local, bad = [], 0
        barrier.wait()
        for index, body in enumerate(share):
            headers = {**HEADERS, "trace": f"bench-{index}"}
            started = time.perf_counter()
            response = session.post(url + path, json=body, headers=headers, timeout=10)
            local.append(time.perf_counter() - started)
            if response.status_code != 200 or response.json().get("code") != "0":
                bad += 1
        session.close()
        with lock:
            latencies.extend(local)
            failures[0] += bad

    workers = [threading.Thread(target=worker, args=(bodies[i::threads],)) for i in range(threads)]
    for thread in workers:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in workers:
        thread.join()
    return time.perf_counter() - started, latencies, failures[0]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def balance(url: str) -> Decimal:
    response = requests.post(url + "/get-user-amount", json=ACCOUNT, headers={**HEADERS, "trace": "check"})
    return Decimal(response.json()["data"]["amount"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per operation (default 2000)")
    parser.add_argument("--threads", type=int, default=4, help="client threads (default 4)")
    parser.add_argument("--in-process", action="store_true", help="run the wallet in this process")
    parser.add_argument("--db", default=None, help="SQLite file for the ledger (default: in memory)")
    args = parser.parse_args(argv)

    numbers = [f"E-{uuid.uuid4().hex[:24]}" for _ in range(args.requests)]
    phases: list[tuple[str, str, Callable[[int], dict]]] = [
        ("balance", "/get-user-amount", lambda i: ACCOUNT),
        ("execute", "/external-system-credit-limit-adjustment", lambda i: execute_body(numbers[i])),
        ("cancel", "/cancel-external-system-credit-limit-adjustment", lambda i: cancel_body(numbers[i])),
    ]
    where = "in-process" if args.in_process else "subprocess"
    store = args.db or "in-memory SQLite"
    print(
        f"reference wallet ({where}, {store}); {args.requests} requests per operation, {args.threads} threads"
    )
    print(f"{'operation':<10} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'failed':>7}")
    failed = 0
    with wallet(args.in_process, args.db) as url:
        opening = balance(url)
        for name, path, make in phases:
            bodies = [make(i) for i in range(args.requests)]
            seconds, latencies, failures = run_phase(url, path, bodies, args.threads)
            failed += failures
            print(
                f"{name:<10} {len(latencies) / seconds:>8.0f} {statistics.median(latencies) * 1000:>8.2f} "
                f"{percentile(latencies, 0.95) * 1000:>8.2f} {percentile(latencies, 0.99) * 1000:>8.2f} "
                f"{failures:>7}"
            )
        closing = balance(url)
    consistent = closing == opening
    print(f"ledger check: opening {opening} closing {closing} -> {'ok' if consistent else 'MISMATCH'}")
    return 0 if consistent and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
