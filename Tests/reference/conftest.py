"""Shared fixtures: the built binary, the runs to compare on, and rendered dumps (cached per session)."""
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("EMBEDLAPSE_SHARED", ROOT.parent / "shared"))
BINARY = Path(os.environ.get("EMBEDLAPSE_BIN", ROOT / ".build" / "release" / "embedlapse"))


# Tests about inputs, outputs and the live edge film one frame per checkpoint: their counts stay
# plain and they run fast. Tweening has tests of its own (test_tween.py).
ONE_FRAME_PER_CHECKPOINT = ("--tween", "1")


def run_cli(*args, check=True, timeout=600):
    """Runs the real embedlapse binary; returns the CompletedProcess."""
    proc = subprocess.run([str(BINARY), *map(str, args)], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"embedlapse {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def checkpoints(run):
    """(step, embeddings.npy path) of each checkpoint of a run, in step order."""
    found = []
    for d in Path(run).iterdir():
        m = re.fullmatch(r"checkpoint-(\d+)", d.name)
        if m and (d / "embeddings.npy").exists():
            found.append((int(m.group(1)), d / "embeddings.npy"))
    return sorted(found)


def frames_in(path):
    """Frames ffprobe can decode in the file right now, or None if it cannot read it (yet)."""
    if not Path(path).exists():
        return None
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-show_entries", "stream=nb_read_frames",
                          "-of", "csv=p=0", str(path)], capture_output=True, text=True)
    return int(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip().isdigit() else None


def wait_for(predicate, timeout=30):
    """Polls `predicate` every 50 ms; whether it came true within `timeout` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def frame_written(frames, index):
    """Whether a render has written frame `index` into `frames`: in place, or staged in the hidden
    folder where an offline render keeps its frames until it finishes."""
    name = f"frame-{index:04d}.png"
    return (Path(frames) / name).exists() or any(Path(frames).glob(f".embedlapse-staging.*.partial/{name}"))


def writing_unnamed_file(pid, folder, larger_than=-1):
    """Whether process `pid` holds open an unnamed file (O_TMPFILE) in `folder`, of more than
    `larger_than` bytes: a whole-or-nothing output being written, which has no name until it is complete."""
    prefix = str(Path(folder).resolve()) + "/#"
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith(prefix) and target.endswith("(deleted)") and os.stat(f"/proc/{pid}/fd/{fd}").st_size > larger_than:
                return True
    except OSError:
        return False
    return False


@pytest.fixture(scope="session")
def binary():
    assert BINARY.exists(), f"build first: {BINARY} is missing (make test builds it)"
    return BINARY


@pytest.fixture(scope="session")
def synthetic_run(tmp_path_factory):
    """A synthetic run from the shared reference generator: blob to clusters, planted outliers."""
    generator = SHARED / "reference" / "make_synthetic_run.py"
    assert generator.exists(), f"{generator} is missing: the tests need ../shared beside the repository"
    out = tmp_path_factory.mktemp("synthetic") / "run"
    subprocess.run([sys.executable, str(generator), str(out), "--n", "700", "--dim", "96", "--checkpoints", "8",
                    "--seed", "11"], check=True, capture_output=True)
    return out


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory, binary):
    """A run trained by the built-in Swift trainer and saved with --save-run."""
    out = tmp_path_factory.mktemp("demo") / "run"
    run_cli("demo", "--save-run", out, "--steps", "120", "--pretrain-steps", "120", "--checkpoint-every", "40",
            "--eval-size", "800")
    return out


def runs_to_compare():
    runs = [pytest.param("samples", id="cnn-fmnist"), pytest.param("synthetic", id="synthetic"),
            pytest.param("demo", id="swift-trainer")]
    for extra in filter(None, os.environ.get("EMBEDLAPSE_EXTRA_RUNS", "").split(":")):
        runs.append(pytest.param(extra, id=Path(extra).name))
    return runs


@pytest.fixture
def resolve_run(request):
    def resolve(name):
        if name == "samples":
            return ROOT / "samples" / "cnn-fmnist"
        if name == "synthetic":
            return request.getfixturevalue("synthetic_run")
        if name == "demo":
            return request.getfixturevalue("demo_run")
        return Path(name)
    return resolve
