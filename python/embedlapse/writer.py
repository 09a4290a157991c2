"""RunWriter: the run layout of docs/run-layout.md, every file written atomically."""
import csv
import io
import json
import os
import shutil
import tempfile

import numpy as np

THUMBNAIL_SIZE = 64
DONE = "DONE"


def _to_numpy(array):
    """numpy arrays, torch tensors (any device, with or without grad) and nested lists."""
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    return np.asarray(array)


def _atomic_write(path, data: bytes):
    """Write under a temporary name in the same directory, then rename: readers never see half a file."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _npy_bytes(array):
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array))
    return buffer.getvalue()


def _thumbnails(images, size=THUMBNAIL_SIZE):
    """uint8 (N, H, W), (N, H, W, 3|4) arrays, or PIL images; larger than `size` pixels is shrunk."""
    if not isinstance(images, np.ndarray) and len(images) and hasattr(images[0], "resize"):  # PIL images
        thumbs = []
        for image in images:
            image = image.convert("RGB") if image.mode not in ("L", "RGB", "RGBA") else image
            image = image.copy()
            image.thumbnail((size, size))
            thumbs.append(image)
        # All thumbnails share one size: pad onto a black square.
        mode = thumbs[0].mode
        side = max(max(t.size) for t in thumbs)
        channels = {"L": None, "RGB": 3, "RGBA": 4}[mode]
        out = np.zeros((len(thumbs), side, side) + ((channels,) if channels else ()), np.uint8)
        for i, t in enumerate(thumbs):
            a = np.asarray(t.convert(mode))
            out[i, : a.shape[0], : a.shape[1]] = a
        return out
    images = _to_numpy(images)
    if images.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got {images.dtype} (scale to 0-255 first)")
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[3] not in (3, 4)):
        raise ValueError(f"images must be (N, H, W), (N, H, W, 3) or (N, H, W, 4), got {images.shape}")
    h, w = images.shape[1:3]
    step = max(1, int(np.ceil(max(h, w) / size)))
    return np.ascontiguousarray(images[:, ::step, ::step])  # nearest-neighbour shrink, no extra dependency


class RunWriter:
    """Writes a training run in the layout `embedlapse watch` and `embedlapse render` read.

    run_dir      the run directory (created; a previous DONE marker is removed)
    labels       optional (N,) integer class of each evaluation sample
    class_names  optional list of names, indexed by label
    images       optional thumbnails: uint8 (N, H, W[, C]) or PIL images
    dtype        "float32" (default) or "float16" for the stored embeddings
    """

    def __init__(self, run_dir, labels=None, class_names=None, images=None, dtype="float32"):
        if dtype not in ("float32", "float16"):
            raise ValueError(f"dtype must be float32 or float16, got {dtype!r}")
        self.run_dir = os.fspath(run_dir)
        self.dtype = np.dtype(dtype)
        self.count = None
        self._losses = {}
        self._epochs = {}
        self._closed = False
        os.makedirs(self.run_dir, exist_ok=True)
        if os.path.exists(self._path(DONE)):
            os.unlink(self._path(DONE))
        if labels is not None:
            labels = _to_numpy(labels)
            if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
                raise ValueError(f"labels must be a 1-D integer array, got {labels.dtype} {labels.shape}")
            self.count = len(labels)
            _atomic_write(self._path("labels.npy"), _npy_bytes(labels.astype(np.int64)))
        if class_names is not None:
            _atomic_write(self._path("class_names.json"), json.dumps([str(n) for n in class_names]).encode())
        if images is not None:
            thumbs = _thumbnails(images)
            if self.count is not None and len(thumbs) != self.count:
                raise ValueError(f"{len(thumbs)} images for {self.count} labels")
            self.count = len(thumbs)
            _atomic_write(self._path("images.npy"), _npy_bytes(thumbs))

    def _path(self, *parts):
        return os.path.join(self.run_dir, *parts)

    def log_loss(self, step, loss, epoch=None):
        """Records the training loss at `step`; written out with the next checkpoint (and at close)."""
        self._losses[int(step)] = float(loss)
        if epoch is not None:
            self._epochs[int(step)] = float(epoch)

    def checkpoint(self, step, embeddings, epoch=None, trainer_state=True):
        """Writes checkpoint-<step>/embeddings.npy (N x D), after the losses so far.

        trainer_state=False leaves checkpoint-<step>/trainer_state.json alone (a HuggingFace
        Trainer has written its own there, which it needs to resume)."""
        if self._closed:
            raise RuntimeError("RunWriter is closed")
        step = int(step)
        e = _to_numpy(embeddings)
        if e.ndim != 2:
            raise ValueError(f"embeddings must be 2-D (N, D), got shape {e.shape}")
        if self.count is not None and e.shape[0] != self.count:
            raise ValueError(f"embeddings have {e.shape[0]} rows, the evaluation set has {self.count}")
        if not np.all(np.isfinite(e)):
            raise ValueError(f"step {step}: embeddings hold NaN or Inf")
        self.count = e.shape[0]
        directory = self._path(f"checkpoint-{step}")
        os.makedirs(directory, exist_ok=True)
        self._write_losses()
        log = [{"step": s, "loss": l, **({"epoch": self._epochs[s]} if s in self._epochs else {})}
               for s, l in sorted(self._losses.items())]
        state = {"global_step": step, "log_history": log}
        if epoch is not None:
            state["epoch"] = float(epoch)
        if trainer_state:
            _atomic_write(os.path.join(directory, "trainer_state.json"), json.dumps(state, indent=1).encode())
        _atomic_write(os.path.join(directory, "embeddings.npy"), _npy_bytes(e.astype(self.dtype)))

    def _write_losses(self):
        if not self._losses:
            return
        text = io.StringIO()
        w = csv.writer(text, lineterminator="\n")
        w.writerow(["step", "loss", "epoch"] if self._epochs else ["step", "loss"])
        for s, l in sorted(self._losses.items()):
            w.writerow([s, repr(l)] + ([self._epochs.get(s, "")] if self._epochs else []))
        _atomic_write(self._path("losses.csv"), text.getvalue().encode())

    def close(self):
        """Writes the last losses and the DONE marker: a watcher finishes its video and exits."""
        if self._closed:
            return
        self._write_losses()
        _atomic_write(self._path(DONE), b"")
        self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def find_embedlapse():
    """The embedlapse binary: $EMBEDLAPSE_BIN, else `embedlapse` on PATH."""
    binary = os.environ.get("EMBEDLAPSE_BIN") or shutil.which("embedlapse")
    if not binary:
        raise FileNotFoundError("embedlapse not found: put it on PATH or set EMBEDLAPSE_BIN")
    return binary
