"""`embedlapse serve` under clients that misbehave: what the server holds (descriptors in
/proc/<pid>/fd, memory in /proc/<pid>/status) after event streams close, beyond the cap on event
streams, with export downloads that are never read, and under a low descriptor limit; and the HTTP/1
requests it must refuse or close (raw sockets, so that no client library mends them). Loopback
only; every loop is bounded and every wait has a timeout. Linux (/proc)."""
import json
import os
import re
import resource
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import BINARY, SHARED, wait_for
from test_explorer import add_checkpoint, marked_run

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads /proc")

URL_LINE = re.compile(r"^serving (.+) at http://127\.0\.0\.1:(\d+)/$")
MAX_EVENT_STREAMS = 64

_started = []


@pytest.fixture(autouse=True)
def no_stray_servers():
    yield
    while _started:
        proc = _started.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class Server:
    """`serve RUN --port 0`, optionally under a lower RLIMIT_NOFILE."""

    def __init__(self, run, nofile=None, owned_by_test=True):
        def limit():
            if nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        self.proc = subprocess.Popen([str(BINARY), "serve", str(run), "--port", "0"], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, preexec_fn=limit)
        if owned_by_test:
            _started.append(self.proc)
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        assert ready, "no URL line within 30 s"
        line = self.proc.stdout.readline().decode().rstrip("\n")
        match = URL_LINE.match(line)
        assert match, f"unexpected first line: {line!r}"
        self.port = int(match.group(2))

    @property
    def descriptors(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    @property
    def rss_mb(self):
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1)) / 1024

    def connect(self, timeout=10):
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def exchange(self, request, timeout=10):
        """Sends `request` on a new connection and reads until the server closes it or `timeout`
        passes: (status, headers, body, closed_by_server)."""
        with self.connect(timeout) as s:
            s.sendall(request)
            return read_response(s, timeout)

    def json(self, path):
        status, _, body, _ = self.exchange(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        assert status == 200, (path, status, body)
        return json.loads(body)

    def steps(self):
        return self.json("/api/run")["steps"]

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        _, err = self.proc.communicate(timeout=20)
        return self.proc.returncode, err.decode()


def read_response(s, timeout, until_complete=False):
    """Reads one response: (status, headers, body, closed). With `until_complete`, stops once a
    Content-Length body is whole instead of waiting for the close."""
    data, closed = b"", False
    deadline = time.time() + timeout
    while time.time() < deadline:
        if until_complete and b"\r\n\r\n" in data:
            head, _, body = data.partition(b"\r\n\r\n")
            length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            if length and len(body) >= int(length.group(1)):
                break
        s.settimeout(max(0.01, deadline - time.time()))
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            closed = True
            break
        if not chunk:
            closed = True
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    match = re.match(r"HTTP/1\.[01] (\d{3}) ", lines[0]) if lines and lines[0] else None
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return (int(match.group(1)) if match else None), headers, body, closed


def dechunk(body):
    """The payload of a chunked body (transfer-encoding: chunked)."""
    out, rest = bytearray(), body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        rest = rest[size + 2:]
    return bytes(out)


def open_event_stream(server, timeout=10):
    """A connected event stream whose first bytes (the status line and `retry:`) have arrived."""
    s = server.connect(timeout)
    s.sendall(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    data = b""
    deadline = time.time() + timeout
    while b"retry: 1000" not in data and time.time() < deadline:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
        if data.startswith(b"HTTP/1.1 503"):
            break
    return s, data


def settles_at(read, bound, timeout):
    """Whether `read()` comes to at most `bound` within `timeout` seconds; the last value read."""
    last = [None]

    def check():
        last[0] = read()
        return last[0] <= bound
    return wait_for(check, timeout=timeout), last[0]


@pytest.fixture
def live(tmp_path):
    run = marked_run(tmp_path / "run")
    server = Server(run)
    assert wait_for(lambda: server.steps() == [0, 10, 20], timeout=60)
    return run, server


# ---------------------------------------------------------------- event streams


def test_closed_event_streams_free_their_sockets_at_once(live):
    """200 clients open an event stream and close it: the server notices each close when it
    happens, not at the stream's next keep-alive write (30 s later), and holds no socket for it."""
    _, server = live
    baseline = server.descriptors
    for burst in range(4):
        streams = [open_event_stream(server) for _ in range(50)]
        assert all(data.startswith(b"HTTP/1.1 200") and b"retry: 1000" in data for _, data in streams), burst
        assert server.descriptors >= baseline + 50
        for s, _ in streams:
            s.close()
        settled, count = settles_at(lambda: server.descriptors, baseline + 3, timeout=2)
        assert settled, f"burst {burst}: {count} descriptors 2 s after 50 streams closed (baseline {baseline})"
    # The server still streams, and still answers.
    s, data = open_event_stream(server)
    assert b"event: checkpoint\ndata: 0\n\n" in data or b"retry: 1000" in data
    s.close()
    code, err = server.stop()
    assert code == 0, err


def test_event_streams_beyond_the_cap_are_refused_with_503(live):
    _, server = live
    streams = [open_event_stream(server) for _ in range(MAX_EVENT_STREAMS)]
    try:
        assert all(data.startswith(b"HTTP/1.1 200") for _, data in streams)
        status, headers, body, _ = server.exchange(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        assert status == 503, (status, body)
        assert body.count(b"\n") == 1 and body.endswith(b"\n") and b"event streams" in body, body
        assert headers.get("retry-after")
        # Other requests are still answered, and a closed stream frees its slot at once.
        assert server.steps() == [0, 10, 20]
        streams.pop()[0].close()

        def reopened():
            s, data = open_event_stream(server)
            s.close()
            return data.startswith(b"HTTP/1.1 200")
        assert wait_for(reopened, timeout=2)
    finally:
        for s, _ in streams:
            s.close()


def test_reconnect_bursts_under_a_low_descriptor_limit_do_not_stop_the_follower(tmp_path):
    """12 bursts of 200 event-stream reconnects under RLIMIT_NOFILE 256, each client gone once its
    stream is idle: no descriptor is kept for a closed stream, none runs out for the run follower,
    and the follower goes on following the live run."""
    run = marked_run(tmp_path / "run")
    server = Server(run, nofile=256)
    assert wait_for(lambda: server.steps() == [0, 10, 20], timeout=60)
    baseline = server.descriptors
    unanswered, peak = 0, baseline
    for burst in range(12):
        for _ in range(200):
            try:
                s, data = open_event_stream(server, timeout=2)
            except OSError:
                unanswered += 1
                break
            with s:
                # Idle: every event so far has arrived; the next write would be a keep-alive in 30 s.
                deadline = time.time() + 2
                while b"data: 20\n\n" not in data and time.time() < deadline:
                    try:
                        chunk = s.recv(4096)
                    except OSError:
                        break
                    if not chunk:
                        break
                    data += chunk
            if b"data: 20\n\n" not in data:
                unanswered += 1
                break
        peak = max(peak, server.descriptors)
        if unanswered:
            break
    assert unanswered == 0, f"a client got no event stream in burst {burst} ({server.descriptors} descriptors open)"
    assert peak <= baseline + 8, f"{peak} descriptors open between bursts (baseline {baseline})"
    add_checkpoint(run, 30, seed=30)
    assert wait_for(lambda: server.steps() == [0, 10, 20, 30], timeout=30), server.steps()
    code, err = server.stop()
    assert code == 0, err
    assert "unreadable directory" not in err and "serving the checkpoints analysed so far" not in err, err


def read_stderr_until(server, text, timeout):
    """What the server wrote on stderr until `text` appeared in it or `timeout` passed."""
    seen = b""
    deadline = time.time() + timeout
    while text.encode() not in seen and time.time() < deadline:
        ready, _, _ = select.select([server.proc.stderr], [], [], max(0.0, deadline - time.time()))
        if not ready:
            break
        chunk = os.read(server.proc.stderr.fileno(), 65536)
        if not chunk:
            break
        seen += chunk
    return seen.decode()


def test_the_follower_outlasts_running_out_of_descriptors(live):
    """The process's descriptor limit drops below what it holds (prlimit), so that listing the run
    fails with EMFILE: the follower says so once, in the system's words, keeps looking, and follows
    the run again once descriptors are back."""
    run, server = live
    soft, hard = resource.prlimit(server.proc.pid, resource.RLIMIT_NOFILE)
    resource.prlimit(server.proc.pid, resource.RLIMIT_NOFILE, (server.descriptors - 2, hard))
    try:
        err = read_stderr_until(server, "Too many open files", timeout=10)
        assert "Too many open files" in err, err
        assert "unreadable directory" not in err and "serving the checkpoints analysed so far" not in err, err
        err += read_stderr_until(server, "\n\n", timeout=2.5)  # a few retries: nothing more said
        assert err.count("Too many open files") == 1, err
    finally:
        resource.prlimit(server.proc.pid, resource.RLIMIT_NOFILE, (soft, hard))
    err = read_stderr_until(server, "following the run again", timeout=10)
    assert "following the run again" in err, err
    add_checkpoint(run, 30, seed=30)
    assert wait_for(lambda: server.steps() == [0, 10, 20, 30], timeout=30), server.steps()
    code, err = server.stop()
    assert code == 0, err


# ---------------------------------------------------------------- the export table


@pytest.fixture(scope="module")
def larger_run(tmp_path_factory):
    """5,000 samples x 60 checkpoints: a table of about 18 MB, analysed in seconds."""
    out = tmp_path_factory.mktemp("resources") / "run"
    subprocess.run([sys.executable, str(SHARED / "reference" / "make_synthetic_run.py"), str(out), "--n", "5000",
                    "--dim", "8", "--checkpoints", "60", "--seed", "3"], check=True, capture_output=True)
    (out / "DONE").write_text("")
    return out


def test_export_downloads_that_are_never_read_hold_bounded_memory(larger_run):
    server = Server(larger_run)
    assert wait_for(lambda: server.json("/api/run")["done"], timeout=120), "not analysed within 120 s"
    request = b"GET /api/export.csv HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    # One whole download first: the table's size, and the allocator warmed up.
    status, headers, body, closed = server.exchange(request, timeout=60)
    assert status == 200 and closed and headers["transfer-encoding"] == "chunked"
    table = dechunk(body)
    assert table.count(b"\n") == 1 + 5000 * 60
    assert len(table) > 15_000_000, len(table)  # 10 unread copies would be 150 MB and more
    time.sleep(0.5)
    baseline, descriptors = server.rss_mb, server.descriptors
    clients = []
    for _ in range(10):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", server.port))
        s.sendall(request)
        clients.append(s)
    peak = baseline
    deadline = time.time() + 4
    while time.time() < deadline:
        peak = max(peak, server.rss_mb)
        time.sleep(0.1)
    assert peak - baseline < 64, f"RSS {baseline:.0f} -> {peak:.0f} MB with 10 unread downloads"
    for s in clients:
        s.close()
    settled, rss = settles_at(lambda: server.rss_mb, baseline + 16, timeout=5)
    assert settled, f"RSS {rss:.0f} MB after the downloads closed (baseline {baseline:.0f} MB)"
    settled, count = settles_at(lambda: server.descriptors, descriptors + 3, timeout=2)
    assert settled, f"{count} descriptors 2 s after the downloads closed (baseline {descriptors})"
    # The server is unharmed: a new download is whole.
    status, _, again, closed = server.exchange(request, timeout=60)
    assert status == 200 and dechunk(again) == table
    code, err = server.stop()
    assert code == 0, err


# ---------------------------------------------------------------- HTTP/1


@pytest.fixture(scope="module")
def served(tmp_path_factory, binary):
    run = marked_run(tmp_path_factory.mktemp("http") / "run")
    server = Server(run, owned_by_test=False)
    try:
        assert wait_for(lambda: server.steps() == [0, 10, 20], timeout=60)
        yield server
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()


@pytest.mark.parametrize("request_bytes, expected", [
    pytest.param(b"GET /api/run HTTP/1.1\r\nConnection: close\r\n\r\n", 400, id="http11-without-host"),
    pytest.param(b"GET /api/run HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n", 400,
                 id="loopback-then-foreign-host"),
    pytest.param(b"GET /api/run HTTP/1.1\r\nHost: evil.example\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", 400,
                 id="foreign-then-loopback-host"),
    pytest.param(b"GET /api/run HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", 400,
                 id="same-host-twice"),
    pytest.param(b"GET /api/run HTTP/1.1\r\nHost: localhost:80@evil.example\r\nConnection: close\r\n\r\n", 403,
                 id="host-with-userinfo"),
    pytest.param(b"GET /api/run HTTP/1.1\r\nHost: user@127.0.0.1\r\nConnection: close\r\n\r\n", 403,
                 id="userinfo-before-loopback"),
    pytest.param(b"GET /api/run HTTP/1.1\r\nHost: 127.0.0.1:8737x\r\nConnection: close\r\n\r\n", 403, id="port-not-digits"),
    pytest.param(b"GET /api/run HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n", 403, id="foreign-host"),
    pytest.param(b"GET http://evil.example/api/run HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", 400,
                 id="absolute-form-foreign"),
    pytest.param(b"GET http://127.0.0.1/api/run HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", 400,
                 id="absolute-form-loopback"),
    pytest.param(b"OPTIONS * HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", 400, id="asterisk-form"),
    pytest.param(b"GET /api/run HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", 200, id="plain"),
    pytest.param(b"GET /api/run HTTP/1.1\r\nHost: [::1]:1\r\nConnection: close\r\n\r\n", 200, id="ipv6-loopback"),
    pytest.param(b"GET /api/run HTTP/1.0\r\n\r\n", 200, id="http10-without-host"),
])
def test_requests_are_refused_or_answered(served, request_bytes, expected):
    status, headers, body, closed = served.exchange(request_bytes)
    assert status == expected, (status, body)
    assert closed, "the server left the connection open after a closing request"
    if expected != 200:
        assert body.count(b"\n") == 1 and body.endswith(b"\n"), body  # one line saying why


def test_http10_without_keep_alive_is_closed_after_the_response(served):
    with served.connect(timeout=5) as s:
        s.sendall(b"GET /api/run HTTP/1.0\r\n\r\n")
        started = time.time()
        status, headers, body, closed = read_response(s, timeout=5)
        assert status == 200 and closed and time.time() - started < 2
        assert json.loads(body)["steps"] == [0, 10, 20]
        assert headers.get("connection", "").lower() == "close"


def test_http10_keep_alive_keeps_the_connection(served):
    with served.connect(timeout=5) as s:
        for _ in range(2):
            s.sendall(b"GET /api/run HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            status, headers, body, closed = read_response(s, timeout=5, until_complete=True)
            assert status == 200 and not closed
            assert headers.get("connection", "").lower() == "keep-alive"
            assert json.loads(body)["steps"] == [0, 10, 20]


def test_http11_keeps_the_connection_and_closes_on_any_spelling_of_close(served):
    with served.connect(timeout=5) as s:
        s.sendall(b"GET /api/run HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        status, _, body, closed = read_response(s, timeout=5, until_complete=True)
        assert status == 200 and not closed
        s.sendall(b"GET /api/run HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Close\r\n\r\n")
        status, headers, body, closed = read_response(s, timeout=5)
        assert status == 200 and closed
        assert json.loads(body)["steps"] == [0, 10, 20]


def test_an_http10_event_stream_is_not_chunked_and_ends_with_the_connection(served):
    with served.connect(timeout=5) as s:
        s.sendall(b"GET /api/events HTTP/1.0\r\n\r\n")
        data = b""
        deadline = time.time() + 5
        while b"data: 20\n\n" not in data and time.time() < deadline:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.0 200"), head
        assert b"transfer-encoding" not in head.lower()
        assert body.startswith(b"retry: 1000\n\n") and b"event: checkpoint\ndata: 20\n\n" in body, body


def test_a_refused_request_after_a_good_one_is_answered_in_order(served):
    """Pipelined: the good request is answered first, then the refusal, then the connection closes."""
    with served.connect(timeout=5) as s:
        s.sendall(b"GET /api/run HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                  b"GET http://evil.example/api/run HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        status, _, rest, closed = read_response(s, timeout=5)
        assert status == 200 and closed
        assert re.search(rb"HTTP/1\.1 400 ", rest), rest
