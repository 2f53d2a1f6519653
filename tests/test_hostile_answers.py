"""Hostile answers are bounded: a gzip bomb, a 50 MB body and a trickling body leave memory and time bounded.

A tiny stdlib server plays the hostile wallet. The memory trials run the suite's client in a fresh
interpreter and read its peak RSS (``ru_maxrss``), so the numbers are the client's own. ~10 s in all.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import subprocess
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from conformance.profile import Profile
from conformance.transport import Client

BOMB_INFLATED = 512 * 1024 * 1024  # 512 MiB of zeros, ~0.5 MiB on the wire
BIG_BODY = 50 * 1024 * 1024
CAP = 1 << 20


def _bomb() -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = bytes(1 << 20)
    parts = [compressor.compress(block) for _ in range(BOMB_INFLATED >> 20)]
    return b"".join(parts) + compressor.flush()


@pytest.fixture(scope="module")
def hostile():
    bomb = _bomb()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            kind = self.path.rsplit("/", 1)[-1]
            if kind == "trickle":
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "100000")
                self.end_headers()
                with contextlib.suppress(OSError):
                    for _ in range(100000):
                        self.wfile.write(b" ")
                        self.wfile.flush()
                        time.sleep(0.1)
                return
            body, headers = (bomb, {"Content-Encoding": "gzip"}) if kind == "bomb" else (b"x" * BIG_BODY, {})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            with contextlib.suppress(OSError):
                self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


PEAK_SCRIPT = """
import json, sys
from conformance.exchange import Request
from conformance.profile import Profile
from conformance.transport import Client
def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
client = Client(Profile(base_url=sys.argv[1], timeout=30.0))
baseline = status("VmRSS")
exchange = client.send(Request("POST", sys.argv[1] + "/" + sys.argv[2], (("Content-Type", "application/json"),), b"{}"),
                       operation=None, origin="test")
print(json.dumps({"baseline_kib": baseline, "peak_kib": status("VmHWM"), "kept": len(exchange.response.body),
                  "truncated": getattr(exchange.response, "truncated", None)}))
"""


@pytest.mark.parametrize("kind", ["bomb", "big"])
def test_a_hostile_body_leaves_memory_bounded(hostile, kind):
    done = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, hostile, kind], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    numbers = json.loads(done.stdout)
    grown = (numbers["peak_kib"] - numbers["baseline_kib"]) / 1024
    print(f"\n[{kind}] peak RSS {numbers['peak_kib'] / 1024:.1f} MiB (grew {grown:.1f} MiB), "
          f"kept {numbers['kept']} bytes, truncated: {numbers['truncated']}")
    assert numbers["kept"] <= CAP
    assert numbers["truncated"] and "truncated" in numbers["truncated"]
    assert grown < 40, f"the client's memory grew {grown:.0f} MiB reading one answer"


def test_a_trickling_answer_is_cut_at_the_whole_exchange_bound(hostile):
    from conformance.exchange import Request

    client = Client(Profile(base_url=hostile, timeout=1.0))
    started = time.monotonic()
    exchange = client.send(Request("POST", hostile + "/trickle", (), b"{}"), operation=None, origin="test")
    took = time.monotonic() - started
    client.close()
    print(f"\n[trickle] cut after {took:.2f} s (bound 1 s): {exchange.error or exchange.response.truncated}")
    assert took < 2.5
    assert exchange.response is None or exchange.response.truncated


def test_generated_calls_read_through_the_same_bound(hostile):
    """Schemathesis' own session: the response hook bounds the body before anyone reads ``content``."""
    from conformance.transport import bounded_response_hook

    with requests.Session() as session:
        response = session.post(hostile + "/bomb", data=b"{}", hooks={"response": [bounded_response_hook(CAP, 30)]})
    assert len(response.content) <= CAP
    assert "truncated" in response.request.conformance_truncated


def test_a_small_gzip_answer_is_decoded_whole(hostile):
    """The bound cuts only what exceeds it: an ordinary compressed answer arrives intact."""
    from conformance.transport import read_bounded

    class Raw:
        def __init__(self, data):
            self.headers = {"content-encoding": "gzip"}
            self.data = data

        def read(self, amount, decode_content=False):
            chunk, self.data = self.data[:amount], self.data[amount:]
            return chunk

        def close(self):
            pass

    payload = json.dumps({"ok": True, "code": "0", "data": {"pad": "y" * 200000}}).encode()
    body, note = read_bounded(Raw(gzip.compress(payload)), CAP)
    assert body == payload and note is None


VERIFY_SCRIPT = """
import json, sys
from conformance.reporting.evidence import verify_bundle
report = verify_bundle(sys.argv[1])
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"peak_kib": peak, "changed": sorted(report.changed)}))
"""


def test_verify_streams_a_bomb_member_instead_of_inflating_it(tmp_path):
    """A bundle whose member inflates to 256 MiB while its manifest says 10 bytes: changed, memory bounded."""
    import zipfile

    bundle = tmp_path / "evidence-bomb.zip"
    manifest = {"files": [{"path": "summary.json", "sha256": "0" * 64, "size": 10}]}
    with zipfile.ZipFile(bundle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", json.dumps(manifest))
        with archive.open("summary.json", "w") as member:
            block = bytes(1 << 20)
            for _ in range(256):
                member.write(block)
    done = subprocess.run([sys.executable, "-c", VERIFY_SCRIPT, str(bundle)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    numbers = json.loads(done.stdout)
    print(f"\n[verify bomb member] peak RSS {numbers['peak_kib'] / 1024:.1f} MiB, changed {numbers['changed']}")
    assert "summary.json" in numbers["changed"]
    assert numbers["peak_kib"] < 150 * 1024
