"""Embedlapse never changes or deletes a file it did not write (issue 22): overwrite, resume, a failed start.

A Trainer's output_dir is made of bytes here (checkpoint-<step> folders with weights, optimizer,
scheduler and RNG state), and every file not Embedlapse's is compared byte for byte afterwards. The
callback is driven as in test_callback.py; where transformers is installed, a real Trainer resumes too."""
import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

import embedlapse
from embedlapse import RunWriter
from callback_fixture import callback_module  # noqa: F401 (a fixture)
from test_callback import Training as CallbackTraining

MANIFEST = "embedlapse-manifest.json"
TRAINER_FILES = ("model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json",
                 "training_args.bin", "config.json")
OURS = {"run.json", "DONE", "labels.npy", "class_names.json", "images.npy", "losses.csv", MANIFEST,
        "embeddings.npy", "embeddings.npy.complete"}


@pytest.fixture(autouse=True)
def single_process(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)


def trainer_save(out, step):
    """What a HuggingFace Trainer saves at `step`: its files, different bytes for every step."""
    folder = Path(out) / f"checkpoint-{step}"
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(TRAINER_FILES):
        data = (json.dumps({"global_step": step, "best_metric": None, "log_history": []}).encode()
                if name == "trainer_state.json" else os.urandom(64) + f"{name} {step} {i}".encode())
        (folder / name).write_bytes(data)


def not_ours(out):
    """Every file under out that Embedlapse did not write, with its bytes."""
    return {str(p.relative_to(out)): p.read_bytes() for p in Path(out).rglob("*")
            if p.is_file() and p.name not in OURS and not (p.name == "trainer_state.json" and is_ours(p))}


def is_ours(trainer_state):
    return "best_metric" not in json.loads(trainer_state.read_text())


def embedding_steps(out):
    return sorted(int(p.parent.name.split("-")[1]) for p in Path(out).glob("checkpoint-*/embeddings.npy"))


def run_id(out):
    return json.loads((Path(out) / "run.json").read_text())["run_id"]


def a_trainer_run(out, steps=range(0, 301, 50), saves=(100, 200, 300)):
    """A training into out: the Trainer saves at `saves`, the writer embeds at `steps` (losses at every 10)."""
    (Path(out) / "runs").mkdir(parents=True, exist_ok=True)
    (Path(out) / "runs" / "events.out.tfevents").write_bytes(b"trainer logs")
    with RunWriter(out, labels=np.arange(6) % 2, class_names=["a", "b"], shared=True) as run:
        for step in steps:
            for s in range(step - 40, step + 1, 10):
                if s > 0:
                    run.log_loss(s, 1.0 / s, epoch=s / 100)
            if step in saves:
                trainer_save(out, step)  # the Trainer saves first, then on_save embeds
            run.checkpoint(step, np.full((6, 3), float(step)))
    return run


# Reproducer 3: overwrite in a Trainer's output_dir.

def test_overwrite_in_a_trainer_output_dir_keeps_every_trainer_file(tmp_path):
    out = tmp_path / "out"
    a_trainer_run(out)
    before = not_ours(out)
    assert {f"checkpoint-{s}/{name}" for s in (100, 200, 300) for name in TRAINER_FILES} <= set(before)
    RunWriter(out, overwrite=True, shared=True)
    assert not_ours(out) == before, "every file the Trainer wrote is byte-identical"
    assert embedding_steps(out) == []
    # The writer's own checkpoint folders (0, 50, 150, 250) are gone; the Trainer's stay without embeddings.
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-100", "checkpoint-200", "checkpoint-300"]
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint-100", "checkpoint-200", "checkpoint-300",
                                                    MANIFEST, "run.json", "runs"]


def test_overwrite_of_a_folder_that_held_no_run_removes_nothing(tmp_path):
    out = tmp_path / "out"
    for step in (100, 200):
        trainer_save(out, step)
    before = not_ours(out)
    RunWriter(out, overwrite=True, shared=True)
    assert not_ours(out) == before
    RunWriter(out, overwrite=True)  # not shared: written beside what the folder holds, nothing removed
    assert not_ours(out) == before


