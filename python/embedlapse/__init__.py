"""Feed Embedlapse from a Python training: write the run layout that `embedlapse watch` renders live.

    from embedlapse import RunWriter
    with RunWriter("runs/mine", labels=y_eval, class_names=names, images=x_eval_uint8) as run:
        ...
        run.log_loss(step, loss)
        run.checkpoint(step, embeddings)     # (N, D) array-like: numpy, torch, lists

HuggingFace users add `EmbedlapseCallback` to their `Trainer` (imported lazily; needs torch).
"""
from .writer import RunWriter

__all__ = ["RunWriter", "EmbedlapseCallback"]
__version__ = "0.1.0"


def __getattr__(name):
    # The callback needs transformers and torch; import them only when it is asked for.
    if name == "EmbedlapseCallback":
        from .callback import EmbedlapseCallback
        return EmbedlapseCallback
    raise AttributeError(name)
