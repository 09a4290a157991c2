"""WatchProcess: `embedlapse watch` beside a training, whose failure is reported instead of lost."""
import collections
import ctypes
import re
import signal
import subprocess
import sys
import threading
import warnings

PREFIX = "embedlapse: "
# What `embedlapse serve` and `watch --serve` print on stdout once listening.
SERVING = re.compile(r"^serving .* at (http://\S+)$")
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def watch_command(binary, run_dir, video, idle_timeout=3600, film_args=(), serve=False):
    """`embedlapse watch` for a training: it ends with its parent, and after idle_timeout seconds
    without a new checkpoint (None: waits for DONE however long). film_args are more of the
    command's options, as on its command line: ("--tween", "1") or ("--leaderboard", "label-issues").
    serve: also serve the explorer, on a free port (True) or on this port (an int); without a
    video, `embedlapse serve` alone."""
    port = [] if serve is False else ["--port", str(0 if serve is True else int(serve))]
    if video is None:
        if serve is False:
            raise ValueError("watch_command needs a video path, or serve")
        return [binary, "serve", str(run_dir), *port]
    command = [binary, "watch", str(run_dir), "-o", str(video), "--stop-with-parent"]
    if idle_timeout is not None:
        command += ["--idle-timeout", str(idle_timeout)]
    if serve is not False:
        command += ["--serve", *port]
    return command + [str(arg) for arg in film_args]


def _terminate_with_parent():
    """A preexec_fn (Linux only) that has the kernel send SIGTERM to the child when its parent dies,
    even by SIGKILL: watch then finalises its video rather than filming on alone.

    prctl is looked up here, in the parent, because the child must only call it: loading a library
    between fork and exec can deadlock. The signal comes when the thread that started the child ends,
    so start it from the training's own thread. None where prctl is unavailable."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    return lambda: prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


class WatchProcess:
    """Runs `command` (an `embedlapse watch` or `serve`), forwards its stderr and reports its failure.

    A thread reads stderr as it comes, so the child can never block on a full pipe; each line goes on
    to our stderr, prefixed "embedlapse: ", and the last ones are kept for the failure message.
    check() warns once, as soon as the process has failed; wait() raises if it failed.
    A serving process's URL is read from its stdout: `url` once it listens (also printed)."""

    def __init__(self, command, keep_lines=20):
        self.command = [str(c) for c in command]
        self.last_lines = collections.deque(maxlen=keep_lines)
        self.reported = False
        self.url = None
        self.listening = threading.Event()
        self.film_written = threading.Event()
        self.process = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, errors="replace",
                                        preexec_fn=_terminate_with_parent())
        self._reader = threading.Thread(target=self._forward_stderr, name="embedlapse-watch-stderr", daemon=True)
        self._reader.start()
        self._url_reader = threading.Thread(target=self._read_stdout, name="embedlapse-watch-stdout", daemon=True)
        self._url_reader.start()

    def _forward_stderr(self):
        with self.process.stderr:  # closed when the child closes its end: no pipe left open
            for line in self.process.stderr:
                line = line.rstrip("\n")
                if not line.strip():
                    continue
                self.last_lines.append(line)
                if re.match(r"^(interrupted: )?wrote \d+ frames to ", line.removeprefix(PREFIX)):
                    self.film_written.set()
                sys.stderr.write((line if line.startswith(PREFIX) else PREFIX + line) + "\n")
                sys.stderr.flush()

    def _read_stdout(self):
        with self.process.stdout:
            for line in self.process.stdout:
                match = SERVING.match(line.rstrip("\n"))
                if match and self.url is None:
                    self.url = match.group(1)
                    sys.stderr.write(f"{PREFIX}explorer at {self.url}\n")
                    sys.stderr.flush()
                    self.listening.set()

    def wait_for_url(self, timeout=30):
        """The explorer's URL once it listens; None if the process ended or timeout passed first."""
        waited = 0.0
        while not self.listening.wait(0.1) and self.process.poll() is None and waited < timeout:
            waited += 0.1
        return self.url

    def wait_for_film(self, timeout=None):
        """For `watch --serve`, which goes on serving after the film: waits until the film is written
        (or the process ended); RuntimeError if the process failed."""
        waited = 0.0
        while not self.film_written.wait(0.1):
            status = self.process.poll()
            if status is not None:
                if status != 0:
                    raise RuntimeError(self._failure(status))
                return
            waited += 0.1
            if timeout is not None and waited >= timeout:
                raise subprocess.TimeoutExpired(self.command, timeout)

    @property
    def last_line(self):
        """The last thing the process said on stderr, without the prefix."""
        return self.last_lines[-1].removeprefix(PREFIX) if self.last_lines else "(nothing on stderr)"

    def _failure(self, status):
        self._reader.join(timeout=5)  # its last lines, which say why
        return f"embedlapse watch failed (exit status {status}): {self.last_line}"

    def check(self):
        """False once the process has failed, warning the first time; True while it runs or after success."""
        if self.reported:
            return False
        status = self.process.poll()
        if status is None or status == 0:
            return True
        self.reported = True
        warnings.warn(self._failure(status) + "; training goes on, and `embedlapse render` can film the run "
                      "afterwards", RuntimeWarning, stacklevel=2)
        return False

    def wait(self, timeout=None):
        """Waits for the process to end: its exit status, or RuntimeError naming it and the last stderr line."""
        status = self.process.wait(timeout)
        if status != 0:
            raise RuntimeError(self._failure(status))
        self._reader.join(timeout=5)
        return status
