"""Never lose a user's data: no command, flag or cache touches a file Embedlapse did not write.

Each reproducer of issue 22 runs against a Trainer-like run: every checkpoint folder also holds the
weights, optimizer, scheduler and RNG state a HuggingFace Trainer keeps there. After every command,
refused or not, each of those files must be byte for byte as it was."""
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import BINARY, ONE_FRAME_PER_CHECKPOINT, SHARED, run_cli

TRAINER_FILES = ("model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth", "training_args.bin")


def make_run(path, seed=3, n=300, checkpoints=6):
    subprocess.run([sys.executable, str(SHARED / "reference" / "make_synthetic_run.py"), str(path), "--n", str(n),
                    "--dim", "24", "--checkpoints", str(checkpoints), "--seed", str(seed)], check=True, capture_output=True)
    for folder in Path(path).glob("checkpoint-*"):
        for name in TRAINER_FILES:
            (folder / name).write_bytes(os.urandom(64) + name.encode())
    (Path(path) / "config.json").write_text('{"model_type": "vit"}')
    return Path(path)


def snapshot(folder):
    """Every file under `folder`: its bytes' hash, mode and modification time."""
    found = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = Path(root) / name
            info = path.stat()
            found[str(path.relative_to(folder))] = (hashlib.sha256(path.read_bytes()).hexdigest(), info.st_mode, info.st_mtime_ns)
    return found


def inputs_snapshot(run):
    """The run's inputs only: its top-level files and all its checkpoint folders hold."""
    return {k: v for k, v in snapshot(run).items() if not k.startswith(".embedlapse")}


def refused(proc, *names):
    assert proc.returncode != 0, proc.stderr
    lines = [l for l in proc.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1, proc.stderr
    for name in names:
        assert str(name) in lines[0], (name, lines[0])
    return lines[0]


@pytest.fixture
def run(tmp_path):
    return make_run(tmp_path / "run")


@pytest.fixture
def other_run(tmp_path):
    return make_run(tmp_path / "other", seed=5)


def test_a_cache_pointed_at_a_run_is_refused_and_the_run_untouched(run, other_run, tmp_path):
    before, other_before = inputs_snapshot(run), inputs_snapshot(other_run)
    refused(run_cli("analyse", run, "--cache", run, check=False), run)
    refused(run_cli("render", run, "-o", tmp_path / "f.mp4", "--cache", other_run, *ONE_FRAME_PER_CHECKPOINT, check=False), other_run)
    refused(run_cli("export", run, "-o", tmp_path / "t.csv", "--cache", run, check=False), run)
    refused(run_cli("analyse", run, "--cache", other_run, "--checkpoints", "0:3", check=False), other_run)
    step_folder = sorted(run.glob("checkpoint-*"))[0]
    refused(run_cli("analyse", run, "--cache", step_folder, check=False), step_folder.name)
    refused(run_cli("analyse", run, "--cache", step_folder / "cache", check=False), step_folder.name)
    # A folder of the user's own files is no cache either, wherever it is.
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    refused(run_cli("analyse", run, "--cache", mine, check=False), mine, "not empty")
    assert (mine / "notes.txt").read_text() == "keep me" and sorted(os.listdir(mine)) == ["notes.txt"]
    assert inputs_snapshot(run) == before and inputs_snapshot(other_run) == other_before
    assert not (tmp_path / "f.mp4").exists() and not (tmp_path / "t.csv").exists()


def test_the_cache_is_a_format_of_its_own(run, tmp_path):
    cache = tmp_path / "cache"
    run_cli("analyse", run, "--cache", cache)
    names = sorted(os.listdir(cache))
    assert "embedlapse-cache.json" in names and len([n for n in names if n.startswith("analysis-")]) == 6, names
    assert not any(n.startswith("checkpoint-") or n.startswith(".") for n in names), names
    marker = json.loads((cache / "embedlapse-cache.json").read_text())
    assert marker["format"] == "embedlapse analysis cache" and marker["version"] == 2
    # A run placed inside the cache folder, or a stray file, is never removed by the cache.
    (cache / "keep.txt").write_text("mine")
    run_cli("analyse", run, "--cache", cache)
    assert (cache / "keep.txt").read_text() == "mine"


def test_an_old_format_cache_is_refused_with_what_to_do(run, tmp_path):
    old = tmp_path / "old"
    (old / "checkpoint-0").mkdir(parents=True)
    (old / "checkpoint-0" / "meta.json").write_text('{"format": "embedlapse analysis cache", "version": 1}')
    line = refused(run_cli("analyse", run, "--cache", old, check=False), old, "format 1")
    assert "rm -r" in line
    assert (old / "checkpoint-0" / "meta.json").exists()


def test_outputs_never_replace_the_runs_inputs(run, tmp_path):
    before = inputs_snapshot(run)
    step = sorted(run.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))[-1]
    refused(run_cli("export", run, "-o", run / "losses.csv", check=False), "losses.csv", run)
    refused(run_cli("render", run, "-o", tmp_path / "f.mp4", "--timings", run / "class_names.json", check=False), "class_names.json")
    refused(run_cli("render", run, "-o", tmp_path / "f.mp4", "--timings", step / "trainer_state.json", check=False), step.name)
    refused(run_cli("render", run, "-o", tmp_path / "f.mp4", "--timings", run / "config.json", check=False), "config.json")
    refused(run_cli("render", run, "--frames-dir", step, check=False), step.name)
    refused(run_cli("render", run, "--dump-data", run, check=False), "run folder")
    refused(run_cli("render", run, "--latest", step / "frame.png", check=False), step.name)
    # A link elsewhere to an input is the input.
    link = tmp_path / "timings.json"
    os.link(run / "labels.npy", link)
    refused(run_cli("render", run, "-o", tmp_path / "f.mp4", "--timings", link, check=False), "labels.npy")
    refused(run_cli("compare", run, run, "-o", tmp_path / "c.mp4", "--timings", run / "losses.csv", check=False), "losses.csv")
    assert inputs_snapshot(run) == before
    assert not (tmp_path / "f.mp4").exists() and not (tmp_path / "c.mp4").exists()


