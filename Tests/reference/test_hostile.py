"""Hostile input, process level (issue 10): bad runs, bad files and bad flags against the real binary.

Every refused case must: exit non-zero (1 for bad input; flags may also get ArgumentParser's usage
code), never by a signal; print a message of at most 3 lines on stderr starting with `embedlapse: `
or `Error: ` that names the offending file or flag; echo no raw control characters; not hang; leave
nothing behind (no video, no temporary files, the run folder unchanged). Legitimate but unusual runs
must still render (exit 0, a video ffprobe reads).

The cases are generated from tables below; each builds a fresh tiny run (n=48, d=8).
"""
import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import BINARY, ONE_FRAME_PER_CHECKPOINT, wait_for

N, D = 48, 8
STEPS = (0, 10, 20)
TIMEOUT = 30  # seconds per process; a tiny run renders in well under one
BAD = "checkpoint-10/embeddings.npy"  # the file most cases break (the middle checkpoint)


# ---------------------------------------------------------------- helpers


class Result:
    def __init__(self, args, returncode, stdout, stderr, timed_out, seconds):
        self.args, self.returncode, self.stdout, self.stderr = args, returncode, stdout, stderr
        self.timed_out, self.seconds = timed_out, seconds

    @property
    def err(self):
        return self.stderr.decode("utf-8", "replace")

    @property
    def out(self):
        return self.stdout.decode("utf-8", "replace")

    def __repr__(self):
        shown = " ".join(str(a)[:120] for a in self.args)
        return (f"embedlapse {shown}\n  exit {self.returncode}{' (TIMED OUT)' if self.timed_out else ''} "
                f"after {self.seconds:.1f}s\n  stderr: {self.stderr[-1500:]!r}\n  stdout: {self.stdout[-600:]!r}")


def embedlapse(*args, timeout=TIMEOUT, cwd=None):
    """Runs the binary with bytes output; a run past `timeout` is killed (with its group) and marked."""
    args = [os.fsencode(a) if isinstance(a, (str, Path)) else a for a in args]
    if args and args[0] in (b"render", b"watch", b"demo"):
        args += [a.encode() for a in ONE_FRAME_PER_CHECKPOINT]
    started = time.time()
    proc = subprocess.Popen([os.fsencode(BINARY), *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True, cwd=cwd)
    try:
        out, err = proc.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        timed_out = True
    return Result([os.fsdecode(a) for a in args], proc.returncode, out, err, timed_out, time.time() - started)


def snapshot(root):
    """Everything under `root` (never following links, never opening anything but regular files)."""
    root = Path(root)
    if not os.path.lexists(root):
        return None
    found = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            info = os.lstat(path)
            key = os.fsdecode(path.relative_to(root))
            if stat.S_ISLNK(info.st_mode):
                found[key] = ("link", os.readlink(path))
            elif stat.S_ISREG(info.st_mode):
                h = hashlib.sha1()
                try:
                    h.update(path.read_bytes())
                except PermissionError:
                    h.update(b"unreadable")
                found[key] = ("file", info.st_size, h.hexdigest(), stat.S_IMODE(info.st_mode))
            else:
                found[key] = (stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode))
    return found


def control_bytes(data):
    """Raw control characters that would reach a terminal: C0 other than newline (ESC included), DEL."""
    return sorted({b for b in data if (b < 0x20 and b != 0x0A) or b == 0x7F})


def assert_clean_text(res):
    bad = control_bytes(res.stderr)
    assert not bad, f"raw control bytes {bad} echoed to stderr:\n{res!r}"


def assert_not_crashed(res):
    assert not res.timed_out, f"hang: no exit within {TIMEOUT}s\n{res!r}"
    assert res.returncode >= 0, f"killed by signal {signal.Signals(-res.returncode).name}\n{res!r}"
    assert res.returncode < 128, f"exit {res.returncode} (128+N: a signal)\n{res!r}"


def assert_refused(res, names, codes=(1,)):
    """Non-zero exit, no signal, a short message with the right prefix naming one of `names`."""
    assert_not_crashed(res)
    assert res.returncode != 0, f"accepted, expected a refusal naming {names}\n{res!r}"
    assert res.returncode in codes, f"exit {res.returncode}, expected {codes}\n{res!r}"
    assert_clean_text(res)
    lines = [line for line in res.err.splitlines() if line.strip()]
    message = [line for line in lines if not line.startswith("warning: ")]
    warnings = [line for line in lines if line.startswith("warning: ")]
    assert 1 <= len(message) <= 3, f"{len(message)} message lines, expected 1 to 3\n{res!r}"
    assert len(warnings) <= 3, f"{len(warnings)} warning lines\n{res!r}"
    assert message[0].startswith(("embedlapse: ", "Error: ")), f"message prefix\n{res!r}"
    assert any(name in res.err for name in names), f"the message does not name any of {names}\n{res!r}"


def probe_frames(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-show_entries", "stream=nb_read_frames",
                          "-of", "csv=p=0", os.fsencode(path)], capture_output=True, text=True, timeout=60)
    text = out.stdout.strip().splitlines()[0] if out.stdout.strip() else ""
    return int(text) if out.returncode == 0 and text.isdigit() else None


def assert_rendered(res, video, frames):
    assert_not_crashed(res)
    assert res.returncode == 0, f"a legitimate run was refused\n{res!r}"
    assert_clean_text(res)
    assert probe_frames(video) == frames, f"ffprobe: {probe_frames(video)} frames, expected {frames}\n{res!r}"


def npy_bytes(descr, shape, data=b"", fortran=False, version=(1, 0), header=None, header_len=None):
    """A hand-made .npy: any header text (dims that numpy refuses to write included), any length field."""
    if header is None:
        dims = f"({shape[0]},)" if len(shape) == 1 else "(" + ", ".join(str(d) for d in shape) + ")"
        header = "{'descr': %s, 'fortran_order': %s, 'shape': %s, }" % (
            descr if descr.startswith("[") else repr(descr), fortran, dims)
    raw = header.encode("latin1") if isinstance(header, str) else header
    size_bytes = 2 if version[0] == 1 else 4
    pad = (-(6 + 2 + size_bytes + len(raw) + 1)) % 64
    raw = raw + b" " * pad + b"\n"
    length = len(raw) if header_len is None else header_len
    prefix = b"\x93NUMPY" + bytes(version)
    prefix += length.to_bytes(size_bytes, "little")
    return prefix + raw + data


def embeddings(i, n=N, d=D, seed=0):
    rng = np.random.default_rng(seed + i)
    labels = np.arange(n) % 3
    return rng.standard_normal((n, d)) + (i + 1) * np.eye(3, d)[labels] * 2


