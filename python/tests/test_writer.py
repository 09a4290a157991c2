"""The Python helper: layout, dtypes, atomic writes, and a simulated training rendered live by the real binary."""
import json
import os
import re
import stat
import subprocess
import sys
import time
import types
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

import embedlapse
from embedlapse import RunWriter


@pytest.fixture(autouse=True)
def single_process(monkeypatch):
    """Tests run as the main process, even inside a distributed job (RANK decides who writes)."""
    monkeypatch.delenv("RANK", raising=False)

ROOT = Path(__file__).resolve().parents[2]
BINARY = os.environ.get("EMBEDLAPSE_BIN", str(ROOT / ".build" / "release" / "embedlapse"))


def frames_in(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-show_entries", "stream=nb_read_frames",
                          "-of", "csv=p=0", str(path)], capture_output=True, text=True)
    return int(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip().isdigit() else None


def test_layout_and_dtypes(tmp_path):
    labels = np.arange(50) % 5
    images = np.random.default_rng(0).integers(0, 255, (50, 28, 28), dtype=np.uint8)
    with RunWriter(tmp_path / "run", labels=labels.astype(np.int32), class_names=list("abcde"), images=images,
                   dtype="float16") as run:
        run.log_loss(5, 2.5, epoch=0.1)
        run.checkpoint(0, np.ones((50, 8)))
        run.log_loss(10, 1.25)
        run.checkpoint(10, [[float(i + j) for j in range(8)] for i in range(50)], epoch=0.2)
        assert not (tmp_path / "run" / "DONE").exists()
    root = tmp_path / "run"
    assert (root / "DONE").exists()
    assert np.load(root / "labels.npy").dtype == np.int64
    assert json.loads((root / "class_names.json").read_text()) == list("abcde")
    assert np.array_equal(np.load(root / "images.npy"), images)
    e = np.load(root / "checkpoint-10" / "embeddings.npy")
    assert e.dtype == np.float16 and e.shape == (50, 8) and e[3, 2] == 5
    state = json.loads((root / "checkpoint-10" / "trainer_state.json").read_text())
    assert state["epoch"] == 0.2 and [h["step"] for h in state["log_history"]] == [5, 10]
    assert (root / "losses.csv").read_text().splitlines()[0] == "step,loss,epoch"


def test_large_images_become_thumbnails(tmp_path):
    images = np.zeros((4, 256, 200, 3), np.uint8)
    RunWriter(tmp_path / "run", images=images)
    assert np.load(tmp_path / "run" / "images.npy").shape == (4, 64, 50, 3)


def test_every_file_is_written_under_a_temporary_name_then_renamed(tmp_path, monkeypatch):
    renames = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (renames.append((a, b)), real_replace(a, b)))
    with RunWriter(tmp_path / "run", labels=np.arange(10), class_names=["x"] * 10) as run:
        run.log_loss(1, 1.0)
        run.checkpoint(1, np.zeros((10, 4)))
    names = {os.path.relpath(b, tmp_path / "run") for _, b in renames}
    assert {"labels.npy", "class_names.json", "losses.csv", "checkpoint-1/trainer_state.json",
            "checkpoint-1/embeddings.npy", "DONE"} <= names
    for a, b in renames:
        assert os.path.dirname(a) == os.path.dirname(b) and os.path.basename(a).startswith(".")
    assert not [p for p in (tmp_path / "run").rglob(".*")], "no temporary files left"