def test_a_film_inside_the_run_folder_can_be_made_again(run):
    before = inputs_snapshot(run)
    for _ in range(2):
        run_cli("render", run, "-o", run / "film.mp4", "--latest", run / "latest.png", "--dump-data", run / "numbers",
                *ONE_FRAME_PER_CHECKPOINT)
    assert (run / "film.mp4").stat().st_size > 0
    after = inputs_snapshot(run)
    assert {k: v for k, v in after.items() if k in before} == before


def analysed(run, cache):
    run_cli("analyse", run, "--cache", cache)
    return sorted(cache.glob("analysis-*"), key=lambda p: int(p.name.split("-")[1]))


def table(run, tmp_path, name, *extra):
    out = tmp_path / name
    proc = run_cli("export", run, "-o", out, *extra)
    return out.read_bytes(), proc.stderr


@pytest.mark.parametrize("damage", ["score 5", "score -1", "pca 3e38", "pca nan", "self neighbour"])
def test_a_damaged_cache_entry_is_recomputed_and_named(run, tmp_path, damage):
    cache = tmp_path / "cache"
    entry = analysed(run, cache)[2]
    expected, _ = table(run, tmp_path, "fresh.csv", "--no-cache")
    if damage.startswith("score"):
        path = entry / "outlier_scores.npy"
        values = np.load(path)
        values[3] = float(damage.split()[1])
    elif damage.startswith("pca"):
        path = entry / "pca.npy"
        values = np.load(path)
        values[4, 1] = np.float32(3e38) if damage.endswith("3e38") else np.nan
    else:
        path = entry / "neighbours.npy"
        values = np.load(path)
        values[7, 0] = 7
    with open(path, "r+b") as f:  # in place: same file, same size
        np.save(f, values)
    found, stderr = table(run, tmp_path, "cached.csv", "--cache", cache)
    assert found == expected
    assert str(path) in stderr and "recomputing step" in stderr, stderr
    assert "embeddings.npy" not in stderr.replace(str(path), ""), stderr


def test_an_entry_of_another_file_with_the_same_size_and_time_is_not_used(tmp_path):
    a, b = make_run(tmp_path / "a", seed=1), make_run(tmp_path / "b", seed=2)
    cache_a, cache_b = tmp_path / "cache-a", tmp_path / "cache-b"
    analysed(a, cache_a)
    entries_b = analysed(b, cache_b)
    expected, _ = table(a, tmp_path, "fresh.csv", "--no-cache")
    # B's entry for step 0 replaces A's, and A's file is given B's modification time.
    shutil.rmtree(cache_a / entries_b[0].name)
    shutil.copytree(entries_b[0], cache_a / entries_b[0].name)
    step = entries_b[0].name.split("-")[1]
    stat_b = (b / f"checkpoint-{step}" / "embeddings.npy").stat()
    os.utime(a / f"checkpoint-{step}" / "embeddings.npy", ns=(stat_b.st_atime_ns, stat_b.st_mtime_ns))
    found, stderr = table(a, tmp_path, "cached.csv", "--cache", cache_a)
    assert found == expected, "an entry computed from another file was used"
    assert "recomputing step" in stderr


def test_the_runs_own_old_cache_is_a_warning_and_the_film_goes_on(run, tmp_path):
    old = run / ".embedlapse" / "analysis"
    (old / "checkpoint-0").mkdir(parents=True)
    (old / "checkpoint-0" / "meta.json").write_text('{"format": "embedlapse analysis cache", "version": 1}')
    proc = run_cli("render", run, "-o", tmp_path / "f.mp4", *ONE_FRAME_PER_CHECKPOINT)
    assert "warning" in proc.stderr and "format 1" in proc.stderr
    assert (old / "checkpoint-0" / "meta.json").exists()


def leftovers(*folders):
    """Temporaries anywhere under the folders: hidden names of ours (.NAME.PID.partial, .analysis-*)."""
    found = []
    for folder in folders:
        for root, dirs, files in os.walk(folder):
            found += [os.path.join(root, n) for n in files + dirs if n.endswith(".partial") or n.endswith(".replaced")]
    return found


def visible_files(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in Path(folder).rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)}


def kill_at_random(args, seed, times, after_kill):
    """Runs the command `times` times, each killed with SIGKILL at a seeded random moment within
    the time one whole run takes, and calls `after_kill()` after each."""
    started = time.monotonic()
    subprocess.run([str(BINARY), *map(str, args)], capture_output=True, timeout=300)
    whole = time.monotonic() - started
    rng = random.Random(seed)
    for _ in range(times):
        proc = subprocess.Popen([str(BINARY), *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0, whole))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        after_kill()


def test_kill_9_leaves_nothing_half_written_and_the_next_run_is_byte_identical(run, tmp_path):
    """Killed at random points, 20 times each: render, export, analyse and watch leave every visible
    output whole (the earlier one, unchanged), nothing but hidden temporaries that the next run of
    the command removes, and the next run writes byte-identical outputs."""
    before = inputs_snapshot(run)
    out = tmp_path / "out"
    out.mkdir()
    cache = tmp_path / "cache"
    film = ["render", run, "-o", out / "f.mp4", "-o", out / "f.gif", "--frames-dir", out / "frames",
            "--dump-data", out / "numbers", "--timings", out / "timings.json", "--tween", "2", "--no-cache"]
    export = ["export", run, "-o", out / "t.csv", "--no-cache"]
    run_cli(*film)
    run_cli(*export)
    reference = visible_files(out)
    reference.pop("timings.json")  # milliseconds differ from run to run

    def unchanged():
        now = visible_files(out)
        now.pop("timings.json", None)
        assert now == reference, sorted(k for k in set(now) | set(reference) if now.get(k) != reference.get(k))
        assert all(Path(p).name.startswith(".") for p in leftovers(out)), leftovers(out)

    kill_at_random(film, seed=1, times=20, after_kill=unchanged)
    kill_at_random(export, seed=2, times=20, after_kill=unchanged)
    kill_at_random(["analyse", run, "--cache", cache], seed=3, times=20, after_kill=lambda: None)
    run_cli("analyse", run, "--cache", cache)  # removes what killed writers left in the cache
    assert leftovers(cache) == []
    (run / "DONE").write_text("")
    live = tmp_path / "live"
    live.mkdir()
    kill_at_random(["watch", run, "-o", live / "live.mp4", "--tween", "1"], seed=4, times=20,
                   after_kill=lambda: None if leftovers(live) == [] else pytest.fail(str(leftovers(live))))
    (run / "DONE").unlink()

    run_cli(*film)
    run_cli(*export)
    unchanged()
    assert leftovers(out) == []
    assert inputs_snapshot(run) == before


@pytest.mark.parametrize("command", ["render", "compare"])
def test_a_refused_film_writes_nothing(run, tmp_path, command):
    """A NaN in the last checkpoint is found after frames were drawn: every output stays as it was."""
    same_set = shutil.copytree(run, tmp_path / "same-set")
    last = sorted(run.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))[-1] / "embeddings.npy"
    values = np.load(last)
    values[5, 3] = np.nan
    np.save(last, values)
    out = tmp_path / "out"
    (out / "frames").mkdir(parents=True)
    (out / "frames" / "frame-0000.png").write_bytes(b"an earlier frame")
    (out / "numbers").mkdir()
    (out / "numbers" / "alignment.json").write_bytes(b"an earlier dump")
    (out / "latest.png").write_bytes(b"an earlier latest")
    before = snapshot(out)
    runs = [run] if command == "render" else [same_set, run]
    proc = run_cli(command, *runs, "-o", out / "f.mp4", "-o", out / "f.gif", "--frames-dir", out / "frames",
                   "--dump-data", out / "numbers", "--latest", out / "latest.png", "--timings", out / "timings.json",
                   "--tween", "2", check=False)
    assert proc.returncode != 0 and str(last) in proc.stderr, proc.stderr
    assert snapshot(out) == before, sorted(set(snapshot(out)) ^ set(before))
    assert leftovers(out) == []
    # Without an earlier --latest, a refused film leaves none either.
    (out / "latest.png").unlink()
    proc = run_cli(command, *runs, "--latest", out / "latest.png", "--tween", "1", check=False)
    assert proc.returncode != 0 and not (out / "latest.png").exists()


DEMO = ("demo", "--steps", "40", "--pretrain-steps", "40", "--checkpoint-every", "20", "--eval-size", "300")


def test_a_demo_films_into_the_folder_it_saves_the_run_in_and_protects_the_run(tmp_path):
    saved = tmp_path / "saved"
    saved.mkdir()
    run_cli(*DEMO, "--save-run", saved, "-o", saved / "film.mp4", "--dump-data", saved / "numbers", "--tween", "1")
    assert (saved / "film.mp4").stat().st_size > 0 and (saved / "numbers" / "alignment.json").exists()
    run_cli("render", saved, "-o", tmp_path / "again.mp4", *ONE_FRAME_PER_CHECKPOINT)
    for args, name in [(("--timings", tmp_path / "d2" / "losses.csv"), "losses.csv"),
                       (("--dump-data", tmp_path / "d2" / "checkpoint-20"), "checkpoint-20")]:
        (tmp_path / "d2").mkdir(exist_ok=True)
        refused(run_cli(*DEMO, "--save-run", tmp_path / "d2", "-o", tmp_path / "d2" / "film.mp4", *args, check=False), name)
        assert os.listdir(tmp_path / "d2") == [], "a refused demo writes nothing"


def test_files_that_merely_look_like_embedlapses_are_never_removed(run, tmp_path):
    out = tmp_path / "out"
    (out / "frames" / ".embedlapse-staging.2147483646.partial").mkdir(parents=True)
    planted = [out / ".film.mp4.2147483646.partial", out / "frames" / ".frame-0001.png.2147483646.partial",
               out / "frames" / ".embedlapse-staging.2147483646.partial" / "frame-0001.png"]
    for path in planted:
        path.write_bytes(b"the user's")
    run_cli("render", run, "-o", out / "film.mp4", "--frames-dir", out / "frames", *ONE_FRAME_PER_CHECKPOINT)
    assert all(path.read_bytes() == b"the user's" for path in planted)


def test_a_cache_entry_holding_a_users_file_is_left_whole(run, tmp_path):
    cache = tmp_path / "cache"
    entry = analysed(run, cache)[1]
    (entry / "notes.txt").write_text("mine")
    x = np.load(run / f"checkpoint-{entry.name.split('-')[1]}" / "embeddings.npy")
    np.save(run / f"checkpoint-{entry.name.split('-')[1]}" / "embeddings.npy", x[::-1].copy())  # the entry is stale
    proc = run_cli("analyse", run, "--cache", cache, check=False)
    assert proc.returncode != 0 and "notes.txt" in proc.stderr, proc.stderr
    assert (entry / "notes.txt").read_text() == "mine" and not leftovers(cache)
    film = run_cli("render", run, "-o", tmp_path / "f.mp4", "--cache", cache, *ONE_FRAME_PER_CHECKPOINT)
    assert "notes.txt" in film.stderr and (tmp_path / "f.mp4").stat().st_size > 0


def test_files_in_the_runs_other_folders_are_inputs_too(run, tmp_path):
    (run / "logs").mkdir()
    (run / "logs" / "film.mp4").write_bytes(b"the user's")
    (run / "numbers").mkdir()
    (run / "numbers" / "alignment.json").write_bytes(b"the user's")
    refused(run_cli("render", run, "-o", run / "logs" / "film.mp4", check=False), "logs/film.mp4")
    refused(run_cli("render", run, "--dump-data", run / "numbers", check=False), "alignment.json")
    assert (run / "logs" / "film.mp4").read_bytes() == b"the user's"
    assert (run / "numbers" / "alignment.json").read_bytes() == b"the user's"


def test_an_output_folder_swapped_for_a_link_mid_render_is_still_written_where_it_was_checked(run, tmp_path):
    """The outputs' folders are held from the check on: a folder renamed and replaced by a link into
    the run while the film is made does not redirect a single write."""
    before = inputs_snapshot(run)
    target = sorted(run.glob("checkpoint-*"))[0]
    safe = tmp_path / "safe"
    safe.mkdir()
    proc = subprocess.Popen([str(BINARY), "render", str(run), "-o", str(safe / "x.mp4"), "--timings",
                             str(safe / "trainer_state.json"), "--latest", str(safe / "latest.png"), "--frames-dir",
                             str(safe / "frames"), "--dump-data", str(safe / "numbers"), "--tween", "40", "--no-cache"],
                            stderr=subprocess.PIPE, text=True)
    assert wait_for_staged_frame(safe / "frames", proc)
    (safe).rename(tmp_path / "safe.old")
    os.symlink(target, safe)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert inputs_snapshot(run) == before
    old = tmp_path / "safe.old"
    assert (old / "x.mp4").stat().st_size > 0 and (old / "trainer_state.json").exists() and (old / "latest.png").exists()
    assert (old / "frames" / "frame-0000.png").exists() and (old / "numbers" / "alignment.json").exists()


def wait_for_staged_frame(frames, proc, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if any(Path(frames).glob(".embedlapse-staging.*.partial/frame-0003.png")):
            return True
        time.sleep(0.02)
    return False
