"""EmbedlapseCallback's run, rank and watch handling, and the [CLS] check, without torch.

Where transformers is not installed, a stand-in module gives the callback its base class; the
embeddings come from a stand-in _embed, so no model runs."""
import json
import os
import types
import warnings

import numpy as np
import pytest
from callback_fixture import callback_module  # noqa: F401 (a fixture)


@pytest.fixture(autouse=True)
def single_process(monkeypatch):
    """Tests run as the main process, even inside a distributed job (RANK decides who writes)."""
    monkeypatch.delenv("RANK", raising=False)

EMBED_FN_EXAMPLE = 'embed_fn=lambda model, batch: model.backbone(batch["pixel_values"]).pooler_output'


class Training:
    """The Trainer's side of the callback protocol: args, state, and the events in their order."""

    def __init__(self, callback, output_dir, main=True):
        self.callback = callback
        self.args = types.SimpleNamespace(output_dir=str(output_dir))
        self.state = types.SimpleNamespace(global_step=0, epoch=0.0, is_world_process_zero=main)
        callback._embed = lambda model: np.full((6, 3), float(self.state.global_step))

    def begin(self):
        self.callback.on_train_begin(self.args, self.state, None, model=None)

    def steps(self, count):
        for _ in range(count):
            self.state.global_step += 1
            self.callback.on_step_end(self.args, self.state, None, model=None)
            self.callback.on_log(self.args, self.state, None, logs={"loss": 1.0 / self.state.global_step})
        self.callback.on_save(self.args, self.state, None, model=None)

    def end(self):
        self.callback.on_train_end(self.args, self.state, None, model=None)

    def run(self):
        self.begin()
        self.steps(4)
        self.end()


# The [CLS] check: a hint at embed_fn when there is no token to take.

def test_the_cls_token_of_the_last_hidden_state(callback_module):
    last = np.arange(40.0).reshape(2, 5, 4)
    seen = {}

    def model(**inputs):
        seen.update(inputs)
        return types.SimpleNamespace(hidden_states=(np.zeros((2, 5, 4)), last))

    out = callback_module.cls_embedding(model, {"input_ids": np.zeros((2, 5)), "labels": np.zeros(2)})
    assert np.array_equal(out, last[:, 0])
    assert set(seen) == {"input_ids", "output_hidden_states"}


@pytest.mark.parametrize("output,found", [
    (types.SimpleNamespace(logits=np.zeros((2, 3))), "no hidden_states"),
    (types.SimpleNamespace(hidden_states=None), "no hidden_states"),
    (types.SimpleNamespace(hidden_states=()), "no hidden_states"),
    (types.SimpleNamespace(hidden_states=(np.zeros((2, 4)),)), r"shape \(2, 4\)"),
    (types.SimpleNamespace(hidden_states=(np.zeros((2, 4, 4, 8)),)), r"shape \(2, 4, 4, 8\)"),
])
def test_no_cls_token_names_embed_fn_with_an_example(callback_module, output, found):
    with pytest.raises(ValueError, match=found) as error:
        callback_module.cls_embedding(lambda **inputs: output, {"pixel_values": np.zeros((2, 3))})
    assert EMBED_FN_EXAMPLE in str(error.value)


# The run: the Trainer's output_dir holds the Trainer's files; only an old run is refused.

def test_a_trainer_output_dir_takes_a_run_but_not_a_second_one(callback_module, tmp_path):
    out = tmp_path / "out"
    (out / "runs").mkdir(parents=True)  # the Trainer's logging folder, made before training starts
    Training(callback_module.EmbedlapseCallback([], labels=np.arange(6) % 2), out).run()
    assert (out / "DONE").exists() and (out / "run.json").exists()
    assert sorted(p.parent.name for p in out.glob("checkpoint-*/embeddings.npy.complete")) == ["checkpoint-0",
                                                                                                 "checkpoint-4"]
    with pytest.raises(FileExistsError, match=rf"{out}.*previous Embedlapse run.*overwrite=True"):
        Training(callback_module.EmbedlapseCallback([], labels=np.arange(6) % 2), out).begin()
    assert (out / "DONE").exists(), "the refused run left the old one as it was"


def test_overwrite_replaces_the_old_run_and_keeps_the_trainers_files(callback_module, tmp_path):
    out = tmp_path / "out"
    (out / "runs").mkdir(parents=True)
    (out / "runs" / "events").write_text("logs")
    first = Training(callback_module.EmbedlapseCallback([]), out)
    first.run()
    old_id = json.loads((out / "run.json").read_text())["run_id"]
    second = Training(callback_module.EmbedlapseCallback([], every_steps=1, overwrite=True), out)
    second.begin()
    second.steps(1)
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint-0", "checkpoint-1", "embedlapse-manifest.json",
                                                    "run.json", "runs"]
    assert json.loads((out / "run.json").read_text())["run_id"] != old_id
    assert (out / "runs" / "events").read_text() == "logs"


