"""WatchProcess: the `embedlapse watch` a training starts, supervised with a real subprocess."""
import os
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from embedlapse import RunWriter, WatchProcess, watch_command


@pytest.fixture(autouse=True)
def single_process(monkeypatch):
    """Tests run as the main process, even inside a distributed job (RANK decides who writes)."""
    monkeypatch.delenv("RANK", raising=False)

ROOT = Path(__file__).resolve().parents[2]
BINARY = os.environ.get("EMBEDLAPSE_BIN", str(ROOT / ".build" / "release" / "embedlapse"))
needs_binary = pytest.mark.skipif(not os.path.exists(BINARY), reason="no embedlapse binary (set EMBEDLAPSE_BIN)")


def python(code):
    return [sys.executable, "-c", textwrap.dedent(code)]


def ended(watch, timeout=20):
    deadline = time.time() + timeout
    while watch.process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    return watch


def test_a_failure_is_warned_once_then_raised_with_the_last_stderr_line(capsys):
    watch = ended(WatchProcess(python("import sys; sys.stderr.write('x: first\\nx: bad\\n'); sys.exit(1)")))
    with pytest.warns(RuntimeWarning, match=r"exit status 1\): x: bad"):
        assert watch.check() is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert watch.check() is False  # reported already: no second warning
    with pytest.raises(RuntimeError, match=r"exit status 1\): x: bad$"):
        watch.wait()
    assert capsys.readouterr().err == "embedlapse: x: first\nembedlapse: x: bad\n"


def test_a_running_or_successful_process_is_fine(capsys):
    watch = WatchProcess(python("""
        import sys, time
        time.sleep(0.5)
        sys.stderr.write('embedlapse: wrote 3 frames\\nplain line\\n')
    """))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert watch.check() is True  # still running
        assert watch.wait(timeout=20) == 0
        assert watch.check() is True
    assert capsys.readouterr().err == "embedlapse: wrote 3 frames\nembedlapse: plain line\n"
    assert watch.last_line == "plain line"


def test_a_chatty_process_cannot_fill_the_pipe_and_hang():
    # 2 MB on stderr: far beyond a pipe's buffer, so the child blocks unless it is read as it writes.
    watch = WatchProcess(python("import sys\nfor i in range(40000): sys.stderr.write('%049d\\n' % i)"))
    assert watch.wait(timeout=30) == 0
    assert watch.last_line == "%049d" % 39999 and len(watch.last_lines) == 20


def test_the_watch_command_ends_with_its_parent_and_after_an_idle_timeout():
    assert watch_command("bin/embedlapse", Path("out"), Path("v.mp4")) == [
        "bin/embedlapse", "watch", "out", "-o", "v.mp4", "--stop-with-parent", "--idle-timeout", "3600"]
    assert watch_command("e", "out", "v.mp4", idle_timeout=90.5)[-2:] == ["--idle-timeout", "90.5"]
    assert "--idle-timeout" not in watch_command("e", "out", "v.mp4", idle_timeout=None)
    assert watch_command("e", "out", "v.mp4", 60, film_args=("--tween", 1))[-4:] == ["--idle-timeout", "60", "--tween", "1"]


def test_serving_adds_the_explorer_to_the_watch_or_serves_alone():
    assert watch_command("e", "out", "v.mp4", 60, serve=True)[-3:] == ["--serve", "--port", "0"]
    assert watch_command("e", "out", "v.mp4", 60, serve=8800)[-3:] == ["--serve", "--port", "8800"]
    assert watch_command("e", "out", None, 60, serve=True) == ["e", "serve", "out", "--port", "0"]
    with pytest.raises(ValueError):
        watch_command("e", "out", None)


