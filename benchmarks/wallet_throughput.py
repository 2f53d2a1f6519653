"""Throughput and latency of the reference wallet over loopback.

    python benchmarks/wallet_throughput.py [--rounds 3] [--duration 5] [--connections 16] [--wrk-threads 2]
    python benchmarks/wallet_throughput.py --operations [--requests 2000] [--threads 4] [--in-process] [--db FILE]

Default (needs ``wrk``): the wallet and a plain stdlib ``ThreadingHTTPServer`` that
answers the same balance envelope, each in its own subprocess, are put under the
same wrk load (keep-alive POSTs of one balance query), alternately, ``--rounds``
times; prints each round, the medians and the ratio wallet / stdlib.

``--operations``: starts the wallet (a subprocess by default, so client and server do not share a
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
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

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


# ---------------------------------------------------------------- wrk: the wallet against a stdlib server

BALANCE_PATH = "/api/cats-gateway/get-user-amount"
WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = '%(body)s'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["trace"] = "bench-trace"
wrk.headers["companyId"] = "439"
wrk.headers["timestamp"] = "1764064800000"
"""


class _StdlibBalance(BaseHTTPRequestHandler):
    """The same envelope the wallet answers to a balance query, from the stdlib's threading server."""

    protocol_version = "HTTP/1.1"  # keep-alive, like the wallet
    disable_nagle_algorithm = True  # TCP_NODELAY, like the wallet (else headers and body wait for a delayed ACK)

    def do_POST(self) -> None:
        started = time.perf_counter()
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        envelope = {
            "code": "0", "msg": "Success", "bizCode": "",
            "tm": int((time.perf_counter() - started) * 1000), "trace": self.headers.get("trace", ""),
            "msgParams": None,
            "data": {"userName": body.get("userName"), "currency": body.get("currency"), "amount": "100000.00",
                     "amountDigits": 2},
            "ok": True, "fail": False,
        }
        payload = json.dumps(envelope, separators=(",", ":")).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *_: object) -> None:
        pass


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # wrk drops its connections at the end
            super().handle_error(request, client_address)


def serve_stdlib() -> None:
    """``--stdlib-server``: serve the stdlib baseline on a free port until killed."""
    server = _QuietServer(("127.0.0.1", 0), _StdlibBalance)
    server.daemon_threads = True
    print(f"listening on http://127.0.0.1:{server.server_address[1]}/api/cats-gateway", flush=True)
    server.serve_forever()


@contextlib.contextmanager
def subprocess_server(command: list[str]) -> Iterator[tuple[str, int]]:
    """(base URL, pid) of a server subprocess, stopped when the block exits."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline().strip()
        if not line.startswith("listening on "):
            raise SystemExit(f"{command} did not start: {line!r}")
        yield line.removeprefix("listening on "), process.pid
    finally:
        process.terminate()
        process.wait(timeout=15)
        process.stdout.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used (Linux /proc): cost per request, whatever else runs."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(url: str, script: Path, args: argparse.Namespace) -> tuple[float, str]:
    """(requests/second, latency p50 text) of one bounded wrk run; non-2xx answers fail the benchmark."""
    command = ["wrk", f"-t{args.wrk_threads}", f"-c{args.connections}", f"-d{args.duration}s", "--latency",
               "-s", str(script), url.removesuffix("/api/cats-gateway") + BALANCE_PATH]
    output = subprocess.run(command, capture_output=True, text=True, timeout=args.duration + 30, check=True).stdout
    if "Non-2xx" in output or "Socket errors" in output:
        raise SystemExit(f"wrk saw errors:\n{output}")
    rate = float(re.search(r"Requests/sec:\s+([0-9.]+)", output).group(1))
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE).group(1)
    return rate, p50


def compare(args: argparse.Namespace) -> int:
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install -y wrk); use --operations for the requests-based run")
        return 2
    body = json.dumps(ACCOUNT, separators=(",", ":"))
    servers = {
        "wallet": [sys.executable, "-m", "conformance.reference.cli", "--port", "0"],
        "stdlib": [sys.executable, __file__, "--stdlib-server"],
    }
    rates: dict[str, list[float]] = {name: [] for name in servers}
    costs: dict[str, list[float]] = {name: [] for name in servers}  # server CPU microseconds per request
    print(f"wrk -t{args.wrk_threads} -c{args.connections} -d{args.duration}s, keep-alive POST balance query, "
          f"{args.rounds} rounds, servers alternate")
    with tempfile.TemporaryDirectory() as scratch:
        script = Path(scratch) / "balance.lua"
        script.write_text(WRK_SCRIPT % {"body": body})
        with subprocess_server(servers["wallet"]) as wallet, subprocess_server(servers["stdlib"]) as stdlib:
            targets = {"wallet": wallet, "stdlib": stdlib}
            for name, (url, _) in targets.items():  # same envelope from both, and a warm-up
                answer = requests.post(url + "/get-user-amount", json=ACCOUNT, headers={**HEADERS, "trace": "t"})
                assert answer.json()["code"] == "0", (name, answer.text)
            for round_number in range(1, args.rounds + 1):
                for name, (url, pid) in targets.items():
                    cpu_before = cpu_seconds(pid)
                    rate, p50 = run_wrk(url, script, args)
                    cost = (cpu_seconds(pid) - cpu_before) / (rate * args.duration) * 1e6
                    rates[name].append(rate)
                    costs[name].append(cost)
                    print(f"round {round_number}  {name:<7} {rate:>9.0f} req/s  p50 {p50:>8}  "
                          f"server CPU {cost:>5.0f} us/request")
    wallet_rate, stdlib_rate = statistics.median(rates["wallet"]), statistics.median(rates["stdlib"])
    wallet_cost, stdlib_cost = statistics.median(costs["wallet"]), statistics.median(costs["stdlib"])
    print(f"median  wallet {wallet_rate:.0f} req/s, stdlib ThreadingHTTPServer {stdlib_rate:.0f} req/s, "
          f"ratio {wallet_rate / stdlib_rate:.2f}x")
    print(f"median server CPU per request: wallet {wallet_cost:.0f} us, stdlib {stdlib_cost:.0f} us "
          f"(efficiency ratio {stdlib_cost / wallet_cost:.2f}x; steadier than req/s on a shared machine)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--operations", action="store_true", help="per-operation run with requests threads")
    parser.add_argument("--rounds", type=int, default=3, help="wrk rounds per server (default 3)")
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run (default 5)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--wrk-threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--stdlib-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=int, default=2000, help="requests per operation (default 2000)")
    parser.add_argument("--threads", type=int, default=4, help="client threads (default 4)")
    parser.add_argument("--in-process", action="store_true", help="run the wallet in this process")
    parser.add_argument("--db", default=None, help="SQLite file for the ledger (default: in memory)")
    args = parser.parse_args(argv)
    if args.stdlib_server:
        serve_stdlib()
        return 0
    if not args.operations:
        return compare(args)

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
