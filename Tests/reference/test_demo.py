"""The built-in demo: Swift training on Fashion-MNIST rendered live, and the run it saves."""
import json
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import BINARY, frames_in, run_cli, wait_for

SMALL = ["--steps", "150", "--pretrain-steps", "150", "--checkpoint-every", "30", "--eval-size", "1500"]


def test_demo_video_grows_during_training_and_the_saved_run_replays(tmp_path, binary):
    video, run = tmp_path / "demo.mp4", tmp_path / "run"
    proc = subprocess.Popen([str(BINARY), "demo", "-o", video, "-o", tmp_path / "demo.gif", "--save-run", run, *SMALL],
                            stderr=subprocess.PIPE, text=True)
    seen = set()
    while proc.poll() is None:
        count = frames_in(video)
        if count is not None:
            seen.add(count)
        time.sleep(0.05)
    err = proc.stderr.read()
    assert proc.returncode == 0, err
    # Six checkpoints, tweened by default: nine frames travel between each two.
    film = 5 * 10 + 1
    assert frames_in(video) == film and frames_in(tmp_path / "demo.gif") == film
    assert any(0 < c < film for c in seen), f"the video was never seen part-way: {sorted(seen)}"
    accuracy = float(err.split("test accuracy ")[1].split("%")[0])
    assert accuracy > 70, err
    # The saved run is a complete run directory: DONE, six checkpoints, and it renders offline.
    assert (run / "DONE").exists()
    inspect = run_cli("inspect", run).stdout
    assert "checkpoints: 6 (steps 0 to 150)" in inspect and "N = 1500 samples, D = 128, float32" in inspect
    assert "images: 1500 of 28x28 grey" in inspect and "problems: none" in inspect
    run_cli("render", run, "-o", tmp_path / "replay.mp4")
    assert frames_in(tmp_path / "replay.mp4") == film
    state = json.loads((run / "checkpoint-150" / "trainer_state.json").read_text())
    assert any("eval_accuracy" in e for e in state["log_history"])


def test_ctrl_c_during_the_demo_leaves_a_playable_video(tmp_path, binary):
    video = tmp_path / "demo.mp4"
    proc = subprocess.Popen([str(BINARY), "demo", "-o", video, "--steps", "3000", "--checkpoint-every", "20",
                             "--eval-size", "2000"], stderr=subprocess.PIPE, text=True)
    assert wait_for(lambda: (frames_in(video) or 0) >= 3, timeout=120)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    count = frames_in(video)
    assert count is not None and 3 <= count < 1501


def test_a_missing_dataset_is_one_clear_line(tmp_path, binary):
    proc = run_cli("demo", "-o", tmp_path / "demo.mp4", "--data", tmp_path / "nowhere", check=False)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "dataset-fashion-mnist" in proc.stderr and "nowhere" in proc.stderr
    assert not (tmp_path / "demo.mp4").exists()


def test_a_saved_run_is_marked_and_identified_and_never_mixed_with_an_earlier_one(tmp_path, binary):
    run = tmp_path / "run"
    run_cli("demo", "--save-run", run, "--steps", "40", "--pretrain-steps", "10", "--checkpoint-every", "20", "--eval-size", "100")
    assert len(json.loads((run / "run.json").read_text())["run_id"]) == 32
    assert all((d / "embeddings.npy.complete").exists() for d in run.glob("checkpoint-*")), "each checkpoint is marked complete"
    before = sorted(p.name for p in run.rglob("*"))
    proc = run_cli("demo", "--save-run", run, "-o", tmp_path / "again.mp4", "--steps", "40", check=False)
    assert proc.returncode == 1 and str(run) in proc.stderr and "not empty" in proc.stderr, proc.stderr
    assert sorted(p.name for p in run.rglob("*")) == before and not (tmp_path / "again.mp4").exists()
