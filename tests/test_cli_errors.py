"""Bad input to the suite ends with one clear line and the documented exit code: never a traceback, never green."""

from __future__ import annotations

import contextlib
import datetime as dt
import http.server
import socket
import ssl
import subprocess
import sys
import threading

import pytest

CLI = [sys.executable, "-m", "conformance.cli"]
#: An external target needs a named account; these tests are about the target, not the account.
ACCOUNT = ("--account", "W-1001:86000001:USD")


def run_cli(*args, timeout=120):
    done = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)
    return done.returncode, done.stdout, done.stderr


def assert_one_line_error(stderr: str, fragment: str):
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert fragment in lines[0], lines[0]


@contextlib.contextmanager
def tcp_server(handler):
    """A loopback TCP server whose connections are handed to ``handler(conn)``."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    stop = threading.Event()
    connections = []

    def serve():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            connections.append(conn)
            threading.Thread(target=handler, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.close()
        listener.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def report_dir(tmp_path):
    return str(tmp_path / "report")


def test_connection_refused(report_dir):
    code, _, err = run_cli(
        "run", "--base-url", f"http://127.0.0.1:{free_port()}/api", "--report-dir", report_dir, *ACCOUNT
    )
    assert code == 3
    assert_one_line_error(err, "connection refused")


def test_unresolvable_host(report_dir):
    code, _, err = run_cli(
        "run", "--base-url", "http://wallet.invalid/api", "--report-dir", report_dir, "--timeout", "5", *ACCOUNT
    )
    assert code == 3
    assert_one_line_error(err, "target unreachable")


def test_non_http_port(report_dir):
    def ssh_banner(conn):
        conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
        conn.close()

    with tcp_server(ssh_banner) as port:
        code, _, err = run_cli(
            "run", "--base-url", f"http://127.0.0.1:{port}/api", "--report-dir", report_dir, *ACCOUNT
        )
    assert code == 3
    assert_one_line_error(err, "did not answer with HTTP")


def test_target_that_hangs(report_dir):
    def hang(conn):
        conn.recv(65536)
        threading.Event().wait(30)

    with tcp_server(hang) as port:
        code, _, err = run_cli(
            "run", "--base-url", f"http://127.0.0.1:{port}/api", "--report-dir", report_dir, "--timeout", "1", *ACCOUNT
        )
    assert code == 3
    assert_one_line_error(err, "timed out")


class _HtmlHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = b"<html><body>Welcome to nginx!</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def http_server(handler=_HtmlHandler, tls_context=None):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls_context is not None:
        server.socket = tls_context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_target_that_answers_html(report_dir):
    with http_server() as port:
        code, _, err = run_cli(
            "run", "--base-url", f"http://127.0.0.1:{port}/api", "--report-dir", report_dir, *ACCOUNT
        )
    assert code == 3
    assert_one_line_error(err, "does not speak the webhook API")


def _self_signed(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_tls_certificate_not_trusted(tmp_path, report_dir):
    cert, key = _self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with http_server(tls_context=context) as port:
        code, _, err = run_cli(
            "run", "--base-url", f"https://127.0.0.1:{port}/api", "--report-dir", report_dir, *ACCOUNT
        )
    assert code == 3
    assert_one_line_error(err, "TLS handshake failed")


def test_tls_to_a_plain_http_port(report_dir):
    with http_server() as port:
        code, _, err = run_cli(
            "run", "--base-url", f"https://127.0.0.1:{port}/api", "--report-dir", report_dir, *ACCOUNT
        )
    assert code == 3
    assert_one_line_error(err, "TLS")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--max-examples", "0"], "at least 1"),
        (["--max-examples", "lots"], "invalid int value"),
        (["--keys", "kebab"], "invalid choice"),
        (["--account", "W-1"], "THIRD:USER:CUR"),
        (["--header", "Authorization Bearer hunter2"], "expected 'NAME: VALUE'"),
        (["--base-url", "not a url"], "not an http(s) URL"),
        (["--config", "/no/such/file.toml"], "does not exist"),
        (["--no-such-flag"], "unrecognized arguments"),
    ],
)
def test_bad_usage_or_configuration(args, fragment, report_dir):
    code, out, err = run_cli("run", *args, "--report-dir", report_dir)
    assert code == 2
    assert_one_line_error(err, fragment)
    assert "hunter2" not in err + out


def test_malformed_config_file(tmp_path, report_dir):
    path = tmp_path / "profile.toml"
    path.write_text("[target\nbase_url = ")
    code, _, err = run_cli("run", "--config", str(path), "--report-dir", report_dir)
    assert code == 2
    assert_one_line_error(err, "not valid TOML")