@pytest.mark.parametrize("world_zero,rank", [(False, None), (True, "1")])
def test_only_the_main_process_writes(callback_module, tmp_path, monkeypatch, world_zero, rank):
    if rank is not None:
        monkeypatch.setenv("RANK", rank)
    monkeypatch.setenv("EMBEDLAPSE_BIN", str(tmp_path / "no-such-binary"))  # a watch start would fail
    Training(callback_module.EmbedlapseCallback([], render=tmp_path / "v.mp4"), tmp_path / "out", world_zero).run()
    assert not (tmp_path / "out").exists()


# The watch: started with the helper's flags, its failure told at once and raised at the end.

def fake_embedlapse(tmp_path, status, message):
    """A stand-in binary that records its arguments, says `message` on stderr and exits with `status`."""
    script = tmp_path / "embedlapse"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{tmp_path}/args"\necho "{message}" >&2\nexit {status}\n')
    script.chmod(0o755)
    return script


@pytest.mark.skipif(os.name != "posix", reason="a shell script stands in for the binary")
def test_a_failed_render_is_warned_at_once_and_raised_at_the_end(callback_module, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EMBEDLAPSE_BIN", str(fake_embedlapse(tmp_path, 3, "embedlapse: /nonexistent-dir/v.mp4: cannot write")))
    callback = callback_module.EmbedlapseCallback([], render=tmp_path / "v.mp4", idle_timeout=120,
                                                  film_args=("--leaderboard", "label-issues"))
    training = Training(callback, tmp_path / "out")
    training.begin()
    callback.watch.process.wait(timeout=20)  # the stand-in has written its arguments and failed
    assert (tmp_path / "args").read_text().split("\n")[:-1] == [
        "watch", str(tmp_path / "out"), "-o", str(tmp_path / "v.mp4"), "--stop-with-parent", "--idle-timeout", "120",
        "--leaderboard", "label-issues"]
    with pytest.warns(RuntimeWarning, match=r"exit status 3\): /nonexistent-dir/v.mp4: cannot write"):
        training.steps(1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # told once: the training goes on quietly
        training.steps(2)
        with pytest.raises(RuntimeError, match=r"exit status 3\): /nonexistent-dir/v.mp4: cannot write"):
            training.end()
    assert (tmp_path / "out" / "DONE").exists(), "the run is complete, for a render afterwards"
    assert "embedlapse: /nonexistent-dir/v.mp4: cannot write\n" in capsys.readouterr().err


@pytest.mark.skipif(os.name != "posix", reason="a shell script stands in for the binary")
def test_a_render_that_succeeds_ends_quietly(callback_module, tmp_path, monkeypatch):
    monkeypatch.setenv("EMBEDLAPSE_BIN", str(fake_embedlapse(tmp_path, 0, "wrote 2 frames")))
    callback = callback_module.EmbedlapseCallback([], render=tmp_path / "v.mp4", idle_timeout=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Training(callback, tmp_path / "out").run()
    assert "--idle-timeout" not in (tmp_path / "args").read_text()
    assert callback.watch.process.returncode == 0


BINARY = os.environ.get("EMBEDLAPSE_BIN", os.path.join(os.path.dirname(__file__), "..", "..", ".build", "release", "embedlapse"))


@pytest.mark.skipif(not os.path.exists(BINARY), reason="no embedlapse binary (set EMBEDLAPSE_BIN)")
def test_serve_without_a_video_explores_the_training_in_the_browser(callback_module, tmp_path, monkeypatch, capsys):
    import signal
    import time
    import urllib.request
    monkeypatch.setenv("EMBEDLAPSE_BIN", BINARY)
    callback = callback_module.EmbedlapseCallback([], labels=np.arange(6) % 2, serve=True)
    training = Training(callback, tmp_path / "out")
    rng = np.random.default_rng(0)
    callback._embed = lambda model: rng.standard_normal((6, 3))
    training.begin()
    assert callback.url and callback.url.startswith("http://127.0.0.1:")
    assert callback.watch.command[1] == "serve"
    training.steps(4)
    training.end()  # returns at once: the explorer goes on serving

    def steps():
        return json.loads(urllib.request.urlopen(callback.url + "api/run", timeout=30).read())["steps"]

    deadline = time.time() + 60
    while steps() != [0, 4] and time.time() < deadline:
        time.sleep(0.1)
    assert steps() == [0, 4]
    assert callback.watch.process.poll() is None
    assert f"embedlapse: explorer at {callback.url}" in capsys.readouterr().err
    callback.watch.process.send_signal(signal.SIGTERM)
    assert callback.watch.process.wait(timeout=30) == 0
