"""EmbedlapseCallback: a HuggingFace Trainer callback that writes the embeddings Embedlapse renders."""
import os
import subprocess

import torch
from torch.utils.data import DataLoader
from transformers import TrainerCallback

from .writer import RunWriter, find_embedlapse


def cls_embedding(model, batch):
    """The default: the [CLS] token of the last hidden state (as in the ViT fine-tuning notebook)."""
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "label")}
    return model(**inputs, output_hidden_states=True).hidden_states[-1][:, 0]


class EmbedlapseCallback(TrainerCallback):
    """Embeds a fixed evaluation set at every save (or every `every_steps`) and writes the run.

    eval_dataset  the samples to embed, in a fixed order (a Dataset of dicts, as the Trainer uses)
    labels, class_names, images   as for RunWriter: colours, legend and leaderboard thumbnails
    every_steps   embed every this many steps instead of at each save
    embed_fn      embed_fn(model, batch) -> (batch, D) tensor, for anything but the [CLS] token
    run_dir       where to write (default: the Trainer's output_dir, next to its checkpoints)
    render        a video path: runs `embedlapse watch` during training and finalises it at the end
    """

    def __init__(self, eval_dataset, labels=None, class_names=None, images=None, every_steps=None,
                 embed_fn=cls_embedding, batch_size=64, collate_fn=None, run_dir=None, render=None,
                 dtype="float16"):
        self.eval_dataset = eval_dataset
        self.labels, self.class_names, self.images = labels, class_names, images
        self.every_steps = every_steps
        self.embed_fn = embed_fn
        self.batch_size = batch_size
        self.collate_fn = collate_fn
        self.run_dir = run_dir
        self.render = render
        self.dtype = dtype
        self.writer = None
        self.process = None
        self._last_step = None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        run_dir = self.run_dir or args.output_dir
        self.writer = RunWriter(run_dir, self.labels, self.class_names, self.images, dtype=self.dtype)
        if self.render:
            self.process = subprocess.Popen([find_embedlapse(), "watch", run_dir, "-o", os.fspath(self.render)])
        self._checkpoint(state, model)  # the starting point: the pretrained backbone with its new head

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.writer.log_loss(state.global_step, logs["loss"], logs.get("epoch"))

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.every_steps and state.global_step % self.every_steps == 0:
            self._checkpoint(state, model)

    def on_save(self, args, state, control, model=None, **kwargs):
        if not self.every_steps:
            self._checkpoint(state, model)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if self._last_step != state.global_step:
            self._checkpoint(state, model)
        self.writer.close()  # DONE: the watcher renders what is left, finalises the video and exits
        if self.process is not None:
            self.process.wait()

    def _checkpoint(self, state, model):
        directory = os.path.join(self.writer.run_dir, f"checkpoint-{state.global_step}")
        # A Trainer checkpoint already has its own trainer_state.json, needed to resume: keep it.
        own_state = not os.path.exists(os.path.join(directory, "trainer_state.json"))
        self.writer.checkpoint(state.global_step, self._embed(model), epoch=state.epoch, trainer_state=own_state)
        self._last_step = state.global_step

    @torch.no_grad()
    def _embed(self, model):
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        loader = DataLoader(self.eval_dataset, batch_size=self.batch_size, shuffle=False, collate_fn=self.collate_fn)
        parts = []
        for batch in loader:
            batch = {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}
            parts.append(self.embed_fn(model, batch).float().cpu())
        model.train(was_training)
        return torch.cat(parts).numpy()
