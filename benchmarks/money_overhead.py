"""Benchmark: what money safety costs per call, side by side with the plain alternative.

    .venv/bin/python benchmarks/money_overhead.py [--calls 300]

Against the embedded reference wallet on loopback, N balance queries and N execute+cancel pairs:

1. plain: one ``requests.Session`` posting the same bodies (no journal, per-read timeout, whole body read);
2. suite: ``conformance.transport.Client`` with a ``MoneyJournal`` (each execute/cancel fsync'd before it is
   sent and its outcome after; the whole-exchange bound in a worker thread; the bounded body read);
3. suite without fsync (``MoneyJournal(fsync=False)``), to separate the disk's share from the rest.

Prints the mean milliseconds per call of each. Not a test: numbers go in the notes.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from pathlib import Path

import requests

from conformance.money_journal import Bounds, MoneyJournal
from conformance.profile import Profile
from conformance.reference import WalletConfig, serve
from conformance.transport import Client

ACCOUNT = {"thirdServerCode": "W-1001", "userName": "86000001", "currency": "USD"}


def bodies(n: int):
    for _ in range(n):
        number = f"bench-{uuid.uuid4().hex[:20]}"
        execute = {**ACCOUNT, "bizType": 2, "operationType": "NORMAL_CLOSE", "amount": "1.00", "amountDigits": 2,
                   "orderId": 1, "requestUniqueNo": number, "requestTime": int(time.time() * 1000), "ip": "127.0.0.1"}
        cancel = {**ACCOUNT, "bizType": 2, "amount": "1.00", "amountDigits": 2, "orderId": 1,
                  "requestUniqueNo": f"c-{number}", "reverseRequestUniqueNo": number,
                  "requestTime": int(time.time() * 1000), "ip": "127.0.0.1", "cancelRemark": "bench"}
        yield execute, cancel


def headers() -> dict[str, str]:
    return {"trace": uuid.uuid4().hex, "companyId": "439", "timestamp": str(int(time.time() * 1000)),
            "Content-Type": "application/json"}


def plain(url: str, n: int) -> float:
    session = requests.Session()
    calls = [("/get-user-amount", None), ("/external-system-credit-limit-adjustment", "execute"),
             ("/cancel-external-system-credit-limit-adjustment", "cancel")]
    started = time.perf_counter()
    for execute, cancel in bodies(n):
        for path, which in calls:
            body = {"execute": execute, "cancel": cancel}.get(which, ACCOUNT)
            response = session.post(url + path, data=json.dumps(body), headers=headers(), timeout=10)
            assert response.content
    session.close()
    return (time.perf_counter() - started) * 1000 / (3 * n)


def suite(url: str, n: int, fsync: bool) -> float:
    with tempfile.TemporaryDirectory() as directory:
        money = MoneyJournal(Path(directory), bounds=Bounds(max_outstanding=None), fsync=fsync)
        client = Client(Profile(base_url=url, rate_limit=0), money=money)
        started = time.perf_counter()
        for execute, cancel in bodies(n):
            client.call("getUserAmount", ACCOUNT, origin="bench")
            client.call("executeAdjustment", execute, origin="bench")
            client.call("cancelAdjustment", cancel, origin="bench")
        took = (time.perf_counter() - started) * 1000 / (3 * n)
        client.close()
        money.close()
    return took


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    n = parser.parse_args().calls
    with tempfile.TemporaryDirectory() as directory, serve(WalletConfig(db=Path(directory) / "w.sqlite")) as url:
        plain(url, 20), suite(url, 20, True)  # warm up
        print(f"plain requests.Session          {plain(url, n):7.3f} ms/call")
        print(f"suite Client + journal (fsync)  {suite(url, n, True):7.3f} ms/call")
        print(f"suite Client + journal (no sync){suite(url, n, False):7.3f} ms/call")


if __name__ == "__main__":
    main()