def running(pid):
    """Linux: whether pid is a live process (a zombie, dead but not yet reaped, is not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def run_parent(code, tmp_path):
    """Runs `code` in a parent process that prints a pid last and dies; the pid. Its output goes to a file,
    not a pipe: a pipe would stay open, and keep us waiting, as long as a child it passed on lives."""
    with open(tmp_path / "parent.out", "w+") as out:
        subprocess.run(python(code), stdout=out, stderr=subprocess.STDOUT, timeout=60)
        out.seek(0)
        text = out.read()
    last = text.strip().splitlines()[-1] if text.strip() else ""
    assert last.isdigit(), text  # the pid comes last, after what the child said on stderr
    return int(last)


def wait_until(condition, timeout=20):
    deadline = time.time() + timeout
    while not condition() and time.time() < deadline:
        time.sleep(0.05)
    return condition()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_child_gets_sigterm_when_its_parent_dies(tmp_path):
    terminated, ready = tmp_path / "terminated", tmp_path / "ready"
    child = ("import signal, sys, time\n"
             "signal.signal(signal.SIGTERM, lambda *a: (open(sys.argv[1], 'w').write('SIGTERM'), sys.exit(0)))\n"
             "open(sys.argv[2], 'w').close()\n"
             "time.sleep(60)\n")
    pid = run_parent(f"""
        import os, sys, time
        from embedlapse import WatchProcess
        watch = WatchProcess([sys.executable, "-c", {child!r}, {str(terminated)!r}, {str(ready)!r}])
        while not os.path.exists({str(ready)!r}):
            time.sleep(0.02)
        print(watch.process.pid, flush=True)
        os._exit(0)  # dies without a word to its child
    """, tmp_path)
    try:
        assert wait_until(lambda: terminated.exists() and not running(pid)), "the child outlived its parent"
        assert terminated.read_text() == "SIGTERM"
    finally:
        if running(pid):
            os.kill(pid, 9)


def a_run(path, done):
    run = RunWriter(path, labels=np.arange(40) % 4)
    run.checkpoint(0, np.random.default_rng(0).standard_normal((40, 8)))
    if done:
        run.close()
    return path


@needs_binary
def test_the_real_watcher_failing_on_a_bad_output_path(tmp_path):
    watch = ended(WatchProcess([BINARY, "watch", str(a_run(tmp_path / "run", done=False)),
                                "-o", "/nonexistent-dir/x.mp4"]))
    assert watch.process.returncode not in (None, 0)
    with pytest.warns(RuntimeWarning, match="nonexistent-dir"):
        watch.check()
    with pytest.raises(RuntimeError, match=rf"exit status {watch.process.returncode}\).*nonexistent-dir"):
        watch.wait()


def supports_the_helper_flags():
    if not os.path.exists(BINARY):
        return False
    help_text = subprocess.run([BINARY, "watch", "--help"], capture_output=True, text=True).stdout
    return "--stop-with-parent" in help_text and "--idle-timeout" in help_text


@pytest.mark.skipif(not supports_the_helper_flags(), reason="the binary's watch has no --stop-with-parent yet")
def test_the_real_watcher_accepts_the_helper_command(tmp_path):
    watch = WatchProcess(watch_command(BINARY, a_run(tmp_path / "run", done=True), tmp_path / "v.mp4", 60))
    assert watch.wait(timeout=60) == 0
    assert (tmp_path / "v.mp4").stat().st_size > 0


@pytest.mark.skipif(not sys.platform.startswith("linux") or not supports_the_helper_flags(),
                    reason="Linux and a binary whose watch has --stop-with-parent")
def test_the_real_watcher_finalises_its_video_when_the_training_dies(tmp_path):
    run, video = a_run(tmp_path / "run", done=False), tmp_path / "v.mp4"
    pid = run_parent(f"""
        import os, time
        from embedlapse import WatchProcess, watch_command
        watch = WatchProcess(watch_command({BINARY!r}, {str(run)!r}, {str(video)!r}, 600))
        deadline = time.time() + 30
        while not (os.path.exists({str(video)!r}) and os.path.getsize({str(video)!r})) and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        print(watch.process.pid, flush=True)
        os._exit(1)  # a training that crashed: no DONE, no goodbye
    """, tmp_path)
    try:
        assert wait_until(lambda: not running(pid), timeout=30), "watch outlived the training"
    finally:
        if running(pid):
            os.kill(pid, 9)
    probe = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-show_entries", "stream=nb_read_frames",
                            "-of", "csv=p=0", str(video)], capture_output=True, text=True)
    assert probe.stdout.strip() == "1", probe.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux") or not os.path.exists(BINARY), reason="Linux and the binary")
def test_serve_gives_the_url_and_outlives_the_film_until_the_training_ends(tmp_path):
    """The callback's serve=True: the URL once listening; after DONE the film is written and the
    explorer goes on serving, until the process that started it exits."""
    run, video, url_file = tmp_path / "run", tmp_path / "v.mp4", tmp_path / "url"
    pid = run_parent(f"""
        import json, os, time, urllib.request
        import numpy as np
        from embedlapse import RunWriter, WatchProcess, watch_command
        rng = np.random.default_rng(0)
        labels = np.arange(90) % 3
        writer = RunWriter({str(run)!r}, labels=labels)
        writer.checkpoint(0, rng.standard_normal((90, 6)))
        watch = WatchProcess(watch_command({BINARY!r}, {str(run)!r}, {str(video)!r}, 600, ("--tween", "1"), serve=True))
        url = watch.wait_for_url()
        writer.checkpoint(5, rng.standard_normal((90, 6)) + 3 * np.eye(3, 6)[labels])
        writer.close()
        watch.wait_for_film(timeout=60)
        steps = json.loads(urllib.request.urlopen(url + "api/run", timeout=30).read())["steps"]
        open({str(url_file)!r}, "w").write(url + " " + json.dumps(steps, separators=(",", ":")) + " " + str(watch.process.poll()))
        print(watch.process.pid, flush=True)
        os._exit(0)
    """, tmp_path)
    try:
        url, steps, status = url_file.read_text().split(" ")
        assert url.startswith("http://127.0.0.1:") and steps == "[0,5]" and status == "None"
        assert wait_until(lambda: not running(pid), timeout=30), "the explorer outlived the training"
    finally:
        if running(pid):
            os.kill(pid, 9)
    probe = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-show_entries", "stream=nb_read_frames",
                            "-of", "csv=p=0", str(video)], capture_output=True, text=True)
    assert probe.stdout.strip() == "2", probe.stderr