def test_a_trainer_state_the_trainer_saved_over_is_the_trainers(tmp_path):
    """every_steps at a save step: the writer's trainer_state.json comes first, then the Trainer saves its own."""
    out = tmp_path / "out"
    run = RunWriter(out, shared=True)
    run.checkpoint(50, np.zeros((4, 2)))
    assert is_ours(out / "checkpoint-50" / "trainer_state.json")
    trainer_save(out, 50)
    before = not_ours(out)
    assert "checkpoint-50/trainer_state.json" in before
    run.checkpoint(50, np.ones((4, 2)))  # a second checkpoint at the step does not replace the Trainer's file
    RunWriter(out, overwrite=True, shared=True)
    assert not_ours(out) == before
    assert not (out / "checkpoint-50" / "embeddings.npy").exists()


def test_the_writer_never_replaces_a_trainer_state_it_did_not_write(tmp_path):
    out = tmp_path / "out"
    trainer_save(out, 100)
    before = not_ours(out)
    run = RunWriter(out, shared=True)
    run.log_loss(100, 0.5)
    run.checkpoint(100, np.zeros((4, 2)))  # trainer_state=True by default: still the Trainer's file
    assert not_ours(out) == before
    assert "checkpoint-100/trainer_state.json" not in json.loads((out / MANIFEST).read_text())["files"]


def test_a_file_of_the_layout_the_writer_did_not_write_is_never_replaced(tmp_path):
    out = tmp_path / "out"
    run = RunWriter(out, shared=True)
    run.checkpoint(1, np.zeros((4, 2)))
    (out / "checkpoint-2").mkdir()
    (out / "checkpoint-2" / "embeddings.npy").write_bytes(b"someone else's")
    with pytest.raises(FileExistsError, match=r"checkpoint-2.*not written by Embedlapse"):
        run.checkpoint(2, np.zeros((4, 2)))
    # Nor removed by overwrite: it would mix with the new run, so the new run is refused.
    with pytest.raises(FileExistsError, match=r"checkpoint-2.*Embedlapse did not write.*move it away"):
        RunWriter(out, shared=True, overwrite=True)
    assert (out / "checkpoint-2" / "embeddings.npy").read_bytes() == b"someone else's"
    assert (out / "checkpoint-1" / "embeddings.npy").exists(), "the refusal came before any removal"


def test_a_run_without_a_manifest_loses_only_the_layouts_own_names(tmp_path):
    """An older helper's run (no manifest): RUN_FILES, embeddings and markers go; its trainer_state.json
    files stay, as nothing tells them from a Trainer's."""
    out = tmp_path / "out"
    a_trainer_run(out)
    (out / MANIFEST).unlink()
    (out / "notes.txt").write_text("mine")
    (out / "checkpoint-50" / "plot.png").write_bytes(b"png")
    keep = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*")
            if p.is_file() and p.name not in OURS}
    RunWriter(out, overwrite=True, shared=True)
    assert {k: v for k, v in keep.items() if (out / k).exists()} == keep
    assert {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()} == set(keep) | {MANIFEST, "run.json"}


def a_hand_written_run(out, writer=None):
    """A run someone wrote in the layout without the helper (numpy, a script of their own)."""
    for step in (0, 50, 100):
        (out / f"checkpoint-{step}").mkdir(parents=True)
        np.save(out / f"checkpoint-{step}" / "embeddings.npy", np.full((6, 3), float(step), np.float32))
    np.save(out / "labels.npy", np.arange(6) % 2)
    (out / "losses.csv").write_text("step,loss\n10,1.0\n")
    if writer is not None:
        (out / "run.json").write_text(json.dumps({"format": 1, "run_id": "theirs", "writer": writer}))
    return {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}