def tiny_run(root, n=N, d=D, steps=STEPS, dtype=np.float32, labels=True, names=True, images=True, losses=True):
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for i, step in enumerate(steps):
        (root / f"checkpoint-{step}").mkdir()
        np.save(root / f"checkpoint-{step}" / "embeddings.npy", embeddings(i, n, d).astype(dtype))
    if labels:
        np.save(root / "labels.npy", (np.arange(n) % 3).astype(np.int64))
    if names:
        (root / "class_names.json").write_text(json.dumps(["alpha", "beta", "gamma"]))
    if images:
        np.save(root / "images.npy", np.random.default_rng(1).integers(0, 255, (n, 8, 8), dtype=np.uint8))
    if losses:
        (root / "losses.csv").write_text("step,loss\n" + "".join(f"{s},{2.0 / (1 + s)}\n" for s in range(0, int(steps[-1]) + 1, max(2, int(steps[-1]) // 16))))
    return root


@pytest.fixture
def run_and_out(tmp_path, binary):
    run = tiny_run(tmp_path / "run")
    out = tmp_path / "out"
    out.mkdir()
    return run, out


# ---------------------------------------------------------------- .npy files (checkpoint-10/embeddings.npy)


def f32(n=N, d=D):
    return embeddings(1, n, d).astype("<f4").tobytes()


def write(data):
    return lambda path: path.write_bytes(data)


def save(array):
    return lambda path: np.save(path, array)


def with_values(values, dtype="<f4"):
    def build(path):
        x = embeddings(1).astype(dtype)
        for (i, j), v in values:
            x[i, j] = v
        np.save(path, x)
    return build


def fifo(path):
    path.unlink()
    os.mkfifo(path)


def directory(path):
    path.unlink()
    path.mkdir()
    np.save(path / "embeddings.npy", embeddings(1).astype(np.float32))


def self_loop(path):
    path.unlink()
    path.symlink_to(path.name)


def two_loop(path):
    path.unlink()
    path.symlink_to("other.npy")
    (path.parent / "other.npy").symlink_to(path.name)


def dangling(path):
    path.unlink()
    path.symlink_to("/nonexistent/embeddings.npy")


def to_device(target):
    def build(path):
        path.unlink()
        path.symlink_to(target)
    return build


def unreadable(path):
    if os.geteuid() == 0:
        pytest.skip("root reads files without read permission")
    os.chmod(path, 0)


def truncated(keep):
    def build(path):
        data = path.read_bytes()
        path.write_bytes(data[:keep(len(data))])
    return build


def appended(extra):
    def build(path):
        with open(path, "ab") as f:
            f.write(extra)
    return build


NPY_CASES = {
    # sizes
    "shape-product-overflows-int64": write(npy_bytes("<f4", (2**40, 2**40), f32())),
    "shape-bytes-wrap-to-zero": write(npy_bytes("<f4", (2**59, 8))),                 # 2^62 elements * 4 bytes = 2^64
    "shape-elements-wrap-to-zero": write(npy_bytes("<f4", (2**32, 2**32))),
    "shape-wraps-to-real-size": write(npy_bytes("<f4", (2**62 + 48, 8), f32())),     # (2^62+48)*8*4 wraps to 48*8*4
    "dim-beyond-int64": write(npy_bytes("<f4", (2**64 + 48, 8), f32())),
    "dim-20-digits": write(npy_bytes("<f4", (48, 99999999999999999999), f32())),
    "negative-rows": write(npy_bytes("<f4", (-48, 8), f32())),
    "negative-columns": write(npy_bytes("<f4", (48, -8), f32())),
    "both-negative": write(npy_bytes("<f4", (-48, -8), f32())),
    "huge-rows-little-data": write(npy_bytes("<f4", (10**12, 8), f32())),
    "huge-dim-float64": write(npy_bytes("<f8", (48, 2**58), f32())),
    # headers
    "header-length-beyond-file": write(npy_bytes("<f4", (N, D), f32(), header_len=60000)),
    "header-length-v2-4GB": write(npy_bytes("<f4", (N, D), f32(), version=(2, 0), header_len=2**32 - 1)),
    "header-length-zero": write(npy_bytes("<f4", (N, D), f32(), header_len=0)),
    "header-length-short": write(npy_bytes("<f4", (N, D), f32(), header_len=10)),
    "header-not-a-dict": write(npy_bytes("", (), f32(), header="hello, world")),
    "header-unbalanced": write(npy_bytes("", (), f32(), header="{'descr': '<f4', 'fortran_order': False, 'shape': (48, 8")),
    "header-missing-shape": write(npy_bytes("", (), f32(), header="{'descr': '<f4', 'fortran_order': False, }")),
    "header-missing-descr": write(npy_bytes("", (), f32(), header="{'fortran_order': False, 'shape': (48, 8), }")),
    "header-shape-is-string": write(npy_bytes("", (), f32(), header="{'descr': '<f4', 'fortran_order': False, 'shape': '48, 8', }")),
    "header-shape-float-dims": write(npy_bytes("", (), f32(), header="{'descr': '<f4', 'fortran_order': False, 'shape': (48.0, 8.5), }")),
    "header-fortran-maybe": write(npy_bytes("", (), f32(), header="{'descr': '<f4', 'fortran_order': Maybe, 'shape': (48, 8), }")),
    "header-invalid-utf8": write(npy_bytes("", (), f32(), header=b"{'descr': '<f4\xff\xfe', 'fortran_order': False, 'shape': (48, 8), }")),
    "header-nul-bytes": write(npy_bytes("", (), f32(), header=b"{'descr': '<f4', 'fortran_order': False, 'shape': (48, 8)\x00\x00}")),
    "header-deeply-nested": write(npy_bytes("", (), f32(), header="{'descr': " + "[" * 5000 + "]" * 5000 + ", 'fortran_order': False, 'shape': (48, 8), }")),
    "header-huge-number-of-dims": write(npy_bytes("<f4", (1,) * 20000, f32())),
    "bad-magic": write(b"\x93NUMPZ\x01\x00" + npy_bytes("<f4", (N, D), f32())[8:]),
    "version-9": write(npy_bytes("<f4", (N, D), f32(), version=(9, 0))),
    "only-magic": write(b"\x93NUMPY"),
    "empty-file": write(b""),
    # dtypes
    "complex64": save(embeddings(1).astype(np.complex64)),
    "complex128": save(embeddings(1).astype(np.complex128)),
    "object": write(npy_bytes("|O", (N, D), b"\x00" * 64)),
    "unicode-strings": save(embeddings(1).astype("U8")),
    "byte-strings": save(embeddings(1).astype("S8")),
    "structured": save(np.zeros((N, D), dtype=[("a", "<f4"), ("b", "<f4")])),
    "bool": save(embeddings(1) > 0),
    "int8": save(embeddings(1).astype(np.int8)),
    "uint64": save(embeddings(1).astype(np.uint64)),
    "float128-descr": write(npy_bytes("<f16", (N, D), b"\x00" * (N * D * 16))),
    "datetime": save(np.zeros((N, D), dtype="datetime64[s]")),
    "descr-f3": write(npy_bytes("<f3", (N, D), b"\x00" * (N * D * 3))),
    "descr-f0": write(npy_bytes("<f0", (N, D))),
    "descr-f9999999999999999999": write(npy_bytes("<f9999999999999999999", (N, D), f32())),
    # data length
    "truncated-one-byte": truncated(lambda n: n - 1),
    "truncated-half": truncated(lambda n: n // 2),
    "header-only": truncated(lambda n: 128),
    "extra-bytes": appended(b"\x00\x00\x00\x00"),
    "extra-row": appended(f32(1, D)),
    "two-arrays-appended": lambda path: open(path, "ab").write(path.read_bytes()),
    # shapes
    "zero-rows": save(np.zeros((0, D), np.float32)),
    "zero-columns": save(np.zeros((N, 0), np.float32)),
    "one-dimensional": save(np.zeros(N * D, np.float32) + 1),
    "three-dimensional": save(embeddings(1).astype(np.float32).reshape(N, D, 1)),
    "scalar": save(np.float32(1.0)),
    "rows-differ": save(embeddings(1, n=N - 1).astype(np.float32)),
    "dimension-differs": save(embeddings(1, d=D + 1).astype(np.float32)),
    # values
    "nan-float32": with_values([((5, 3), np.nan)]),
    "inf-float32": with_values([((47, 7), np.inf)]),
    "minus-inf-float64-big-endian": with_values([((0, 0), -np.inf)], dtype=">f8"),
    "nan-float16": with_values([((11, 2), np.nan)], dtype="<f2"),
    "inf-float16-overflowed": save(np.where(np.arange(D) == 1, np.float16(np.inf), embeddings(1).astype("<f2"))),
    "nan-fortran": lambda path: np.save(path, np.asfortranarray(embeddings(1) * np.where(np.arange(D) == 4, np.nan, 1))),
    "all-identical-rows": save(np.tile(np.arange(D, dtype=np.float32), (N, 1))),
    "all-zero": save(np.zeros((N, D), np.float32)),
    # non-regular files
    "fifo": fifo,
    "directory": directory,
    "symlink-self-loop": self_loop,
    "symlink-two-loop": two_loop,
    "symlink-dangling": dangling,
    "symlink-to-dev-zero": to_device("/dev/zero"),
    "symlink-to-dev-urandom": to_device("/dev/urandom"),
    "no-read-permission": unreadable,
}

# Values a float32 pipeline cannot project: refusing them or drawing them are both clean handling, as
# long as `inspect` says the same as `render`.
EDGE_VALUE_CASES = {
    "near-float32-limit": lambda p: np.save(p, (embeddings(1) / 4 * 1e38).astype(np.float32)),
    "float64-beyond-float32": lambda p: np.save(p, embeddings(1) * 1e300),
    "subnormal-only": lambda p: np.save(p, (embeddings(1) * 1e-40).astype(np.float32)),
    "float64-tiny": lambda p: np.save(p, embeddings(1) * 1e-300),
    "one-distinct-row": lambda p: np.save(p, np.vstack([np.zeros((N - 1, D)), np.ones((1, D))]).astype(np.float32)),
}


def render_args(run, out, *extra):
    return ["render", run, "-o", out / "film.mp4", "-o", out / "film.gif", *extra]


NPY_XFAIL = {}


def npy_params():
    return [pytest.param(c, marks=NPY_XFAIL.get(c, ()), id=c) for c in NPY_CASES]


@pytest.mark.parametrize("case", npy_params())
def test_bad_npy_is_refused_naming_it(run_and_out, case):
    run, out = run_and_out
    NPY_CASES[case](run / BAD)
    before = snapshot(run)
    res = embedlapse(*render_args(run, out))
    assert_refused(res, [BAD])
    assert snapshot(out) == {}, f"left behind: {snapshot(out)}"
    assert snapshot(run) == before, "the run folder changed"


@pytest.mark.parametrize("case", npy_params())
def test_inspect_reports_a_bad_npy(run_and_out, case):
    run, _ = run_and_out
    NPY_CASES[case](run / BAD)
    before = snapshot(run)
    res = embedlapse("inspect", run)
    assert_not_crashed(res)
    assert res.returncode == 1, f"inspect must fail on what render refuses\n{res!r}"
    assert_clean_text(res)
    assert not control_bytes(res.stdout), res
    assert BAD in res.out + res.err, res
    assert snapshot(run) == before


@pytest.mark.parametrize("case", list(EDGE_VALUE_CASES))
def test_extreme_values_are_drawn_or_refused_and_inspect_agrees(run_and_out, case):
    run, out = run_and_out
    EDGE_VALUE_CASES[case](run / BAD)
    res = embedlapse(*render_args(run, out))
    verdict = embedlapse("inspect", run)
    assert_not_crashed(res)
    assert_not_crashed(verdict)
    if res.returncode == 0:
        assert_rendered(res, out / "film.mp4", 3)
        assert verdict.returncode == 0, f"render drew it but inspect objects\n{verdict!r}"
    else:
        assert_refused(res, [BAD])
        assert snapshot(out) == {}, f"left behind: {snapshot(out)}"
        assert verdict.returncode == 1 and BAD in verdict.out, f"render refuses it, inspect must say so\n{verdict!r}"


# ---------------------------------------------------------------- run folders


def dup(a, b):
    def build(run):
        (run / f"checkpoint-{a}").rename(run / f"checkpoint-{b}")
        shutil.copytree(run / f"checkpoint-{b}", run / f"checkpoint-{a}")
        return [f"checkpoint-{a}", f"checkpoint-{b}"]
    return build


def dup_three(run):
    for name in ("checkpoint-010", "checkpoint-0010"):
        shutil.copytree(run / "checkpoint-10", run / name)
    return ["checkpoint-10", "checkpoint-010", "checkpoint-0010"]


def labels(values):
    def build(run):
        np.save(run / "labels.npy", values)
        return ["labels.npy"]
    return build


def names(content):
    def build(run):
        path = run / "class_names.json"
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return ["class_names.json"]
    return build


def images(array):
    def build(run):
        if isinstance(array, bytes):
            (run / "images.npy").write_bytes(array)
        else:
            np.save(run / "images.npy", array)
        return ["images.npy"]
    return build


def losses(body):
    def build(run):
        (run / "losses.csv").write_text(body)
        return ["losses.csv"]
    return build


def trainer_state(content):
    def build(run):
        path = run / "checkpoint-10" / "trainer_state.json"
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        return ["checkpoint-10/trainer_state.json"]
    return build


def state(step):
    return {"global_step": 10, "epoch": 1.0, "log_history": [{"loss": 0.5, "step": 2}, {"loss": 0.4, "step": step}]}


def only_big_step(run):
    for p in list(run.glob("checkpoint-*")):
        shutil.rmtree(p)
    (run / "checkpoint-99999999999999999999").mkdir()
    np.save(run / "checkpoint-99999999999999999999" / "embeddings.npy", embeddings(0).astype(np.float32))
    return [str(run)]


def empty_checkpoints(run):
    for p in run.glob("checkpoint-*/embeddings.npy"):
        p.unlink()
    return [str(run)]


def empty_run(run):
    for p in run.iterdir():
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    return [str(run)]


def unrelated_folder(run):
    for p in run.iterdir():
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    (run / "photos").mkdir()
    (run / "notes.txt").write_text("hello")
    return [str(run)]


def run_is_file(run):
    shutil.rmtree(run)
    run.write_bytes(b"not a folder")
    return [str(run)]


def run_missing(run):
    shutil.rmtree(run)
    return [str(run)]


def run_link_loop(run):
    shutil.rmtree(run)
    run.symlink_to(run.name)
    return [str(run)]


def escaped_run_with_nan(run):
    """A run folder whose name holds ESC, CR and BEL, with a NaN: the message names it, escaped."""
    hostile = run.parent / "run\x1b[31mRED\r\x07x"
    run.rename(hostile)
    x = embeddings(1).astype(np.float32)
    x[3, 3] = np.nan
    np.save(hostile / BAD, x)
    return ["RED", BAD], hostile


def escaped_checkpoint_name(run):
    hostile = run / "checkpoint-1\x1b[2J0"
    hostile.mkdir()
    np.save(hostile / "embeddings.npy", np.zeros((5, 5), np.float32))
    np.save(run / BAD, np.zeros((N, D), np.complex64))
    return [BAD]


def escaped_class_names_missing_one(run):
    (run / "class_names.json").write_text(json.dumps(["al\x1bpha", "be\rta"]))
    return ["class_names.json"]


RUN_CASES = {
    "checkpoint-5-and-05": dup(10, "010"),
    "checkpoint-0-and-00": dup(0, "00"),
    "checkpoint-three-spellings": dup_three,
    "only-a-20-digit-checkpoint": only_big_step,
    "checkpoints-without-embeddings": empty_checkpoints,
    "empty-run": empty_run,
    "folder-without-checkpoints": unrelated_folder,
    "run-is-a-file": run_is_file,
    "run-missing": run_missing,
    "run-symlink-loop": run_link_loop,
    "labels-out-of-range": labels((np.arange(N) % 3) + np.where(np.arange(N) == 7, 5, 0)),
    "labels-negative": labels((np.arange(N) % 3) - np.where(np.arange(N) == 9, 4, 0)),
    "labels-int64-min": labels(np.where(np.arange(N) == 0, np.iinfo(np.int64).min, np.arange(N) % 3)),
    "labels-uint64-max": labels(np.where(np.arange(N) == 0, np.iinfo(np.uint64).max, np.arange(N) % 3).astype(np.uint64)),
    "labels-huge-without-names": lambda run: ((run / "class_names.json").unlink(), labels(np.full(N, 2**62, np.int64))(run))[1],
    "labels-too-few": labels(np.arange(N - 1) % 3),
    "labels-too-many": labels(np.arange(N + 1) % 3),
    "labels-empty": labels(np.zeros(0, np.int64)),
    "labels-float": labels((np.arange(N) % 3).astype(np.float64)),
    "labels-strings": labels((np.arange(N) % 3).astype("U3")),
    "labels-complex": labels((np.arange(N) % 3).astype(np.complex64)),
    "labels-2d": labels((np.arange(N) % 3).reshape(N // 4, 4)),
    "labels-truncated": lambda run: (labels(np.arange(N) % 3)(run), (run / "labels.npy").write_bytes((run / "labels.npy").read_bytes()[:-3]))[0],
    "labels-fifo": lambda run: ((run / "labels.npy").unlink(), os.mkfifo(run / "labels.npy"), ["labels.npy"])[2],
    "labels-shape-overflow": lambda run: ((run / "labels.npy").write_bytes(npy_bytes("<i8", (2**62,), b"\x00" * 8 * N)), ["labels.npy"])[1],
    "class-names-object": names('{"0": "alpha", "1": "beta", "2": "gamma"}'),
    "class-names-string": names('"alpha"'),
    "class-names-number": names("42"),
    "class-names-null": names("null"),
    "class-names-numbers": names("[1, 2, 3]"),
    "class-names-nulls": names('["alpha", null, "gamma"]'),
    "class-names-nested": names('[["alpha"], ["beta"], ["gamma"]]'),
    "class-names-too-few": names('["alpha", "beta"]'),
    "class-names-invalid-utf8": names(b'["alpha", "b\xffeta", "gamma"]'),
    "class-names-lone-surrogate": names('["alpha", "\\ud800", "gamma"]'),
    "class-names-not-json": names("alpha, beta, gamma"),
    "class-names-empty-file": names(""),
    "class-names-deep-nesting": names("[" * 100000 + "]" * 100000),
    "class-names-with-escapes-missing-one": escaped_class_names_missing_one,
    "images-too-few": images(np.zeros((N - 1, 8, 8), np.uint8)),
    "images-1d": images(np.zeros(N, np.uint8)),
    "images-2d": images(np.zeros((N, 8), np.uint8)),
    "images-2-channels": images(np.zeros((N, 8, 8, 2), np.uint8)),
    "images-5-channels": images(np.zeros((N, 8, 8, 5), np.uint8)),
    "images-5d": images(np.zeros((N, 8, 8, 3, 1), np.uint8)),
    "images-zero-size": images(np.zeros((N, 0, 0), np.uint8)),
    "images-float": images(np.zeros((N, 8, 8), np.float32)),
    "images-huge-header": images(npy_bytes("|u1", (N, 100000, 100000), b"\x00" * 1000)),
    "images-shape-overflow": images(npy_bytes("|u1", (N, 2**31, 2**31, 4), b"\x00" * 1000)),
    "losses-step-2^63": losses("step,loss\n0,1.0\n9223372036854775808,0.5\n"),
    "losses-step-2^64": losses("step,loss\n0,1.0\n18446744073709551616,0.5\n"),
    "losses-step-1e300": losses("step,loss\n0,1.0\n1e300,0.5\n"),
    "losses-step-negative": losses("step,loss\n0,1.0\n-5,0.5\n"),
    "losses-step-fractional": losses("step,loss\n0,1.0\n2.5,0.5\n"),
    "losses-step-nan": losses("step,loss\n0,1.0\nnan,0.5\n"),
    "losses-step-inf": losses("step,loss\n0,1.0\ninf,0.5\n"),
    "losses-loss-text": losses("step,loss\n0,1.0\n2,\x1b[31mhigh\x07\n"),
    "losses-no-header": losses("0,1.0\n2,0.5\n"),
    "losses-invalid-utf8": lambda run: ((run / "losses.csv").write_bytes(b"step,loss\n0,1.0\n2,0.\xff5\n"), ["losses.csv"])[1],
    "trainer-state-not-json": trainer_state("{'loss': 1}"),
    "trainer-state-array": trainer_state([{"loss": 0.5, "step": 2}]),
    "trainer-state-string": trainer_state('"hello"'),
    "trainer-state-invalid-utf8": lambda run: ((run / "checkpoint-10" / "trainer_state.json").write_bytes(b'{"log_history": [], "x": "\xff"}'),
                                               ["checkpoint-10/trainer_state.json"])[1],
    "escaped-checkpoint-name": escaped_checkpoint_name,
    "run-json-not-object": lambda run: ((run / "run.json").write_text("[1, 2]"), ["run.json"])[1],
}


@pytest.mark.parametrize("case", list(RUN_CASES))
def test_bad_run_is_refused_naming_the_file(run_and_out, case):
    run, out = run_and_out
    culprits = RUN_CASES[case](run)
    before = snapshot(run)
    res = embedlapse(*render_args(run, out))
    assert_refused(res, culprits)
    assert snapshot(out) == {}, f"left behind: {snapshot(out)}"
    assert snapshot(run) == before, "the run folder changed"


@pytest.mark.parametrize("case", list(RUN_CASES))
def test_inspect_reports_a_bad_run(run_and_out, case):
    run, _ = run_and_out
    culprits = RUN_CASES[case](run)
    res = embedlapse("inspect", run)
    assert_not_crashed(res)
    assert res.returncode == 1, f"inspect must fail on what render refuses\n{res!r}"
    assert not control_bytes(res.stdout + res.stderr), res
    assert any(c in res.out + res.err for c in culprits), res


def test_control_characters_in_a_run_path_are_escaped(run_and_out):
    run, out = run_and_out
    culprits, hostile = escaped_run_with_nan(run)
    res = embedlapse(*render_args(hostile, out))
    assert_refused(res, culprits)
    assert all(c in res.err for c in culprits), res
    assert snapshot(out) == {}


TRAINER_STATE_ODD_STEPS = {
    "trainer-state-step-string": trainer_state(state("ten")),
    "trainer-state-step-fractional": trainer_state(state(2.5)),
    "trainer-state-step-negative": trainer_state(state(-3)),
    "trainer-state-step-2^64+1": trainer_state('{"log_history": [{"loss": 0.5, "step": 18446744073709551617}]}'),
    "trainer-state-step-2^63": trainer_state('{"log_history": [{"loss": 0.5, "step": 9223372036854775808}]}'),
    "trainer-state-step-1e30": trainer_state(state(1e30)),
    "trainer-state-history-not-list": trainer_state({"log_history": {"loss": 0.5, "step": 2}}),
}


@pytest.mark.parametrize("case", list(TRAINER_STATE_ODD_STEPS))
def test_trainer_state_steps_out_of_range_are_refused_or_named(run_and_out, case):
    """A log entry whose step is no whole number from 0 to 2^53: refused, or left out with a warning naming the
    file (render and inspect alike); never wrapped, never dropped silently."""
    run, out = run_and_out
    culprit = TRAINER_STATE_ODD_STEPS[case](run)[0]
    res = embedlapse(*render_args(run, out))
    verdict = embedlapse("inspect", run)
    assert_not_crashed(res)
    assert_not_crashed(verdict)
    if res.returncode == 0:
        assert_rendered(res, out / "film.mp4", 3)
        assert culprit in res.err, f"the entry was dropped without a word\n{res!r}"
        assert culprit in verdict.out + verdict.err, f"inspect does not mention it\n{verdict!r}"
    else:
        assert_refused(res, [culprit])
        assert snapshot(out) == {}
        assert verdict.returncode == 1 and culprit in verdict.out


# Folders that are not checkpoints: ignored with a warning naming them, or refused naming them; never
# a crash and never a frame of their own.
ODD_FOLDER_CASES = {
    "checkpoint-20-digits": lambda run: "checkpoint-99999999999999999999",
    "checkpoint-2^63": lambda run: "checkpoint-9223372036854775808",
    "checkpoint-arabic-digit": lambda run: "checkpoint-\u0665",
    "checkpoint-fullwidth-digit": lambda run: "checkpoint-\uff15",
    "checkpoint-plus": lambda run: "checkpoint-+5",
    "checkpoint-minus": lambda run: "checkpoint--5",
    "checkpoint-float": lambda run: "checkpoint-5.0",
    "checkpoint-hex": lambda run: "checkpoint-0x5",
    "checkpoint-empty-step": lambda run: "checkpoint-",
    "checkpoint-with-space": lambda run: "checkpoint- 5",
}


@pytest.mark.parametrize("case", list(ODD_FOLDER_CASES))
def test_odd_checkpoint_names_are_skipped_or_refused(run_and_out, case):
    run, out = run_and_out
    name = ODD_FOLDER_CASES[case](run)
    (run / name).mkdir()
    np.save(run / name / "embeddings.npy", embeddings(5).astype(np.float32))
    res = embedlapse(*render_args(run, out))
    assert_not_crashed(res)
    assert_clean_text(res)
    if res.returncode == 0:
        assert probe_frames(out / "film.mp4") == 3, f"a folder that is not a checkpoint became a frame\n{res!r}"
    else:
        assert_refused(res, [name])


@pytest.mark.parametrize("kind", ["file", "empty-file", "fifo", "dangling-link", "link-to-file"])
def test_a_checkpoint_that_is_not_a_folder(run_and_out, kind):
    """Skipped with a warning naming it, or refused naming it: never a crash or a hang."""
    run, out = run_and_out
    path = run / "checkpoint-30"
    if kind == "file":
        path.write_bytes(np.lib.format.magic(1, 0) + b"junk")
    elif kind == "empty-file":
        path.write_bytes(b"")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "dangling-link":
        path.symlink_to("/nonexistent")
    else:
        (run / "elsewhere.npy").write_bytes(b"x")
        path.symlink_to("elsewhere.npy")
    before = snapshot(run)
    res = embedlapse(*render_args(run, out))
    assert_not_crashed(res)
    assert_clean_text(res)
    assert "checkpoint-30" in res.err, f"checkpoint-30 should be named (skipped or refused)\n{res!r}"
    if res.returncode == 0:
        assert probe_frames(out / "film.mp4") == 3
    else:
        assert_refused(res, ["checkpoint-30"])
        assert snapshot(out) == {}
    assert snapshot(run) == before


# ---------------------------------------------------------------- legitimate but unusual runs


def legit_loss(body):
    def build(root):
        tiny_run(root)
        (root / "losses.csv").write_text(body)
        return 3
    return build


def legit_npy(transform):
    def build(root):
        tiny_run(root, dtype=np.float64)
        for p in root.glob("checkpoint-*/embeddings.npy"):
            transform(p, np.load(p))
        return 3
    return build


def legit_bytes(root, body):
    tiny_run(root)
    (root / "losses.csv").write_bytes(body)
    return 3


def unicode_names(root):
    tiny_run(root)
    (root / "class_names.json").write_text(json.dumps(["猫 cat", "Ελληνικά", "🐕 emoji‍👩‍👩‍👧 zwj"]), encoding="utf-8")
    return 3


def control_names(root):
    tiny_run(root)
    (root / "class_names.json").write_text(json.dumps(["a\x1b[2Jb", "c\rd\x07", "e\u202ef\u2028g"]))
    return 3


def long_names(root):
    tiny_run(root)
    (root / "class_names.json").write_text(json.dumps(["x" * 1_000_000, "y " * 500_000, "z"]))
    return 3


def trainer_state_only(root):
    tiny_run(root, losses=False)
    for i, step in enumerate(STEPS):
        (root / f"checkpoint-{step}" / "trainer_state.json").write_text(json.dumps(
            {"epoch": i * 0.5, "global_step": step,
             "log_history": [{"loss": 1.0 / (s + 1), "step": s, "epoch": s / 40} for s in range(0, step + 1, 2)]
             + [{"eval_loss": 0.9, "step": step}, {"eval_accuracy": 0.5, "step": step}]}))
    return 3


def symlinked_files(root):
    tiny_run(root)
    store = root.parent / "store"
    store.mkdir()
    (root / "checkpoint-10" / "embeddings.npy").rename(store / "e.npy")
    (root / "checkpoint-10" / "embeddings.npy").symlink_to(store / "e.npy")
    shutil.move(root / "checkpoint-20", store / "c20")
    (root / "checkpoint-20").symlink_to(store / "c20")
    return 3


def big_endian_everything(root):
    tiny_run(root)
    np.save(root / "labels.npy", (np.arange(N) % 3).astype(">i8"))
    for p in root.glob("checkpoint-*/embeddings.npy"):
        np.save(p, np.asfortranarray(np.load(p).astype(">f8")))
    return 3


LEGIT_CASES = {
    "float16": lambda root: (tiny_run(root, dtype=np.float16), 3)[1],
    "big-endian-float64": lambda root: (tiny_run(root, dtype=">f8"), 3)[1],
    "big-endian-float32": lambda root: (tiny_run(root, dtype=">f4"), 3)[1],
    "big-endian-float16": lambda root: (tiny_run(root, dtype=">f2"), 3)[1],
    "fortran-order": legit_npy(lambda p, x: np.save(p, np.asfortranarray(x))),
    "fortran-big-endian-labels-too": big_endian_everything,
    "npy-version-3": legit_npy(lambda p, x: np.lib.format.write_array(open(p, "wb"), x, version=(3, 0))),
    "three-samples": lambda root: (tiny_run(root, n=3, images=False, labels=False), 3)[1],
    "three-samples-with-labels-and-images": lambda root: (tiny_run(root, n=3), 3)[1],
    "two-dimensions": lambda root: (tiny_run(root, d=2), 3)[1],
    "wide-embeddings": lambda root: (tiny_run(root, n=5, d=768), 3)[1],
    "one-checkpoint": lambda root: (tiny_run(root, steps=(7,)), 1)[1],
    "huge-step-gaps": lambda root: (tiny_run(root, steps=(0, 1, 10**6, 10**15)), 4)[1],
    "zero-padded-step": lambda root: (tiny_run(root, steps=("007", "010")), 2)[1],
    "no-labels": lambda root: (tiny_run(root, labels=False, names=False), 3)[1],
    "labels-without-names": lambda root: (tiny_run(root, names=False), 3)[1],
    "labels-uint8": lambda root: (tiny_run(root), np.save(root / "labels.npy", (np.arange(N) % 3).astype(np.uint8)), 3)[2],
    "more-names-than-labels": lambda root: (tiny_run(root), (root / "class_names.json").write_text(json.dumps([f"c{i}" for i in range(200)])), 3)[2],
    "nothing-optional": lambda root: (tiny_run(root, labels=False, names=False, images=False, losses=False), 3)[1],
    "unicode-class-names": unicode_names,
    "control-characters-in-class-names": control_names,
    "1MB-class-names": long_names,
    "rgba-images": lambda root: (tiny_run(root), np.save(root / "images.npy", np.zeros((N, 5, 7, 4), np.uint8) + 200), 3)[2],
    "one-pixel-images": lambda root: (tiny_run(root), np.save(root / "images.npy", np.zeros((N, 1, 1), np.uint8)), 3)[2],
    "losses-empty-body": legit_loss("step,loss\n"),
    "losses-crlf": legit_loss("step,loss\r\n0,1.0\r\n2,0.5\r\n"),
    "losses-bom-and-extra-columns": lambda root: legit_bytes(root, "\ufeffepoch,step,loss,lr\n0.1,0,1.0,1e-3\n0.2,2,0.5,1e-3\n".encode()),
    "losses-no-trailing-newline": legit_loss("step,loss\n0,1.0\n2,0.5"),
    "losses-1e300": legit_loss("step,loss\n0,1e300\n2,1.0\n4,0.5\n"),
    "losses-max-double": legit_loss("step,loss\n0,1.7976931348623157e308\n2,1.0\n"),
    "losses-range-overflows": legit_loss("step,loss\n0,1e308\n2,-1e308\n4,1.0\n"),
    "losses-nan": legit_loss("step,loss\n0,nan\n2,1.0\n4,nan\n"),
    "losses-inf": legit_loss("step,loss\n0,inf\n2,1.0\n4,-inf\n"),
    "losses-all-nan": legit_loss("step,loss\n0,nan\n2,nan\n"),
    "losses-denormal": legit_loss("step,loss\n0,5e-324\n2,1e-320\n"),
    "losses-constant": legit_loss("step,loss\n" + "".join(f"{s},0.25\n" for s in range(20))),
    "losses-single-row": legit_loss("step,loss\n10,0.25\n"),
    "losses-beyond-last-checkpoint": legit_loss("step,loss\n0,1.0\n4503599627370496,0.5\n"),
    "trainer-state-only": trainer_state_only,
    "symlinked-checkpoint-and-file": symlinked_files,
    "extra-files-in-checkpoints": lambda root: (tiny_run(root), (root / "checkpoint-10" / "model.safetensors").write_bytes(b"\x00" * 100),
                                                (root / "checkpoint-10" / "embeddings.npy.bak").write_bytes(b"junk"), 3)[3],
}


LEGIT_XFAIL = {}


@pytest.mark.parametrize("case", [pytest.param(c, marks=LEGIT_XFAIL.get(c, ()), id=c) for c in LEGIT_CASES])
def test_unusual_but_legitimate_runs_render(tmp_path, binary, case):
    run = tmp_path / "run"
    frames = LEGIT_CASES[case](run)
    before = snapshot(run)
    out = tmp_path / "out"
    out.mkdir()
    res = embedlapse("render", run, "-o", out / "film.mp4", "-o", out / "film.gif", "--size", "960x540")
    assert_rendered(res, out / "film.mp4", frames)
    assert probe_frames(out / "film.gif") == frames
    assert sorted(p.name for p in out.iterdir()) == ["film.gif", "film.mp4"], "temporary files left behind"
    assert snapshot(run) == before, "the run folder changed"
    verdict = embedlapse("inspect", run)
    assert_not_crashed(verdict)
    assert verdict.returncode == 0 and "problems: none" in verdict.out, f"inspect must accept what render draws\n{verdict!r}"
    assert not control_bytes(verdict.stdout), verdict


@pytest.mark.parametrize("title", ["t" * 120_000, "\x1b[2J\x1b[31mred\r\x07bell", "\u202eevil\u2028line", "مرحبا שלום 🐕" * 2000])
def test_hostile_titles_render(run_and_out, title):
    """argv caps one argument at 128 KiB, so the 'long title' is 120,000 characters."""
    run, out = run_and_out
    res = embedlapse("render", run, "-o", out / "film.mp4", "--title", title, "--size", "960x540")
    assert_rendered(res, out / "film.mp4", 3)


@pytest.mark.parametrize("fps", ["0.01", "120"])
def test_extreme_legal_fps_render_both_formats(run_and_out, fps):
    run, out = run_and_out
    res = embedlapse("render", run, "-o", out / "film.mp4", "-o", out / "film.gif", "--fps", fps, "--size", "960x540")
    assert_rendered(res, out / "film.gif", 3)
    assert probe_frames(out / "film.mp4") == 3


def test_output_name_with_control_characters_is_written_and_escaped(run_and_out):
    run, out = run_and_out
    video = out / "a\x1b[31m\rb\nc.mp4"
    res = embedlapse("render", run, "-o", video, "--size", "960x540")
    assert_rendered(res, video, 3)
    assert len([line for line in res.err.splitlines() if line.strip()]) <= 1, res


# ---------------------------------------------------------------- flags (refused before any work)


def film_flags(out):
    return ["-o", out / "film.mp4", "-o", out / "film.gif", "--frames-dir", out / "frames", "--dump-data", out / "dump",
            "--latest", out / "latest.png", "--timings", out / "timings.json"]


FLAG_CASES = {
    **{f"fps-{v}": ([f"--fps={v}"], "--fps") for v in ["0", "-1", "1e-300", "nan", "inf", "-inf", "1e300", "0.009", "120.5", "5x", ""]},
    **{f"size-{v}": ([f"--size={v}"], "--size") for v in ["0x0", "99999x99999", "641x360", "axb", "320x179", "-320x180",
                                                         "1280x720x3", "99999999999999999999x720", "x", "1280x", ""]},
    **{f"top-{v}": ([f"--top={v}"], "--top") for v in ["0", "-1", "33", str(10**20), "abc", "1.5"]},
    "align-sideways": (["--align=sideways"], "--align"),
    "fps-separate-negative": (["--fps", "-1"], "--fps"),
    "unknown-flag": (["--colour", "red"], "--colour"),
}


def flag_params(cases):
    return [pytest.param(c, id=c) for c in cases]


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory):
    """One run for the flag cases (each checks it is left unchanged), with DONE so that watch would end."""
    run = tiny_run(tmp_path_factory.mktemp("flags") / "run")
    (run / "DONE").write_text("")
    return run


@pytest.fixture
def out_dir(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    return out


@pytest.mark.parametrize("command", ["render", "watch"])
@pytest.mark.parametrize("case", flag_params(FLAG_CASES))
def test_bad_flag_is_refused_before_any_work(shared_run, out_dir, binary, command, case):
    run, out = shared_run, out_dir
    flag_args, flag = FLAG_CASES[case]
    if command == "watch" and flag == "--align":
        flag_args, flag = ["--idle-timeout=-5"], "--idle-timeout"
    before = snapshot(run)
    res = embedlapse(command, run, *film_flags(out), *flag_args)
    assert_refused(res, [flag], codes=(1, 64))
    assert snapshot(out) == {}, f"written before the flag was checked: {snapshot(out)}"
    assert snapshot(run) == before


@pytest.mark.parametrize("value", ["inf", "1e300", "0", "nan", "-1", "-inf", "0.01", "2592001", "1e-320"])
def test_bad_idle_timeout_is_refused(shared_run, out_dir, binary, value):
    run, out = shared_run, out_dir
    res = embedlapse("watch", run, "-o", out / "film.mp4", f"--idle-timeout={value}")
    assert_refused(res, ["--idle-timeout"], codes=(1, 64))
    assert snapshot(out) == {}


def bad_idx(directory, dims):
    import gzip
    directory.mkdir()
    for prefix in ("train", "t10k"):
        with gzip.open(directory / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
            f.write(bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in dims) + b"\x00" * 4096)
        with gzip.open(directory / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(bytes([0, 0, 8, 1]) + dims[0].to_bytes(4, "big") + b"\x00" * 64)


DEMO_CASES = {
    "steps-10^18": (["--steps", str(10**18)], "--steps"),
    "steps-0": (["--steps", "0"], "--steps"),
    "steps-10^20": (["--steps", str(10**20)], "--steps"),
    "checkpoint-every-0": (["--checkpoint-every", "0"], "--checkpoint-every"),
    "checkpoint-every-negative": (["--checkpoint-every", "-40"], "--checkpoint-every"),
    "checkpoint-every-negative-equals": (["--checkpoint-every=-40"], "--checkpoint-every"),
    "eval-size-2": (["--eval-size", "2"], "--eval-size"),
    "eval-size-10^12": (["--eval-size", str(10**12)], "--eval-size"),
    "pretrain-steps-negative": (["--pretrain-steps", "-1"], "--pretrain-steps"),
    "seed-negative": (["--seed", "-1"], "--seed"),
    "fps-1e-300": (["--fps", "1e-300"], "--fps"),
    "data-missing": (["--data", "{tmp}/nowhere"], "nowhere"),
    "data-idx-overflow": (["--data", "{tmp}/idx-overflow"], "idx-overflow"),
    "data-idx-huge": (["--data", "{tmp}/idx-huge"], "idx-huge"),
}


@pytest.mark.parametrize("case", flag_params(DEMO_CASES))
def test_bad_demo_flags_are_refused(tmp_path, binary, case):
    args, name = DEMO_CASES[case]
    bad_idx(tmp_path / "idx-overflow", (2**32 - 1, 2**32 - 1, 2**32 - 1))
    bad_idx(tmp_path / "idx-huge", (60000, 65536, 65536))
    out = tmp_path / "out"
    out.mkdir()
    args = [a.format(tmp=tmp_path) for a in args]
    res = embedlapse("demo", "-o", out / "demo.mp4", "--save-run", out / "run", "--steps", "40", "--pretrain-steps", "10",
                     "--eval-size", "50", *args)
    assert_refused(res, [name], codes=(1, 64))
    assert snapshot(out) == {}, f"left behind: {snapshot(out)}"


OUTPUT_CASES = {
    "same-output-twice": lambda o: (["-o", o / "a.mp4", "-o", o / "a.mp4"], "a.mp4"),
    "same-output-dot-slash": lambda o: (["-o", o / "a.mp4", "-o", f"{o}/./a.mp4"], "a.mp4"),
    "same-output-double-slash": lambda o: (["-o", o / "a.gif", "-o", f"{o}//a.gif"], "a.gif"),
    "same-output-dot-dot": lambda o: (["-o", o / "a.mp4", "-o", o / "sub" / ".." / "a.mp4"], "a.mp4"),
    "same-output-via-link": lambda o: ((o / "link").symlink_to(o), ["-o", o / "a.mp4", "-o", o / "link" / "a.mp4"], "a.mp4")[1:],
    "latest-equals-output": lambda o: (["-o", o / "a.mp4", "--latest", o / "a.mp4"], "a.mp4"),
    "latest-is-mp4": lambda o: (["--latest", o / "x.mp4"], "--latest"),
    "latest-is-a-frame": lambda o: (["--frames-dir", o / "f", "--latest", o / "f" / "frame-0000.png"], "frame-0000.png"),
    "timings-equals-output": lambda o: (["-o", o / "a.mp4", "--timings", o / "a.mp4"], "a.mp4"),
    "extension-avi": lambda o: (["-o", o / "a.avi"], "a.avi"),
    "extension-none": lambda o: (["-o", o / "film"], "film"),
    "extension-tmp": lambda o: (["-o", o / "a.mp4.tmp"], "a.mp4.tmp"),
    "extension-png": lambda o: (["-o", o / "a.png"], "a.png"),
    "output-empty": lambda o: (["-o", ""], "-o"),
    "output-missing-folder": lambda o: (["-o", o / "missing" / "a.mp4"], "missing"),
    "output-parent-is-a-file": lambda o: ((o / "file").write_text("x"), ["-o", o / "file" / "a.mp4"], "file")[1:],
    "output-is-a-directory": lambda o: ((o / "a.mp4").mkdir(), ["-o", o / "a.mp4"], "a.mp4")[1:],
    "gif-is-a-directory": lambda o: ((o / "a.gif").mkdir(), ["-o", o / "a.mp4", "-o", o / "a.gif"], "a.gif")[1:],
    "output-trailing-slash": lambda o: (["-o", f"{o}/a.mp4/"], "a.mp4"),
    "timings-missing-folder": lambda o: (["-o", o / "a.mp4", "--timings", o / "missing" / "t.json"], "missing"),
    "timings-is-a-directory": lambda o: ((o / "t.json").mkdir(), ["-o", o / "a.mp4", "--timings", o / "t.json"], "t.json")[1:],
    "latest-missing-folder": lambda o: (["-o", o / "a.mp4", "--latest", o / "missing" / "l.png"], "missing"),
    "latest-is-a-directory": lambda o: ((o / "l.png").mkdir(), ["-o", o / "a.mp4", "--latest", o / "l.png"], "l.png")[1:],
    "frames-dir-is-a-file": lambda o: ((o / "frames").write_text("x"), ["-o", o / "a.mp4", "--frames-dir", o / "frames"], "frames")[1:],
    "dump-data-is-a-file": lambda o: ((o / "dump").write_text("x"), ["-o", o / "a.mp4", "--dump-data", o / "dump"], "dump")[1:],
    "output-in-dev-null-folder": lambda o: (["-o", "/dev/null/a.mp4"], "/dev/null/a.mp4"),
    "output-name-too-long": lambda o: (["-o", o / ("x" * 300 + ".mp4")], "xxxx"),
}


@pytest.mark.parametrize("command", ["render", "watch"])
@pytest.mark.parametrize("case", list(OUTPUT_CASES))
def test_bad_output_paths_are_refused_before_any_work(shared_run, out_dir, binary, command, case):
    run, out = shared_run, out_dir
    args, name = OUTPUT_CASES[case](out)
    before_out, before_run = snapshot(out), snapshot(run)
    res = embedlapse(command, run, *args)
    assert_refused(res, [name], codes=(1, 64))
    assert snapshot(out) == before_out, f"written although refused: {set(snapshot(out)) - set(before_out)}"
    assert snapshot(run) == before_run


# ---------------------------------------------------------------- watch


def start_watch(run, *args, log_dir=None):
    err = open(Path(log_dir or Path(run).parent) / f"watch-{time.monotonic_ns()}.err", "w+b")
    proc = subprocess.Popen([str(BINARY), "watch", str(run), *map(str, args), *ONE_FRAME_PER_CHECKPOINT], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    proc.err_file = err
    return proc


def stderr_of(proc):
    proc.err_file.seek(0)
    return proc.err_file.read()



def end(proc, timeout=TIMEOUT):
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise AssertionError(f"watch did not exit within {timeout}s:\n{stderr_of(proc)!r}")
    return proc.returncode, stderr_of(proc)


@pytest.fixture
def watchers():
    started = []
    yield started
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def place(run, step, array):
    d = Path(run) / f"checkpoint-{step}"
    d.mkdir(parents=True, exist_ok=True)
    with open(d / ".tmp.npy", "wb") as f:
        np.save(f, array)
    (d / ".tmp.npy").rename(d / "embeddings.npy")


def test_watch_waits_for_a_run_folder_that_appears(tmp_path, binary, watchers):
    run, video = tmp_path / "later" / "run", tmp_path / "live.mp4"
    proc = start_watch(run, "-o", video, log_dir=tmp_path)
    watchers.append(proc)
    assert wait_for(lambda: b"wait" in stderr_of(proc).lower(), 10), f"no word that it waits: {stderr_of(proc)!r}"
    assert proc.poll() is None, f"watch gave up on a missing run folder: {stderr_of(proc)!r}"
    time.sleep(0.5)
    run.mkdir(parents=True)
    np.save(run / "labels.npy", np.arange(N) % 3)
    for i in range(2):
        place(run, i * 10, embeddings(i).astype(np.float32))
    assert wait_for(lambda: probe_frames(video) == 2, 20), f"frames: {probe_frames(video)}\n{stderr_of(proc)!r}"
    (run / "DONE").write_text("")
    code, err = end(proc)
    assert code == 0 and not control_bytes(err), err
    assert probe_frames(video) == 2


def test_watch_of_a_deleted_run_finalises_and_fails(tmp_path, binary, watchers):
    run, video = tmp_path / "run", tmp_path / "live.mp4"
    run.mkdir()
    for i in range(2):
        place(run, i * 10, embeddings(i).astype(np.float32))
    proc = start_watch(run, "-o", video, "-o", tmp_path / "live.gif")
    watchers.append(proc)
    assert wait_for(lambda: probe_frames(video) == 2, 20), stderr_of(proc)
    shutil.rmtree(run)
    deleted = time.time()
    code, err = end(proc, timeout=15)
    assert time.time() - deleted < 5, f"took {time.time() - deleted:.1f}s to notice the deletion"
    assert 0 < code < 128, f"exit {code}: a deleted run must end the watch with a failure\n{err!r}"
    assert str(run).encode() in err and not control_bytes(err), err
    assert probe_frames(video) == 2 and probe_frames(tmp_path / "live.gif") == 2, "the frames so far stay playable"
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name or p.name.startswith(".")]


@pytest.mark.parametrize("dtype", [">f8"])
def test_watch_never_films_a_presized_file_of_zeros(tmp_path, binary, watchers, dtype):
    run, video, dump = tmp_path / "run", tmp_path / "live.mp4", tmp_path / "dump"
    run.mkdir()
    place(run, 0, embeddings(0).astype(np.float32))
    proc = start_watch(run, "-o", video, "--dump-data", dump)
    watchers.append(proc)
    assert wait_for(lambda: probe_frames(video) == 1, 20), stderr_of(proc)
    (run / "checkpoint-10").mkdir()
    filled = embeddings(1).astype(dtype)
    mm = np.lib.format.open_memmap(run / "checkpoint-10" / "embeddings.npy", mode="w+", dtype=filled.dtype, shape=filled.shape)
    mm.flush()
    time.sleep(1.0)
    mm[:] = filled
    mm.flush()
    del mm
    assert wait_for(lambda: probe_frames(video) == 2, 20), f"frames {probe_frames(video)}\n{stderr_of(proc)!r}"
    (run / "DONE").write_text("")
    code, err = end(proc)
    assert code == 0, err
    pca = np.load(dump / "pca-10.npy")
    x = filled.astype(np.float64)
    x -= x.mean(0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    expected = x @ vt[:2].T
    signs = np.sign((pca * expected).sum(0))
    assert np.abs(pca * signs - expected).max() < 1e-3 * np.abs(expected).max(), "the frame shows the zeros, not the data"


def test_watch_refuses_a_fifo_instead_of_hanging(tmp_path, binary, watchers):
    run, video = tmp_path / "run", tmp_path / "live.mp4"
    run.mkdir()
    place(run, 0, embeddings(0).astype(np.float32))
    (run / "checkpoint-10").mkdir()
    os.mkfifo(run / "checkpoint-10" / "embeddings.npy")
    (run / "DONE").write_text("")
    proc = start_watch(run, "-o", video)
    watchers.append(proc)
    code, err = end(proc, timeout=20)
    assert 0 < code < 128 and b"checkpoint-10/embeddings.npy" in err, err
    assert not control_bytes(err)


def test_watch_with_stop_with_parent_ends_when_its_parent_dies(tmp_path, binary, watchers):
    run, video = tmp_path / "run", tmp_path / "live.mp4"
    run.mkdir()
    place(run, 0, embeddings(0).astype(np.float32))
    old = time.time() - 120  # written before the watch began: no settle wait
    os.utime(run / "checkpoint-0" / "embeddings.npy", (old, old))
    pidfile = tmp_path / "pid"
    parent = subprocess.Popen(["sh", "-c", f'"$0" watch "$1" -o "$2" --stop-with-parent --tween 1 2>/dev/null & echo $! > "$3"; sleep 2',
                               str(BINARY), str(run), str(video), str(pidfile)], start_new_session=True)
    watchers.append(parent)
    parent.wait(timeout=20)
    pid = int(pidfile.read_text())
    gone = wait_for(lambda: not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2], 15)
    if not gone:
        os.kill(pid, signal.SIGKILL)
    assert gone, "the watcher outlived its parent"
    assert probe_frames(video) == 1, "the video is finalised"
