"""`embedlapse watch` against a run that this test writes while the real binary renders it."""
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import BINARY, ONE_FRAME_PER_CHECKPOINT, frames_in, wait_for



class RunWriter:
    """Writes checkpoints the way trainings do: whole files renamed into place, or in place, slowly."""

    def __init__(self, root, n=200, d=12, seed=0):
        self.root, self.n, self.d = Path(root), n, d
        self.rng = np.random.default_rng(seed)
        self.root.mkdir(parents=True, exist_ok=True)
        self.labels = np.arange(n) % 4
        np.save(self.root / "labels.npy", self.labels)
        (self.root / "class_names.json").write_text(json.dumps(["a", "b", "c", "d"]))

    def embeddings(self, i):
        return (self.rng.standard_normal((self.n, self.d)) + 0.4 * i * np.eye(4, self.d)[self.labels]).astype(np.float32)

    def renamed(self, step, i):
        d = self.root / f"checkpoint-{step}"
        d.mkdir(exist_ok=True)
        tmp = d / ".embeddings.npy.tmp"
        with open(tmp, "wb") as f:
            np.save(f, self.embeddings(i))
        tmp.rename(d / "embeddings.npy")

    def in_place(self, step, i, pause=0.3, finish=True):
        """Header first, then half the data; the rest after `pause` (or never, if not `finish`)."""
        x = self.embeddings(i)
        d = self.root / f"checkpoint-{step}"
        d.mkdir(exist_ok=True)
        f = open(d / "embeddings.npy", "wb")
        np.lib.format.write_array_header_1_0(f, np.lib.format.header_data_from_array_1_0(x))
        data = x.tobytes()
        f.write(data[: len(data) // 2])
        f.flush()
        if not finish:
            return f, data[len(data) // 2:], x
        time.sleep(pause)
        f.write(data[len(data) // 2:])
        f.close()
        return x

    def done(self):
        (self.root / "DONE").write_text("")


_started = []


@pytest.fixture(autouse=True)
def no_stray_watchers():
    """A failing test must not leave its watcher running (it would wait for DONE for ever)."""
    yield
    while _started:
        proc = _started.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def watch(run, out, *extra):
    proc = subprocess.Popen([str(BINARY), "watch", str(run), "-o", str(out), *map(str, extra), *ONE_FRAME_PER_CHECKPOINT],
                            stderr=subprocess.PIPE, text=True)
    _started.append(proc)
    return proc


def finish(proc, timeout=60):
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err



def test_video_grows_as_checkpoints_land_and_plays_mid_run(tmp_path, binary):
    writer = RunWriter(tmp_path / "run")
    video = tmp_path / "live.mp4"
    proc = watch(writer.root, video, "--latest", tmp_path / "latest.png")
    counts = []
    for i in range(8):
        if i % 2:
            writer.in_place(i * 10, i, pause=0.2)
        else:
            writer.renamed(i * 10, i)
        assert wait_for(lambda: frames_in(video) == i + 1), f"frame {i + 1} never became playable: {frames_in(video)}"
        counts.append(frames_in(video))
    writer.done()
    code, err = finish(proc)
    assert code == 0, err
    assert counts == list(range(1, 9)), "ffprobe decodes every rendered frame while the watch still runs"
    assert frames_in(video) == 8
    assert (tmp_path / "latest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_existing_checkpoints_first_and_a_half_written_file_is_never_read(tmp_path, binary):
    writer = RunWriter(tmp_path / "run")
    for i in range(3):
        writer.renamed(i * 10, i)
    handle, rest, full = writer.in_place(30, 3, finish=False)
    dump = tmp_path / "dump"
    proc = watch(writer.root, tmp_path / "live.mp4", "--dump-data", dump)
    assert wait_for(lambda: frames_in(tmp_path / "live.mp4") == 3)
    time.sleep(0.5)
    assert frames_in(tmp_path / "live.mp4") == 3, "the half-written checkpoint must be waited for"
    handle.write(rest)
    handle.close()
    writer.done()
    code, err = finish(proc)
    assert code == 0, err
    assert frames_in(tmp_path / "live.mp4") == 4
    from sklearn.decomposition import PCA
    expected = PCA(2, svd_solver="covariance_eigh").fit_transform(full.astype(np.float64))
    assert np.abs(np.load(dump / "pca-30.npy") - expected).max() < 1e-4 * np.abs(expected).max()


def test_idle_timeout_ends_the_watch(tmp_path, binary):
    writer = RunWriter(tmp_path / "run")
    writer.renamed(0, 0)
    writer.renamed(10, 1)
    started = time.time()
    code, err = finish(watch(writer.root, tmp_path / "live.mp4", "--idle-timeout", "1"))
    assert code == 0, err
    assert time.time() - started < 15
    assert frames_in(tmp_path / "live.mp4") == 2


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_finalises_a_playable_video(tmp_path, binary, sig):
    writer = RunWriter(tmp_path / "run")
    for i in range(3):
        writer.renamed(i * 10, i)
    proc = watch(writer.root, tmp_path / "live.mp4")
    assert wait_for(lambda: frames_in(tmp_path / "live.mp4") == 3)
    proc.send_signal(sig)
    code, err = finish(proc)
    assert code == 130, err
    assert frames_in(tmp_path / "live.mp4") == 3


def test_a_late_checkpoint_is_skipped_with_a_warning(tmp_path, binary):
    writer = RunWriter(tmp_path / "run")
    writer.renamed(0, 0)
    writer.renamed(20, 2)
    proc = watch(writer.root, tmp_path / "live.mp4")
    assert wait_for(lambda: frames_in(tmp_path / "live.mp4") == 2)
    writer.renamed(10, 1)
    time.sleep(0.5)
    writer.done()
    code, err = finish(proc)
    assert code == 0 and "checkpoint-10/embeddings.npy: arrived after a later checkpoint was rendered, skipped" in err, err
    assert frames_in(tmp_path / "live.mp4") == 2


def test_done_with_a_broken_checkpoint_names_it_and_keeps_the_video(tmp_path, binary):
    writer = RunWriter(tmp_path / "run")
    writer.renamed(0, 0)
    proc = watch(writer.root, tmp_path / "live.mp4")
    assert wait_for(lambda: frames_in(tmp_path / "live.mp4") == 1)
    handle, _, _ = writer.in_place(10, 1, finish=False)
    handle.close()
    writer.done()
    code, err = finish(proc)
    assert code == 1
    line = err.strip().splitlines()[-1]
    assert line.startswith("embedlapse: ") and "checkpoint-10/embeddings.npy: truncated" in line, err
    assert frames_in(tmp_path / "live.mp4") == 1, "the frames already rendered stay playable"


def test_a_checkpoint_with_a_different_n_stops_the_watch_clearly(tmp_path, binary):
    writer = RunWriter(tmp_path / "run")
    writer.renamed(0, 0)
    proc = watch(writer.root, tmp_path / "live.mp4")
    assert wait_for(lambda: frames_in(tmp_path / "live.mp4") == 1)
    (writer.root / "checkpoint-10").mkdir()
    np.save(writer.root / "checkpoint-10" / "embeddings.npy", np.zeros((199, 12), np.float32))
    code, err = finish(proc)
    assert code == 1 and "checkpoint-10/embeddings.npy: has 199 rows" in err, err
    assert frames_in(tmp_path / "live.mp4") == 1


def marked(writer, step, i):
    """A checkpoint as the Python helper writes it: renamed into place, then marked complete."""
    writer.renamed(step, i)
    (writer.root / f"checkpoint-{step}" / "embeddings.npy.complete").write_text("")


def test_a_marked_checkpoint_is_filmed_without_waiting_to_settle(tmp_path, binary):
    writer = RunWriter(tmp_path / "run")
    video = tmp_path / "live.mp4"
    proc = watch(writer.root, video)
    marked(writer, 0, 0)
    assert wait_for(lambda: frames_in(video) == 1, timeout=30)
    started = time.time()
    marked(writer, 10, 1)
    assert wait_for(lambda: frames_in(video) == 2, timeout=30)
    assert time.time() - started < 1.5, "a marked checkpoint must not wait for the 2 s settle interval"
    writer.done()
    assert finish(proc)[0] == 0


def test_a_new_run_in_the_same_folder_ends_the_watch_with_the_old_film_kept(tmp_path, binary):
    writer = RunWriter(tmp_path / "run")
    (writer.root / "run.json").write_text(json.dumps({"format": 1, "run_id": "a" * 32}))
    video = tmp_path / "live.mp4"
    proc = watch(writer.root, video)
    marked(writer, 0, 0)
    marked(writer, 10, 1)
    assert wait_for(lambda: frames_in(video) == 2)
    (writer.root / "run.json").write_text(json.dumps({"format": 1, "run_id": "b" * 32}))
    code, err = finish(proc, timeout=30)
    assert code == 1, err
    assert "new run" in err and "a" * 32 in err and "b" * 32 in err, err
    assert len([line for line in err.splitlines() if line.strip()]) <= 2, err
    assert frames_in(video) == 2, "the film of the old run stays playable"
