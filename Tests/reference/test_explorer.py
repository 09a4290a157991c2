"""`embedlapse serve`: the explorer's HTTP API against the run and against --dump-data, live
updates over Server-Sent Events, and refusal of everything that is not its own (traversal in
every encoding, sent on raw sockets so that no client normalises it). Standard library only."""
import http.client
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from conftest import BINARY, ROOT, frames_in, run_cli, wait_for
from test_cli import tiny_run

URL_LINE = re.compile(r"^serving (.+) at http://127\.0\.0\.1:(\d+)/$")

_started = []
# Servers started under another process (strace), which a kill of that process would leave running.
_grandchildren = []


@pytest.fixture(autouse=True)
def no_stray_servers():
    """A failing test must not leave its server running."""
    yield
    while _grandchildren:
        try:
            os.kill(_grandchildren.pop(), signal.SIGKILL)
        except ProcessLookupError:
            pass
    while _started:
        proc = _started.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def marked_run(root, **kwargs):
    """tiny_run, each checkpoint marked complete as the Python helper marks it (no settle wait)."""
    run = tiny_run(root, **kwargs)
    for folder in run.glob("checkpoint-*"):
        (folder / "embeddings.npy.complete").write_text("")
    return run


def add_checkpoint(run, step, seed, n=60, d=8):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    folder = run / f"checkpoint-{step}"
    folder.mkdir()
    tmp = folder / ".embeddings.npy.tmp"
    with open(tmp, "wb") as f:
        np.save(f, (rng.standard_normal((n, d)) + 8 * np.eye(3, d)[labels]).astype(np.float32))
    tmp.rename(folder / "embeddings.npy")
    (folder / "embeddings.npy.complete").write_text("")


class Server:
    def __init__(self, run, *extra, owned_by_test=True):
        self.proc = subprocess.Popen([str(BINARY), "serve", str(run), "--port", "0", *map(str, extra)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if owned_by_test:
            _started.append(self.proc)
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        assert ready, "no URL line within 30 s"
        self.line = self.proc.stdout.readline().decode()
        match = URL_LINE.match(self.line.rstrip("\n"))
        assert match, f"unexpected first line: {self.line!r}"
        self.port = int(match.group(2))
        self.base = f"http://127.0.0.1:{self.port}"

    def get(self, path, headers=None):
        request = urllib.request.Request(self.base + path, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def json(self, path):
        status, _, body = self.get(path)
        assert status == 200, (path, status, body)
        return json.loads(body)

    def steps(self):
        return self.json("/api/run")["steps"]

    def raw(self, request_bytes, timeout=10):
        """Sends bytes as they are on a new connection; returns the status code, or None if closed without one."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall(request_bytes)
            data = b""
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        match = re.match(rb"HTTP/1\.[01] (\d{3}) ", data)
        return int(match.group(1)) if match else None

    def stop(self, sig=signal.SIGINT, timeout=20):
        self.proc.send_signal(sig)
        _, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, err.decode()


@pytest.fixture(scope="module")
def served(tmp_path_factory, binary):
    run = marked_run(tmp_path_factory.mktemp("explorer") / "run")
    server = Server(run, owned_by_test=False)
    try:
        assert wait_for(lambda: server.steps() == [0, 10, 20], timeout=60), server.steps()
        yield run, server
        code, err = server.stop()
        assert code == 0, err
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()


@pytest.fixture(scope="module")
def dumped(served, tmp_path_factory):
    run, _ = served
    out = tmp_path_factory.mktemp("explorer-dump")
    run_cli("render", run, "--tween", "1", "--dump-data", out)
    return out


# ---------------------------------------------------------------- the API against the run


def test_prints_one_url_line_and_binds_to_loopback_only(served):
    run, server = served
    assert server.line == f"serving {run} at http://127.0.0.1:{server.port}/\n"
    # The listening socket, from the kernel's own table: 127.0.0.1 only, not 0.0.0.0 or ::.
    listening = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            local, state = row.split()[1], row.split()[3]
            address, port = local.split(":")
            if state == "0A" and int(port, 16) == server.port:
                listening.append(address)
    assert listening == ["0100007F"], listening


def test_run_document_describes_the_run(served):
    _, server = served
    document = server.json("/api/run")
    assert document["ready"] is True
    assert document["sample_count"] == 60 and document["dimension"] == 8
    assert document["class_names"] == ["alpha", "beta", "gamma"]
    assert document["labels"] == (np.arange(60) % 3).tolist()
    assert document["steps"] == [0, 10, 20]
    assert document["view_half_extent"] == pytest.approx(1.08)
    assert document["projection"] == "PCA" and document["projection_field"] == "pca"


@pytest.mark.parametrize("step", [0, 10, 20])
def test_points_are_the_aligned_coordinates_of_dump_data(served, dumped, step):
    _, server = served
    status, headers, body = server.get(f"/api/checkpoints/{step}/points")
    assert status == 200 and headers["Content-Type"] == "application/octet-stream"
    assert len(body) == 60 * 2 * 4
    points = np.frombuffer(body, dtype="<f4").reshape(60, 2)
    expected = np.load(dumped / f"aligned-{step}.npy")
    np.testing.assert_allclose(points, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("step", [0, 20])
def test_scores_are_the_films_scores(served, dumped, step):
    _, server = served
    scores = server.json(f"/api/checkpoints/{step}/scores")
    assert scores["step"] == step and scores["k"] >= 1
    top = json.loads((dumped / f"outliers-{step}.json").read_text())
    assert [e["index"] for e in scores["outliers"][: len(top["indices"])]] == top["indices"]
    np.testing.assert_allclose([e["value"] for e in scores["outliers"][: len(top["scores"])]], top["scores"], rtol=1e-6)
    agreement = np.load(dumped / f"label_agreement-{step}.npy")
    np.testing.assert_allclose(scores["label_agreement"], agreement, atol=1e-7)
    assert scores["mean_label_agreement"] == pytest.approx(float(agreement.mean()), abs=1e-6)


def test_a_samples_history_is_the_films_numbers_at_every_step(served, dumped):
    run, server = served
    labels = np.load(run / "labels.npy")
    dynamics = np.genfromtxt(dumped / "dynamics.csv", delimiter=",", names=True)
    for index in (0, 7, 59):
        sample = server.json(f"/api/samples/{index}")
        assert sample["index"] == index and sample["steps"] == [0, 10, 20]
        assert sample["label"] == labels[index] and sample["class_name"] == ["alpha", "beta", "gamma"][labels[index]]
        for i, step in enumerate(sample["steps"]):
            aligned = np.load(dumped / f"aligned-{step}.npy")[index]
            assert np.float32(sample["x"][i]) == aligned[0] and np.float32(sample["y"][i]) == aligned[1]
            assert np.float32(sample["outlier_score"][i]) == np.load(dumped / f"outlier-scores-{step}.npy")[index]
            assert np.float32(sample["label_agreement"][i]) == np.load(dumped / f"label_agreement-{step}.npy")[index]
            assert np.float32(sample["label_margin"][i]) == np.load(dumped / f"label_margin-{step}.npy")[index]
        # The running kNN-AUM at the last step is the whole run's (dynamics.csv).
        row = dynamics[dynamics["index"] == index][0]
        assert sample["knn_aum"][-1] == pytest.approx(row["knn_aum"], abs=1e-5)


def test_a_samples_neighbours_are_sklearns_cosine_neighbours(served):
    from sklearn.neighbors import NearestNeighbors
    run, server = served
    embeddings = np.load(run / "checkpoint-20" / "embeddings.npy").astype(np.float64)
    k = server.json("/api/checkpoints/20/scores")["k"]
    distances, expected = NearestNeighbors(n_neighbors=k + 1, metric="cosine", algorithm="brute").fit(embeddings).kneighbors(embeddings)
    agree = 0
    for index in range(0, 60, 6):
        got = server.json(f"/api/samples/{index}")["neighbours"][-1]
        assert len(got) == k and index not in got
        # The same set (ties at the k-th distance aside), nearest first.
        agree += set(got) == set(expected[index, 1:])
        d = 1 - embeddings[got] @ embeddings[index] / np.linalg.norm(embeddings[got], axis=1) / np.linalg.norm(embeddings[index])
        assert np.all(np.diff(d) >= -1e-6)
    assert agree >= 9


def test_a_samples_image_is_its_images_npy_pixels(served):
    run, server = served
    images = np.load(run / "images.npy")
    assert server.json("/api/run")["thumbnail"] == {"width": 12, "height": 12}
    for index in (0, 33):
        status, headers, body = server.get(f"/api/samples/{index}/image.png")
        assert status == 200 and headers["Content-Type"] == "image/png"
        raw = subprocess.run(["ffmpeg", "-v", "error", "-i", "-", "-f", "rawvideo", "-pix_fmt", "gray", "-"],
                             input=body, capture_output=True, check=True).stdout
        assert np.array_equal(np.frombuffer(raw, np.uint8).reshape(12, 12), images[index])


def test_the_loss_is_what_was_logged_up_to_the_newest_checkpoint(served):
    _, server = served
    loss = server.json("/api/loss")
    assert [step for step, _ in loss["training"]] == list(range(0, 21, 2))
    assert all(value == pytest.approx(2.0 / (1 + step)) for step, value in loss["training"])
    assert loss["evaluation"] == []


def test_the_downloaded_table_is_the_export_commands(served, tmp_path):
    run, server = served
    status, headers, body = server.get("/api/export.csv")
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    assert "attachment" in headers["Content-Disposition"]
    run_cli("export", run, "-o", tmp_path / "t.csv")
    assert body == (tmp_path / "t.csv").read_bytes()


@pytest.mark.parametrize("path", ["/api/samples/60", "/api/samples/01", "/api/samples/-1", "/api/samples/1/",
                                  "/api/samples/60/image.png", "/api/samples/1/image.jpg", "/api/samples/1/image.png/x",
                                  "/api/samples", "/api/samples/", "/api/export.csv/", "/api/loss/x"])
def test_unknown_samples_are_not_found(served, path):
    _, server = served
    assert server.get(path)[0] == 404, path


def test_a_run_without_images_has_no_image_route(tmp_path, binary):
    run = marked_run(tmp_path / "run")
    (run / "images.npy").unlink()
    server = Server(run)
    assert wait_for(lambda: server.steps() == [0, 10, 20], timeout=60)
    assert server.json("/api/run")["thumbnail"] is None
    assert server.get("/api/samples/0/image.png")[0] == 404
    assert server.get("/api/samples/0")[0] == 200
    assert server.stop()[0] == 0


def test_without_labels_the_label_fields_are_null(tmp_path, binary):
    run = marked_run(tmp_path / "run")
    for name in ("labels.npy", "class_names.json"):
        (run / name).unlink()
    server = Server(run)
    assert wait_for(lambda: server.steps() == [0, 10, 20], timeout=60)
    assert server.json("/api/run")["labels"] is None
    scores = server.json("/api/checkpoints/10/scores")
    assert scores["label_agreement"] is None and scores["mean_label_agreement"] is None and scores["label_issues"] == []
    sample = server.json("/api/samples/4")
    assert sample["label"] is None and sample["class_name"] is None
    assert sample["label_agreement"] == [None] * 3 and sample["knn_aum"] == [None] * 3
    assert len(sample["outlier_score"]) == 3 and None not in sample["outlier_score"]
    assert server.stop()[0] == 0


def test_unknown_steps_are_not_found(served):
    _, server = served
    for path in ("/api/checkpoints/5/points", "/api/checkpoints/30/scores", "/api/checkpoints/010/points",
                 "/api/checkpoints/+10/points", "/api/checkpoints/1e1/points", "/api/checkpoints/10/thumbnails"):
        assert server.get(path)[0] == 404, path


# ---------------------------------------------------------------- the page, built into the binary


@pytest.mark.parametrize("path,name,kind", [
    ("/", "index.html", "text/html"), ("/app.js", "app.js", "text/javascript"),
    ("/style.css", "style.css", "text/css"), ("/favicon.svg", "favicon.svg", "image/svg+xml")])
def test_assets_are_served_byte_for_byte(served, path, name, kind):
    _, server = served
    status, headers, body = server.get(path)
    assert status == 200 and headers["Content-Type"].startswith(kind)
    assert body == (ROOT / "Sources" / "Explorer" / "Page" / name).read_bytes()
    assert not any(h.lower().startswith("access-control-") for h in headers)


def test_the_page_script_parses_as_an_es_module(tmp_path):
    """Until the browser tests come: at least the module parses (node, where installed)."""
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.skip("node is not installed")
    module = tmp_path / "app.mjs"
    module.write_bytes((ROOT / "Sources" / "Explorer" / "Page" / "app.js").read_bytes())
    proc = subprocess.run([node, "--check", str(module)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_the_page_has_a_strict_content_security_policy(served):
    _, server = served
    policy = server.get("/")[1]["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy and "connect-src 'self'" in policy


# ---------------------------------------------------------------- nothing else


TRAVERSALS = [
    "/..", "/../", "/../etc/passwd", "/../../../../etc/passwd", "/%2e%2e/etc/passwd", "/%2E%2E/%2E%2E/etc/passwd",
    "/..%2fetc%2fpasswd", "/..%2Fetc%2Fpasswd", "/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/%252e%252e/etc/passwd",
    "/%252e%252e%252fetc%252fpasswd", "/..%252f..%252fetc%252fpasswd", "/%c0%ae%c0%ae/etc/passwd",
    "/..%5c..%5cetc%5cpasswd", "/..\\..\\etc\\passwd", "//etc/passwd", "/etc/passwd", "/%2fetc%2fpasswd",
    "http://127.0.0.1/etc/passwd", "/app.js%00", "/%00", "/app.js%00.png", "/index.html/..", "/./app.js",
    "/app.js/", "/api/../app.js", "/api/checkpoints/0/../../run", "/api/checkpoints/..%2f..%2frun/points",
    "/api/checkpoints/0%2fpoints", "/assets/explorer/app.js", "/Sources/Explorer/ExplorerServer.swift",
    "/api/", "/api/checkpoints/", "/api/checkpoints/0/", "/checkpoint-0/embeddings.npy", "/labels.npy",
    "/" + "a" * 600,
]


@pytest.mark.parametrize("target", TRAVERSALS)
def test_anything_but_the_routes_is_not_found(served, target):
    _, server = served
    status = server.raw(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    # An absolute-form target is refused before routing (test_server_resources.py).
    assert status == (400 if target.startswith("http:") else 404), (target, status)


def test_raw_nul_bytes_are_refused(served):
    _, server = served
    status = server.raw(b"GET /app.js\x00/../../etc/passwd HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    assert status in (400, 404, None), status  # the HTTP parser refuses it before routing, or the route does


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
def test_only_get_is_answered(served, method):
    _, server = served
    status = server.raw(f"{method} /api/run HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
    assert status == 404, (method, status)


def test_request_sizes_are_bounded(served):
    _, server = served
    body = server.raw(b"GET /api/run HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
    assert body == 413
    huge_header = b"GET /api/run HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 20_000 + b"\r\nConnection: close\r\n\r\n"
    assert server.raw(huge_header) in (400, 431, None)


def test_a_foreign_host_header_is_refused(served):
    """DNS rebinding: a page of another site whose name now points at 127.0.0.1 cannot read the run."""
    _, server = served
    assert server.get("/api/run", headers={"Host": f"attacker.example:{server.port}"})[0] == 403
    assert server.get("/api/run", headers={"Host": f"localhost:{server.port}"})[0] == 200


# ---------------------------------------------------------------- live


def read_events(response, count, timeout):
    """The next `count` (event, data) pairs of an SSE stream."""
    events, event, data = [], None, None
    deadline = time.time() + timeout
    while len(events) < count:
        assert time.time() < deadline, f"only {events} within {timeout} s"
        line = response.fp.readline().decode()
        assert line, "the event stream ended"
        line = line.rstrip("\n")
        if line.startswith("event: "):
            event = line[len("event: "):]
        elif line.startswith("data: "):
            data = line[len("data: "):]
        elif line == "" and event is not None:
            events.append((event, data))
            event, data = None, None
    return events


def test_a_checkpoint_written_after_start_is_pushed_and_ctrl_c_ends_cleanly(tmp_path, binary):
    run = marked_run(tmp_path / "run")
    server = Server(run)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    connection.request("GET", "/api/events")
    response = connection.getresponse()
    assert response.status == 200 and response.getheader("Content-Type") == "text/event-stream"
    assert read_events(response, 3, timeout=60) == [("checkpoint", "0"), ("checkpoint", "10"), ("checkpoint", "20")]
    add_checkpoint(run, 30, seed=5)
    assert read_events(response, 1, timeout=60) == [("checkpoint", "30")]
    assert server.steps() == [0, 10, 20, 30]
    assert len(server.get("/api/checkpoints/30/points")[2]) == 60 * 8
    # Ctrl-C with a page still listening: the stream ends and the server exits 0.
    code, err = server.stop(signal.SIGINT)
    assert code == 0, err
    connection.close()


def test_serving_starts_before_the_run_exists(tmp_path, binary):
    run = tmp_path / "later"
    server = Server(run)
    document = server.json("/api/run")
    assert document["ready"] is False and document["steps"] == []
    marked_run(run)
    assert wait_for(lambda: server.steps() == [0, 10, 20], timeout=60)
    code, err = server.stop(signal.SIGTERM)
    assert code == 0, err


def test_another_host_warns_that_the_run_is_visible(tmp_path, binary):
    run = marked_run(tmp_path / "run")
    proc = subprocess.Popen([str(BINARY), "serve", str(run), "--port", "0", "--host", "0.0.0.0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _started.append(proc)
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    assert ready
    line = proc.stdout.readline()
    assert re.match(r"^serving .+ at http://0\.0\.0\.0:\d+/$", line), line
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "warning: listening on 0.0.0.0: the run is visible" in err, err


@pytest.mark.parametrize("flags,message", [(["--port", "70000"], "--port must be 0 to 65535"),
                                           (["--host", "bad host"], "--host must be")])
def test_bad_flags_are_refused_in_one_line(tmp_path, binary, flags, message):
    proc = run_cli("serve", tmp_path, *flags, check=False)
    assert proc.returncode == 64 and message in proc.stderr and proc.stdout == ""


# ---------------------------------------------------------------- watch --serve


def test_watch_serve_films_and_serves_the_same_analysis_then_goes_on_serving(tmp_path, binary):
    run = marked_run(tmp_path / "run")
    film = tmp_path / "live.mp4"
    proc = subprocess.Popen([str(BINARY), "watch", str(run), "-o", str(film), "--tween", "1", "--dump-data",
                             str(tmp_path / "dump"), "--serve", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _started.append(proc)
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    assert ready, "no URL line within 30 s"
    match = URL_LINE.match(proc.stdout.readline().decode().rstrip("\n"))
    assert match, "expected: serving RUN at URL"
    base = f"http://127.0.0.1:{match.group(2)}"

    def document(path):
        with urllib.request.urlopen(base + path, timeout=30) as response:
            return json.loads(response.read())

    assert wait_for(lambda: document("/api/run")["steps"] == [0, 10, 20], timeout=60)
    add_checkpoint(run, 30, seed=9)
    assert wait_for(lambda: document("/api/run")["steps"] == [0, 10, 20, 30], timeout=60)
    (run / "DONE").write_text("")
    assert wait_for(lambda: document("/api/run")["done"], timeout=60)
    # The film is finalised, and the page still answers.
    assert wait_for(lambda: film.exists() and frames_in(film) == 4, timeout=60)
    sample = document("/api/samples/3")
    for i, step in enumerate(sample["steps"]):
        assert np.float32(sample["x"][i]) == np.load(tmp_path / "dump" / f"aligned-{step}.npy")[3, 0]
    assert proc.poll() is None
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "still serving at" in err.decode()


def test_watch_serve_on_a_taken_port_fails_before_filming(tmp_path, binary):
    run = marked_run(tmp_path / "run")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_cli("watch", run, "-o", tmp_path / "live.mp4", "--serve", "--port", port, check=False, timeout=60)
    assert proc.returncode == 1 and f"cannot serve on 127.0.0.1:{port}" in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1
    assert not (tmp_path / "live.mp4").exists()


def test_watch_serve_still_needs_something_to_film(tmp_path, binary):
    proc = run_cli("watch", tmp_path, "--serve", check=False)
    assert proc.returncode == 64 and "embedlapse serve explores a run without filming it" in proc.stderr


# ---------------------------------------------------------------- what the server opens


def strace_usable():
    if shutil.which("strace") is None:
        return False
    return subprocess.run(["strace", "-f", "-o", "/dev/null", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not strace_usable(), reason="strace is not installed or ptrace is not permitted here")
def test_requests_never_open_a_file_outside_the_run(tmp_path, binary):
    """Every file the server opens while answering (traversals in every encoding, the page, the API)
    lies inside the run folder, as strace sees the system calls."""
    run = marked_run(tmp_path / "run")
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the network")
    log = tmp_path / "strace.log"
    proc = subprocess.Popen(["strace", "-f", "-qq", "-ttt", "-e", "trace=open,openat,openat2,stat,newfstatat,statx",
                             "-o", str(log), str(BINARY), "serve", str(run), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _started.append(proc)
    ready, _, _ = select.select([proc.stdout], [], [], 60)
    assert ready, "no URL line within 60 s"
    port = int(URL_LINE.match(proc.stdout.readline().decode().rstrip("\n")).group(2))
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    assert len(children) == 1, children
    server = int(children[0])
    _grandchildren.append(server)
    base = f"http://127.0.0.1:{port}"
    assert wait_for(lambda: json.loads(urllib.request.urlopen(base + "/api/run", timeout=30).read())["steps"] == [0, 10, 20],
                    timeout=60)
    started = time.time()
    relative = os.path.relpath(secret, run)
    targets = TRAVERSALS + [f"/{relative}", f"/%2e%2e/{secret.name}", f"/..%2f{secret.name}", str(secret),
                            "/", "/app.js", "/api/run", "/api/loss", "/api/samples/3", "/api/samples/3/image.png",
                            "/api/checkpoints/10/points", "/api/checkpoints/10/scores", "/api/export.csv"]
    for target in targets:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
            while s.recv(65536):
                pass
    # strace passes no Ctrl-C on: the server (strace's child) gets it itself.
    os.kill(server, signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 0
    opened = []
    for line in log.read_text().splitlines():
        match = re.match(r"^\d+\s+(\d+\.\d+) \w+\((?:AT_FDCWD, )?\"([^\"]*)\"", line)
        if match and float(match.group(1)) >= started:
            opened.append(match.group(2))
    inside = str(run.resolve())
    outside = [path for path in opened if not (os.path.realpath(path) + os.sep).startswith(inside + os.sep)
               and not path.startswith(("/proc/", "/sys/"))]
    assert opened, "strace sees the follower polling the run: the trace is not empty"
    assert not outside, outside
    assert str(secret) not in opened
