"""`embedlapse serve RUN_A RUN_B`: two runs on one page. The runs document, each run's API under
/api/runs/<r>/, the right run's points against compare's film (its --dump-data) and against scipy,
a right checkpoint held back until the left run reaches its step, and mismatched evaluation sets
refused in one line."""
import csv
import io
import subprocess

import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes

from conftest import BINARY, run_cli, wait_for
from test_compare import REAL_RUN, copy_run, steps_of
from test_explorer import Server, _started, add_checkpoint, marked_run, no_stray_servers  # noqa: F401


@pytest.fixture(scope="module")
def pair(tmp_path_factory, binary):
    """cnn-fmnist (a finished copy) beside a rotated, noisy copy lacking every third checkpoint and the
    last two, served together and filmed together by compare."""
    root = tmp_path_factory.mktemp("serve-two")
    steps = steps_of(REAL_RUN)
    rng = np.random.default_rng(11)
    width = np.load(REAL_RUN / f"checkpoint-{steps[0]}" / "embeddings.npy").shape[1]
    rotation, _ = np.linalg.qr(rng.standard_normal((width, width)))
    left = copy_run(REAL_RUN, root / "left", lambda e, step: e)
    right = copy_run(REAL_RUN, root / "right", lambda e, step: e @ rotation + 0.05 * e.std() * rng.standard_normal(e.shape),
                     drop=set(steps[1::3]) | set(steps[-2:]))
    for run in (left, right):
        (run / "DONE").write_text("")
    run_cli("compare", left, right, "--dump-data", root / "dump", "--tween", "1")
    server = Server(left, right, "--names", "frozen,full", owned_by_test=False)
    try:
        assert wait_for(lambda: all(server.json(f"/api/runs/{r}/run")["done"] for r in (0, 1)), timeout=120)
        yield left, right, root / "dump", server
        code, err = server.stop()
        assert code == 0, err
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()


def points(server, run, step):
    status, _, body = server.get(f"/api/runs/{run}/checkpoints/{step}/points")
    assert status == 200, (run, step, status)
    return np.frombuffer(body, dtype="<f4").reshape(-1, 2)


def test_the_runs_document_names_both_runs_in_order(pair):
    left, right, _, server = pair
    assert server.line == f"serving {left} and {right} at http://127.0.0.1:{server.port}/\n"
    document = server.json("/api/runs")
    assert document["runs"] == [{"name": "frozen", "run": str(left)}, {"name": "full", "run": str(right)}]
    assert "rotated" in document["alignment"]


def test_each_run_has_its_own_api_and_the_bare_api_is_the_left_runs(pair):
    left, right, _, server = pair
    assert server.json("/api/runs/0/run") == server.json("/api/run")
    assert server.json("/api/runs/0/run")["steps"] == steps_of(left)
    assert server.json("/api/runs/1/run")["steps"] == steps_of(right)
    # The copy keeps the losses; each run's are shown up to its newest checkpoint.
    last = steps_of(right)[-1]
    right_loss, left_loss = server.json("/api/runs/1/loss"), server.json("/api/loss")
    assert right_loss["training"] == [p for p in left_loss["training"] if p[0] <= last]
    for path in ("/api/runs/2/run", "/api/runs/1/checkpoints/20/points", "/api/runs/01/run", "/api/runs/1/runs"):
        assert server.get(path)[0] == 404, path


def test_both_panels_are_the_films_panels_at_each_runs_own_steps(pair):
    left, right, dump, server = pair
    for run, name, folder in ((0, "a", left), (1, "b", right)):
        for step in steps_of(folder):
            np.testing.assert_allclose(points(server, run, step), np.load(dump / f"aligned-{name}-{step}.npy"),
                                       rtol=0, atol=1e-5, err_msg=f"run {run} step {step}")


def test_the_right_run_is_rotated_onto_the_left_runs_latest_checkpoint_as_scipy_would(pair):
    left, right, _, server = pair
    left_steps = steps_of(left)
    for step in steps_of(right)[1:]:
        target = points(server, 0, max(s for s in left_steps if s <= step)).astype(np.float64)
        shown = points(server, 1, step).astype(np.float64)
        # Rotating back and forth changes nothing; the shown points are already the best rotation.
        rotation, _ = orthogonal_procrustes(shown - shown.mean(0), target - target.mean(0))
        np.testing.assert_allclose(rotation, np.eye(2), atol=1e-4, err_msg=f"step {step}")
    # And they are not the right run's own unrotated coordinates (the copy is rotated in D dimensions).
    own = json_points_of_own_render(right, steps_of(right)[-1])
    assert np.abs(own - points(server, 1, steps_of(right)[-1])).max() > 1e-2