@pytest.mark.parametrize("writer", [None, "my-script 1.0", "embedlapse 0.9 (Swift)"])
def test_a_run_the_helper_did_not_write_is_never_removed_nor_resumed(tmp_path, writer):
    """Without a manifest, and without a run.json that says this helper wrote it, the layout's files
    are someone else's: overwrite and resume refuse them, and change nothing."""
    out = tmp_path / "out"
    before = a_hand_written_run(out, writer)
    for options in ({"overwrite": True}, {"overwrite": True, "shared": True}, {"shared": True, "resume_at": 50}):
        with pytest.raises(FileExistsError, match="did not write"):
            RunWriter(out, labels=np.arange(6) % 2, **options)
        assert {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before, options


def test_a_manifest_entry_for_a_trainer_state_without_its_hash_is_not_believed(tmp_path):
    """A trainer_state.json is the helper's only while it is the one it wrote (its hash)."""
    out = tmp_path / "out"
    a_trainer_run(out)
    manifest = json.loads((out / MANIFEST).read_text())
    for step in (100, 200, 300):
        manifest["files"][f"checkpoint-{step}/trainer_state.json"] = {}
    (out / MANIFEST).write_text(json.dumps(manifest))
    before = not_ours(out)
    RunWriter(out, overwrite=True, shared=True)
    assert not_ours(out) == before


def test_removal_never_follows_a_symlink_nor_leaves_the_run(tmp_path):
    out, outside = tmp_path / "out", tmp_path / "outside"
    outside.mkdir()
    (outside / "embeddings.npy").write_bytes(b"outside")
    (outside / "labels.npy").write_bytes(b"outside labels")
    (tmp_path / "victim.txt").write_text("keep")
    run = RunWriter(out, shared=True)
    run.checkpoint(1, np.zeros((4, 2)))
    # A manifest that lists more than the writer writes is not believed.
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["files"].update({"../victim.txt": {}, "checkpoint-1/../../victim.txt": {}, "runs/events": {},
                              "checkpoint-7/embeddings.npy": {}})
    manifest["folders"] += ["..", "runs", "checkpoint-7"]
    (out / MANIFEST).write_text(json.dumps(manifest))
    (out / "runs").mkdir()
    (out / "runs" / "events").write_text("logs")
    (out / "checkpoint-7").symlink_to(outside, target_is_directory=True)
    os.symlink(outside / "embeddings.npy", out / "checkpoint-1" / "link.npy")
    RunWriter(out, shared=True, overwrite=True)
    assert (tmp_path / "victim.txt").read_text() == "keep"
    assert (out / "runs" / "events").read_text() == "logs"
    assert (outside / "embeddings.npy").read_bytes() == b"outside"
    assert (out / "checkpoint-7").is_symlink()
    assert (out / "checkpoint-1" / "link.npy").is_symlink()
    # A root file that is a symlink is not the writer's, even if listed: refused, its target untouched.
    (out / "labels.npy").symlink_to(outside / "labels.npy")
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["files"]["labels.npy"] = {}
    (out / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(FileExistsError, match="labels.npy"):
        RunWriter(out, shared=True, overwrite=True, labels=np.arange(4))
    assert (outside / "labels.npy").read_bytes() == b"outside labels"
    # Nor is a symlink written through: a checkpoint folder must be a real folder of the run.
    run = RunWriter(tmp_path / "other", shared=True)
    (tmp_path / "other" / "checkpoint-7").symlink_to(outside, target_is_directory=True)
    with pytest.raises(FileExistsError, match="checkpoint-7 is not a folder of the run.*symlink"):
        run.checkpoint(7, np.zeros((4, 2)))
    assert sorted(os.listdir(outside)) == ["embeddings.npy", "labels.npy"]


# Reproducer 4: a start that fails leaves nothing that blocks the next one.

def test_a_start_without_a_checkpoint_does_not_block_the_next(tmp_path):
    out = tmp_path / "out"
    RunWriter(out, labels=np.arange(4), images=np.zeros((4, 2, 2), np.uint8), shared=True)  # then it failed
    assert embedlapse.previous_run(out) == []
    second = RunWriter(out, labels=np.arange(5), shared=True)
    assert not (out / "images.npy").exists(), "the failed start's files went: they would mix with this run"
    assert np.load(out / "labels.npy").shape == (5,) and run_id(out) == second.run_id
    RunWriter(out, class_names=["x"])  # not shared either: only the writer's own files are there
    # An older helper's failed start (no manifest): its run.json says the helper wrote it.
    (out / MANIFEST).unlink()
    (out / "labels.npy").write_bytes(b"old helper labels")
    RunWriter(out, shared=True)
    assert not (out / "labels.npy").exists()


class Training(CallbackTraining):
    """test_callback.py's Trainer side, resuming at `step` and saving like a Trainer every `save_steps`."""

    def __init__(self, callback, output_dir, step=0, save_steps=None):
        super().__init__(callback, output_dir)
        self.out = Path(output_dir)
        self.args.resume_from_checkpoint = None
        self.state.global_step = step
        self.save_steps = save_steps

    def steps(self, count):
        for _ in range(count):
            self.state.global_step += 1
            self.callback.on_step_end(self.args, self.state, None, model=None)
            self.callback.on_log(self.args, self.state, None, logs={"loss": 1.0 / self.state.global_step})
            if self.save_steps and self.state.global_step % self.save_steps == 0:
                trainer_save(self.out, self.state.global_step)
                self.callback.on_save(self.args, self.state, None, model=None)


def no_embedlapse(monkeypatch, tmp_path):
    monkeypatch.delenv("EMBEDLAPSE_BIN", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))


@pytest.mark.parametrize("wants", [{"render": "v.mp4"}, {"serve": True}, {"serve": 8123}])
def test_without_the_binary_nothing_is_written(callback_module, tmp_path, monkeypatch, wants):
    no_embedlapse(monkeypatch, tmp_path)
    out = tmp_path / "out"
    (out / "runs").mkdir(parents=True)
    callback = callback_module.EmbedlapseCallback([], labels=np.arange(6) % 2, images=np.zeros((6, 2, 2), np.uint8),
                                                  **wants)
    with pytest.raises(FileNotFoundError) as error:
        Training(callback, out).begin()
    message = str(error.value)
    assert "\n" not in message and "embedlapse not found" in message
    assert "make build" in message and "EMBEDLAPSE_BIN" in message and "PATH" in message
    assert sorted(p.name for p in out.iterdir()) == ["runs"], "nothing written"
    Training(callback_module.EmbedlapseCallback([], labels=np.arange(6) % 2), out).begin()  # the next start goes


def test_a_missing_embedlapse_bin_is_named(monkeypatch, tmp_path):
    from embedlapse.writer import find_embedlapse
    monkeypatch.setenv("EMBEDLAPSE_BIN", str(tmp_path / "nowhere" / "embedlapse"))
    with pytest.raises(FileNotFoundError, match=r"EMBEDLAPSE_BIN=.*nowhere/embedlapse is not an executable"):
        find_embedlapse()
    (tmp_path / "embedlapse").write_text("#!/bin/sh\n")
    monkeypatch.setenv("EMBEDLAPSE_BIN", str(tmp_path / "embedlapse"))
    with pytest.raises(FileNotFoundError, match="not an executable"):
        find_embedlapse()
    (tmp_path / "embedlapse").chmod(0o755)
    assert find_embedlapse() == str(tmp_path / "embedlapse")
    monkeypatch.delenv("EMBEDLAPSE_BIN")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_embedlapse() == str(tmp_path / "embedlapse")


# Resume: the run goes on from the step the training resumes at.

def test_resume_keeps_the_run_up_to_the_step_and_only_the_writers_later_files_go(tmp_path):
    out = tmp_path / "out"
    first = a_trainer_run(out)
    (out / "checkpoint-350").mkdir()
    (out / "checkpoint-350" / "embeddings.npy").write_bytes(b"not the writer's")
    kept = {s: (out / f"checkpoint-{s}" / "embeddings.npy").read_bytes() for s in (0, 50, 100, 150, 200)}
    before = not_ours(out)
    with pytest.warns(RuntimeWarning, match=r"checkpoint-350/embeddings.npy lies after step 200.*leaves it"):
        run = RunWriter(out, labels=np.arange(6) % 2, shared=True, resume_at=200)
    assert run.run_id == first.run_id == run_id(out)
    assert run.resumed_at == 200 and run.steps == [0, 50, 100, 150, 200]
    assert not_ours(out) == before, "the Trainer's files, 250 and 300 included, are byte-identical"
    assert embedding_steps(out) == [0, 50, 100, 150, 200, 350]
    assert {s: (out / f"checkpoint-{s}" / "embeddings.npy").read_bytes() for s in kept} == kept
    assert not (out / "checkpoint-250").exists(), "the writer's own folder went with its files"
    assert sorted(p.name for p in (out / "checkpoint-300").iterdir()) == sorted(TRAINER_FILES)
    assert not (out / "DONE").exists(), "a watcher follows the run again"
    assert [line.split(",")[0] for line in (out / "losses.csv").read_text().splitlines()] == \
        ["step"] + [str(s) for s in range(10, 201, 10)]
    # The training goes on from 200: losses keep their history, and DONE comes at the end.
    for step in (210, 220, 230, 240, 250):
        run.log_loss(step, 0.25, epoch=step / 100)
    run.checkpoint(250, np.zeros((6, 3)))
    run.close()
    losses = (out / "losses.csv").read_text().splitlines()
    assert losses[0] == "step,loss,epoch" and losses[1] == "10,0.1,0.1" and losses[-1] == "250,0.25,2.5"
    assert len(losses) == 1 + 25
    assert (out / "DONE").exists() and run_id(out) == first.run_id
    assert not_ours(out) == before


def test_resume_of_an_older_helpers_run(tmp_path):
    out = tmp_path / "out"
    first = a_trainer_run(out)
    (out / MANIFEST).unlink()
    before = not_ours(out)
    run = RunWriter(out, shared=True, resume_at=100)
    assert run.run_id == first.run_id and embedding_steps(out) == [0, 50, 100]
    assert not_ours(out) == before
    # Its trainer_state.json files stay (nothing tells them from a Trainer's), and so do their folders.
    assert sorted(p.name for p in (out / "checkpoint-150").iterdir()) == ["trainer_state.json"]
    assert "checkpoint-100/embeddings.npy" in json.loads((out / MANIFEST).read_text())["files"]


def test_resume_checks_before_it_changes_anything(tmp_path):
    out = tmp_path / "out"
    a_trainer_run(out)
    files = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(ValueError, match=r"7 labels or images, but the run's checkpoint-200 embeds 6 samples"):
        RunWriter(out, labels=np.arange(7), shared=True, resume_at=200)
    assert {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()} == files


def test_resume_without_a_run_starts_one(tmp_path):
    out = tmp_path / "out"
    trainer_save(out, 100)
    run = RunWriter(out, shared=True, resume_at=100)
    assert run.resumed_at is None and run.steps == [] and run_id(out) == run.run_id


def test_the_callback_resumes_the_run_where_the_trainer_resumes(callback_module, tmp_path):
    out = tmp_path / "out"
    first = Training(callback_module.EmbedlapseCallback([], labels=np.arange(6) % 2, every_steps=2), out, save_steps=4)
    first.begin()
    first.steps(10)
    first.end()
    assert embedding_steps(out) == [0, 2, 4, 6, 8, 10] and (out / "DONE").exists()
    old_id = run_id(out)
    four = (out / "checkpoint-4" / "embeddings.npy").read_bytes()
    before = not_ours(out)
    # trainer.train(resume_from_checkpoint=".../checkpoint-4"): the Trainer starts at step 4.
    resumed = Training(callback_module.EmbedlapseCallback([], labels=np.arange(6) % 2, every_steps=2), out, step=4,
                       save_steps=4)
    resumed.begin()
    assert run_id(out) == old_id and not (out / "DONE").exists()
    assert embedding_steps(out) == [0, 2, 4], "the callback's later checkpoints went"
    assert (out / "checkpoint-4" / "embeddings.npy").read_bytes() == four, "not embedded again at the start"
    assert not_ours(out) == before, "checkpoint-8's Trainer files included"
    assert sorted(p.name for p in (out / "checkpoint-8").iterdir()) == sorted(TRAINER_FILES)
    assert not (out / "checkpoint-6").exists() and not (out / "checkpoint-10").exists()
    resumed.steps(8)
    resumed.end()
    assert embedding_steps(out) == [0, 2, 4, 6, 8, 10, 12] and (out / "DONE").exists() and run_id(out) == old_id
    losses = [line.split(",")[0] for line in (out / "losses.csv").read_text().splitlines()]
    assert losses == ["step"] + [str(s) for s in range(1, 13)]


@pytest.mark.parametrize("overwrite", [False, True])
def test_resume_from_the_last_checkpoint_needs_no_overwrite(callback_module, tmp_path, overwrite):
    """trainer.train(resume_from_checkpoint=True) from checkpoint-250: no FileExistsError, and with
    overwrite=True still the same run, nothing of the Trainer's removed."""
    out = tmp_path / "out"
    first = Training(callback_module.EmbedlapseCallback([]), out, save_steps=50)
    first.begin()
    first.steps(250)
    first.end()
    old_id, before = run_id(out), not_ours(out)
    resumed = Training(callback_module.EmbedlapseCallback([], overwrite=overwrite), out, step=250, save_steps=50)
    resumed.begin()
    assert not_ours(out) == before and run_id(out) == old_id
    assert embedding_steps(out) == [0, 50, 100, 150, 200, 250]
    resumed.steps(50)
    resumed.end()
    assert embedding_steps(out) == [0, 50, 100, 150, 200, 250, 300] and run_id(out) == old_id


def test_a_fresh_training_with_overwrite_keeps_the_trainers_checkpoints(callback_module, tmp_path):
    out = tmp_path / "out"
    first = Training(callback_module.EmbedlapseCallback([], every_steps=25), out, save_steps=50)
    first.begin()
    first.steps(100)
    first.end()
    old_id, before = run_id(out), not_ours(out)
    again = Training(callback_module.EmbedlapseCallback([], overwrite=True), out)
    again.begin()
    assert not_ours(out) == before
    assert embedding_steps(out) == [0] and run_id(out) != old_id
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-0", "checkpoint-100", "checkpoint-50"]


def test_the_transformers_extra_brings_accelerate():
    from importlib.metadata import requires
    extra = [r for r in requires("embedlapse") if 'extra == "transformers"' in r]
    assert any(r.startswith("accelerate") for r in extra) and any(r.startswith("torch") for r in extra), extra


def test_a_real_trainer_resumes_the_run(tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    out = tmp_path / "out"
    g = torch.Generator().manual_seed(0)
    rows = [{"input_ids": torch.randint(0, 50, (8,), generator=g), "labels": torch.tensor(i % 3)} for i in range(64)]

    def train(max_steps, resume, **options):
        torch.manual_seed(0)
        config = transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                         intermediate_size=32, num_labels=3)
        model = transformers.BertForSequenceClassification(config)
        callback = embedlapse.EmbedlapseCallback(rows[:12], labels=np.arange(12) % 3, **options)
        args = transformers.TrainingArguments(str(out), max_steps=max_steps, per_device_train_batch_size=8,
                                              logging_steps=2, save_steps=4, report_to=[], use_cpu=True)
        transformers.Trainer(model=model, args=args, train_dataset=rows, callbacks=[callback]).train(
            resume_from_checkpoint=resume)

    def trainer_files():
        return {k: v for k, v in not_ours(out).items() if k.startswith("checkpoint-")}

    train(8, None)
    assert embedding_steps(out) == [0, 4, 8]
    old_id, before = run_id(out), trainer_files()
    assert "checkpoint-8/optimizer.pt" in before and "checkpoint-8/trainer_state.json" in before
    embeddings = {s: (out / f"checkpoint-{s}" / "embeddings.npy").read_bytes() for s in (0, 4, 8)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the Trainer's own notes on resuming
        train(12, True)  # from checkpoint-8
    assert run_id(out) == old_id
    assert embedding_steps(out) == [0, 4, 8, 12]
    assert {s: (out / f"checkpoint-{s}" / "embeddings.npy").read_bytes() for s in (0, 4, 8)} == embeddings
    assert {k: v for k, v in trainer_files().items() if k in before} == before
    steps = [int(line.split(",")[0]) for line in (out / "losses.csv").read_text().splitlines()[1:]]
    assert steps == [2, 4, 6, 8, 10, 12]
    # A new training with overwrite=True into the same folder: the Trainer's checkpoints stay until it saves anew.
    before = trainer_files()
    seen = {}

    class Look(transformers.TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            seen.update({k: v for k, v in trainer_files().items() if k in before})

    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=32, num_labels=3)
    callback = embedlapse.EmbedlapseCallback(rows[:12], labels=np.arange(12) % 3, overwrite=True)
    args = transformers.TrainingArguments(str(out), max_steps=2, per_device_train_batch_size=8, save_strategy="no",
                                          report_to=[], use_cpu=True)
    transformers.Trainer(model=transformers.BertForSequenceClassification(config), args=args, train_dataset=rows,
                         callbacks=[callback, Look()]).train()
    assert seen == before and trainer_files() == before
    assert run_id(out) != old_id and embedding_steps(out) == [0, 2]