def test_a_failed_write_leaves_no_file(tmp_path, monkeypatch):
    run = RunWriter(tmp_path / "run")
    monkeypatch.setattr(np, "save", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        run.checkpoint(0, np.zeros((5, 3)))
    assert not list((tmp_path / "run").rglob("*.npy")) and not list((tmp_path / "run").rglob(".*"))


@pytest.mark.parametrize("bad,message", [(np.zeros(5), "2-D"), (np.full((10, 3), np.nan), "NaN"), (np.zeros((9, 3)), "9 rows")])
def test_bad_embeddings_are_refused(tmp_path, bad, message):
    run = RunWriter(tmp_path / "run", labels=np.arange(10))
    with pytest.raises(ValueError, match=message):
        run.checkpoint(0, bad)


def test_a_simulated_training_renders_live_in_the_real_watcher(tmp_path):
    run_dir, video = tmp_path / "run", tmp_path / "live.mp4"
    rng = np.random.default_rng(1)
    labels = np.arange(400) % 4
    watcher = subprocess.Popen([BINARY, "watch", str(run_dir), "-o", str(video)], stderr=subprocess.PIPE, text=True)
    seen = []
    with RunWriter(run_dir, labels=labels, class_names=["w", "x", "y", "z"],
                   images=rng.integers(0, 255, (400, 16, 16), dtype=np.uint8)) as run:
        for step in range(0, 120, 20):
            for s in range(step - 19, step + 1):
                if s > 0:
                    run.log_loss(s, 2.0 / s)
            separation = step / 40
            run.checkpoint(step, rng.standard_normal((400, 24)) + separation * np.eye(4, 24)[labels])
            # Tweened (10 frames a checkpoint), the live film runs one checkpoint behind: a segment
            # is drawn when the checkpoint that ends it lands.
            expected = step // 20 * 10 or None
            deadline = time.time() + 30
            while frames_in(video) != expected and time.time() < deadline:
                time.sleep(0.05)
            seen.append(frames_in(video))
    _, err = watcher.communicate(timeout=60)
    assert watcher.returncode == 0, err
    assert seen == [None, 10, 20, 30, 40, 50], "the video grows with each checkpoint"
    assert frames_in(video) == 51, "and catches up at the end"


def readme_examples():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Use it with your training", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_readme_examples_are_valid_python_and_use_this_api():
    blocks = readme_examples()
    assert len(blocks) == 2
    for block in blocks:
        compile(block, "README.md", "exec")
    assert "RunWriter(" in blocks[0] and "EmbedlapseCallback(" in blocks[1]
    assert hasattr(embedlapse, "RunWriter")


def test_readme_pytorch_example_runs(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    exec(compile(readme_examples()[0], "README.md", "exec"), {})
    assert (tmp_path / "runs" / "torch-demo" / "DONE").exists()
    assert len(list((tmp_path / "runs" / "torch-demo").glob("checkpoint-*/embeddings.npy"))) == 13


def test_huggingface_callback_with_a_tiny_model(tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=32, num_labels=3)
    model = transformers.BertForSequenceClassification(config)
    g = torch.Generator().manual_seed(0)
    rows = [{"input_ids": torch.randint(0, 50, (8,), generator=g), "labels": torch.tensor(i % 3)} for i in range(64)]

    class Rows(torch.utils.data.Dataset):
        def __len__(self):
            return len(rows)

        def __getitem__(self, i):
            return rows[i]

    callback = embedlapse.EmbedlapseCallback(Rows(), labels=np.arange(64) % 3, every_steps=4)
    args = transformers.TrainingArguments(str(tmp_path / "out"), max_steps=8, per_device_train_batch_size=8,
                                          logging_steps=2, save_strategy="no", report_to=[], use_cpu=True)
    transformers.Trainer(model=model, args=args, train_dataset=Rows(), callbacks=[callback]).train()
    out = tmp_path / "out"
    assert (out / "DONE").exists()
    assert sorted(int(p.parent.name.split("-")[1]) for p in out.glob("checkpoint-*/embeddings.npy")) == [0, 4, 8]
    assert np.load(out / "checkpoint-8" / "embeddings.npy").shape == (64, 16)


# Re-running into the same folder: refused, or with overwrite=True the old run's files removed (only those).

def test_a_folder_that_is_not_empty_is_refused(tmp_path):
    with RunWriter(tmp_path / "run", labels=np.arange(5)) as run:
        run.checkpoint(0, np.zeros((5, 2)))
    with pytest.raises(FileExistsError, match=r"run.*not empty.*overwrite=True"):
        RunWriter(tmp_path / "run", labels=np.arange(5))
    assert (tmp_path / "run" / "DONE").exists() and (tmp_path / "run" / "checkpoint-0" / "embeddings.npy").exists()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="notes"):
        RunWriter(tmp_path / "notes")
    RunWriter(tmp_path / "new")  # a new folder, or an empty one, is fine
    (tmp_path / "empty").mkdir()
    RunWriter(tmp_path / "empty")


def test_overwrite_removes_the_old_run_and_nothing_else(tmp_path):
    with RunWriter(tmp_path / "run", labels=np.arange(5)) as run:
        run.log_loss(1, 1.0)
        run.checkpoint(7, np.zeros((5, 2)))
    (tmp_path / "run" / "stray.txt").write_text("old")
    old_id = json.loads((tmp_path / "run" / "run.json").read_text())["run_id"]
    run = RunWriter(tmp_path / "run", class_names=["a"], overwrite=True)
    # stray.txt is not Embedlapse's: it stays, and the new run is written beside it.
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["class_names.json", "embedlapse-manifest.json",
                                                                     "run.json", "stray.txt"]
    assert (tmp_path / "run" / "stray.txt").read_text() == "old"
    assert run.run_id != old_id


def test_a_bad_argument_does_not_clear_the_previous_run(tmp_path):
    with RunWriter(tmp_path / "run", labels=np.arange(5)) as run:
        run.checkpoint(0, np.zeros((5, 2)))
    with pytest.raises(ValueError):
        RunWriter(tmp_path / "run", labels=np.zeros(5), overwrite=True)  # float labels
    assert (tmp_path / "run" / "checkpoint-0" / "embeddings.npy").exists()


def test_a_shared_folder_refuses_only_a_previous_run(tmp_path):
    out = tmp_path / "out"
    (out / "runs").mkdir(parents=True)  # a Trainer's logging folder
    (out / "checkpoint-5").mkdir()
    (out / "checkpoint-5" / "model.safetensors").write_bytes(b"weights")
    assert embedlapse.previous_run(out) == []
    RunWriter(out, shared=True).checkpoint(5, np.zeros((4, 2)))
    assert embedlapse.previous_run(out)
    other = tmp_path / "checkpoint-9"
    (other / "runs").mkdir(parents=True)
    (other / "checkpoint-9").mkdir()
    (other / "checkpoint-9" / "embeddings.npy").write_bytes(b"")
    assert embedlapse.previous_run(other) == [str(other / "checkpoint-9" / "embeddings.npy")]
    # Nothing says the helper wrote it (no manifest, no run.json of its own): refused, even with
    # overwrite, for Embedlapse never removes a file it did not write.
    for overwrite in (False, True):
        with pytest.raises(FileExistsError, match=rf"{other}.*embeddings.npy.*did not write.*move it away"):
            RunWriter(other, shared=True, overwrite=overwrite)
    # Root files alone are no run (no checkpoint), but with no manifest nor a run.json of this helper's
    # nothing says Embedlapse wrote them: refused all the same, not replaced.
    for name in ["run.json", "DONE", "labels.npy", "class_names.json", "images.npy", "losses.csv"]:
        other = tmp_path / name
        (other / "runs").mkdir(parents=True)
        (other / name).write_bytes(b"theirs")
        assert embedlapse.previous_run(other) == []
        with pytest.raises(FileExistsError, match=rf"{other}.*{name}.*did not write"):
            RunWriter(other, shared=True)
        assert (other / name).read_bytes() == b"theirs"


def test_overwrite_in_a_shared_folder_removes_only_the_previous_run(tmp_path):
    out = tmp_path / "out"
    (out / "runs").mkdir(parents=True)
    (out / "runs" / "events").write_text("trainer logs")
    (out / "config.json").write_text("{}")
    with RunWriter(out, labels=np.arange(4), class_names="abcd", images=np.zeros((4, 2, 2), np.uint8),
                   shared=True) as run:
        run.log_loss(1, 1.0)
        run.checkpoint(5, np.zeros((4, 2)))
    (out / "checkpoint-10").mkdir()
    (out / "checkpoint-10" / "model.safetensors").write_bytes(b"old weights")
    RunWriter(out, shared=True, overwrite=True)
    # checkpoint-5 was the writer's (and is now empty): it goes. checkpoint-10 is the Trainer's: it stays.
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint-10", "config.json", "embedlapse-manifest.json",
                                                    "run.json", "runs"]
    assert (out / "checkpoint-10" / "model.safetensors").read_bytes() == b"old weights"
    assert (out / "runs" / "events").read_text() == "trainer logs"


# Every run says who it is.

def test_run_json_comes_first_and_identifies_the_run(tmp_path, monkeypatch):
    written = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (written.append(os.path.basename(b)), real_replace(a, b)))
    first = RunWriter(tmp_path / "a", labels=np.arange(3), class_names="xyz", images=np.zeros((3, 2, 2), np.uint8))
    # The manifest lists the files before they are written; run.json is the first of the run's files.
    assert written == ["embedlapse-manifest.json", "run.json", "labels.npy", "class_names.json", "images.npy"]
    meta = json.loads((tmp_path / "a" / "run.json").read_text())
    assert set(meta) == {"format", "run_id", "created", "writer"}
    assert meta["format"] == 1
    assert re.fullmatch(r"[0-9a-f]{32}", meta["run_id"]) and meta["run_id"] == first.run_id
    created = datetime.fromisoformat(meta["created"].replace("Z", "+00:00"))
    assert created.utcoffset() == timedelta(0)
    assert abs((datetime.now(timezone.utc) - created).total_seconds()) < 60
    assert meta["writer"] == f"embedlapse-python {embedlapse.__version__}"
    assert RunWriter(tmp_path / "b").run_id != first.run_id


def test_the_package_version_is_the_installed_one():
    from importlib.metadata import version
    assert version("embedlapse") == embedlapse.__version__


# The completion marker, after the embeddings.

def test_each_checkpoint_ends_with_its_complete_marker(tmp_path, monkeypatch):
    run = RunWriter(tmp_path / "run")
    run.log_loss(1, 1.0)
    written = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (written.append(os.path.relpath(b, tmp_path / "run")),
                                                     real_replace(a, b)))
    run.checkpoint(3, np.zeros((4, 2)))
    assert written == ["embedlapse-manifest.json", "losses.csv", "checkpoint-3/trainer_state.json",
                       "checkpoint-3/embeddings.npy", "checkpoint-3/embeddings.npy.complete"]
    listed = json.loads((tmp_path / "run" / "embedlapse-manifest.json").read_text())
    assert set(listed["files"]) == {"run.json", "losses.csv", "checkpoint-3/trainer_state.json",
                                    "checkpoint-3/embeddings.npy", "checkpoint-3/embeddings.npy.complete"}
    assert listed["folders"] == ["checkpoint-3"]
    assert (tmp_path / "run" / "checkpoint-3" / "embeddings.npy.complete").read_bytes() == b""


def test_no_marker_when_the_embeddings_could_not_be_written(tmp_path, monkeypatch):
    run = RunWriter(tmp_path / "run")
    monkeypatch.setattr(np, "save", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        run.checkpoint(0, np.zeros((5, 3)))
    assert not (tmp_path / "run" / "checkpoint-0" / "embeddings.npy.complete").exists()


# File modes follow the umask, as files that open() creates do.

@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        with RunWriter(tmp_path / "run", labels=np.arange(3)) as run:
            run.log_loss(1, 1.0)
            run.checkpoint(1, np.zeros((3, 2)))
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert len(files) == 8  # the manifest included
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == mode, path


# Distributed training: only rank 0 writes.

@pytest.mark.parametrize("rank,writes", [(None, True), ("0", True), ("1", False), ("7", False)])
def test_only_rank_0_writes(tmp_path, monkeypatch, rank, writes):
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    if rank is None:
        monkeypatch.delenv("RANK", raising=False)
    else:
        monkeypatch.setenv("RANK", rank)
    assert embedlapse.is_main_process() is writes
    with RunWriter(tmp_path / "run", labels=np.arange(3), class_names="abc") as run:
        run.log_loss(1, 1.0)
        run.checkpoint(1, np.zeros((3, 2)))
        run.checkpoint(2, np.zeros((3, 2)))
    assert (tmp_path / "run").exists() is writes
    if writes:
        assert (tmp_path / "run" / "DONE").exists()


def fake_torch(initialised, rank):
    distributed = types.SimpleNamespace(is_available=lambda: True, is_initialized=lambda: initialised,
                                        get_rank=lambda: rank)
    return types.SimpleNamespace(distributed=distributed)


def test_torch_distributed_decides_the_rank_when_initialised(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setitem(sys.modules, "torch", fake_torch(True, 2))
    assert not embedlapse.is_main_process()
    run = RunWriter(tmp_path / "run", labels=np.arange(3))
    run.checkpoint(0, np.zeros((3, 2)))
    run.close()
    assert not (tmp_path / "run").exists()
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setitem(sys.modules, "torch", fake_torch(True, 0))
    assert embedlapse.is_main_process()
    monkeypatch.setitem(sys.modules, "torch", fake_torch(False, 0))  # not initialised: RANK decides
    assert not embedlapse.is_main_process()