def json_points_of_own_render(run, step):
    out = run.parent / "own-right"
    if not out.exists():
        run_cli("render", run, "--tween", "1", "--dump-data", out)
    return np.load(out / f"aligned-{step}.npy")


def test_a_right_samples_history_and_table_carry_the_rotated_points(pair):
    _, right, _, server = pair
    steps = steps_of(right)
    sample = server.json("/api/runs/1/samples/17")
    assert sample["steps"] == steps
    for i, step in enumerate(steps):
        assert (sample["x"][i], sample["y"][i]) == pytest.approx(tuple(points(server, 1, step)[17]), abs=1e-6)
    status, _, body = server.get("/api/runs/1/export.csv")
    assert status == 200
    rows = [row for row in csv.DictReader(io.StringIO(body.decode())) if row["index"] == "17"]
    assert [int(row["step"]) for row in rows] == steps
    assert [float(row["x"]) for row in rows] == pytest.approx(sample["x"], abs=1e-6)


def test_a_right_checkpoint_waits_until_the_left_run_reaches_its_step(tmp_path, binary):
    left = marked_run(tmp_path / "left", steps=(0, 10))
    right = marked_run(tmp_path / "right", steps=(0, 10, 20, 30), seed=4)
    server = Server(left, right)
    assert wait_for(lambda: server.json("/api/runs/0/run")["steps"] == [0, 10], timeout=60)
    assert wait_for(lambda: server.json("/api/runs/1/run")["steps"] == [0, 10], timeout=30)
    assert not wait_for(lambda: len(server.json("/api/runs/1/run")["steps"]) > 2, timeout=1.5)
    add_checkpoint(left, 25, seed=9)
    assert wait_for(lambda: server.json("/api/runs/1/run")["steps"] == [0, 10, 20], timeout=30)
    # Step 20 is rotated onto the left run's step 10, its latest at or before 20.
    target, shown = points(server, 0, 10).astype(np.float64), points(server, 1, 20).astype(np.float64)
    rotation, _ = orthogonal_procrustes(shown - shown.mean(0), target - target.mean(0))
    np.testing.assert_allclose(rotation, np.eye(2), atol=1e-4)
    assert not server.json("/api/runs/1/run")["done"]
    # Once the left run is done, the rest of the right run follows.
    (left / "DONE").write_text("")
    (right / "DONE").write_text("")
    assert wait_for(lambda: server.json("/api/runs/1/run")["steps"] == [0, 10, 20, 30], timeout=30)
    assert wait_for(lambda: server.json("/api/runs/1/run")["done"] and server.json("/api/runs/0/run")["done"], timeout=30)
    code, err = server.stop()
    assert code == 0, err


@pytest.mark.parametrize("change, message", [
    (dict(n=61), "60 samples against 61"),
    (dict(labels=True), "their labels differ at"),
])
def test_two_runs_that_are_not_one_evaluation_set_stop_the_server_in_one_line(tmp_path, binary, change, message):
    left = marked_run(tmp_path / "left")
    right = marked_run(tmp_path / "right", n=change.get("n", 60))
    if change.get("labels"):
        np.save(right / "labels.npy", (np.arange(60) + 1) % 3)
    proc = subprocess.Popen([str(BINARY), "serve", str(left), str(right), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _started.append(proc)
    _, err = proc.communicate(timeout=60)
    lines = err.decode().strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, err
    assert message in lines[0] and str(left) in lines[0] and str(right) in lines[0], lines


@pytest.mark.parametrize("args, message", [
    (["a", "b", "c"], "serve takes one run, or two to compare; got 3"),
    (["a", "--names", "x,y"], "--names names the two runs of a comparison"),
    (["a", "b", "--names", "x"], "--names takes two names"),
])
def test_bad_serve_arguments_are_refused_in_one_line(tmp_path, binary, args, message):
    proc = run_cli("serve", *args, check=False, timeout=30)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr
