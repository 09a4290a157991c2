"""The Python helper: layout, dtypes, atomic writes, and a simulated training rendered live by the real binary."""
import json
import os
import re
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

import embedlapse
from embedlapse import RunWriter

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
            deadline = time.time() + 30
            while frames_in(video) != step // 20 + 1 and time.time() < deadline:
                time.sleep(0.05)
            seen.append(frames_in(video))
    _, err = watcher.communicate(timeout=60)
    assert watcher.returncode == 0, err
    assert seen == [1, 2, 3, 4, 5, 6], "the video grows with each checkpoint"
    assert frames_in(video) == 6


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
