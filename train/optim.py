"""Optimisation profiles. The trainer hands :meth:`Optimization.step` a dict of weighted losses.

``faithful`` (the paper's release): the reID losses (``id``, ``triplet``) train
everything but the decoder with AMSGrad (lr 8e-4, weight decay 5e-4, halved every
40 epochs) after warm-up epochs in which a separate plain Adam ramps its lr
exponentially (8e-6 x 1.259 per epoch); the texture losses (``texture``, ``tr``)
train the encoder and the decoder through two more Adams (lr 1e-5, betas 0.5/0.999).
Both gradient sets are taken at the same weights (two ``autograd.grad`` calls on one
graph) before any optimiser steps; the official code's second backward through
weights already updated in place fails on modern PyTorch. Under DDP the forward runs
in ``no_sync()`` and the gradients are all-reduced explicitly: DDP synchronises only
what ``backward()`` produces (pytorch#47562).

``joint``: one optimiser over the sum of all weighted losses, with the same lr
schedule; a plain ``backward()`` that DDP synchronises itself.
"""

import contextlib
import logging

import torch
import torch.distributed as dist

from densepose_textures.errors import InputError

log = logging.getLogger(__name__)

REID_TERMS = ("id", "triplet")
TEXTURE_TERMS = ("texture", "tr")
PROFILES = ("faithful", "joint")


def reid_lr(epoch, *, lr, step_size, gamma, warmup_epochs, warmup_lr, warmup_factor):
    """lr of the reID optimiser in ``epoch`` (0-based, warm-up epochs first)."""
    if epoch < warmup_epochs:
        return warmup_lr * warmup_factor ** epoch
    return lr * gamma ** ((epoch - warmup_epochs) // step_size)


def _sum(losses, names):
    terms = [losses[n] for n in names if n in losses]
    return sum(terms[1:], terms[0]) if terms else None


class Optimization:
    """All optimisers of one profile, their lr schedule, AMP loss scaling and the DDP gradient sync.

    ``model`` is the bare :class:`train.model.SAN` (no DDP wrapper); ``distributed`` says whether
    gradients must be averaged across processes.
    """

    def __init__(self, model, *, profile, lr, weight_decay, amsgrad, step_size, gamma, warmup_epochs, warmup_lr,
                 warmup_factor, texture_lr, texture_betas, amp="none", device="cpu", distributed=False):
        if profile not in PROFILES:
            raise InputError(f"unknown optimisation profile {profile!r}; choose one of {', '.join(PROFILES)}")
        self.profile = profile
        self.schedule = dict(lr=lr, step_size=step_size, gamma=gamma, warmup_epochs=warmup_epochs,
                             warmup_lr=warmup_lr, warmup_factor=warmup_factor)
        self.distributed = distributed
        decoder = getattr(model, "decoder", None)

        def trainable(module):  # frozen parameters (BNNeck's BN bias) take no gradient
            return [p for p in module.parameters() if p.requires_grad] if module is not None else []

        decoder_ids = {id(p) for p in trainable(decoder)}
        self.reid_params = [p for p in trainable(model) if id(p) not in decoder_ids]
        self.decoder_params = trainable(decoder)
        self.encoder_params = trainable(model.encoder)
        self.optimizers = {}
        if profile == "joint":
            self.optimizers["joint"] = torch.optim.Adam(trainable(model), lr=lr, weight_decay=weight_decay,
                                                        amsgrad=amsgrad)
        else:
            if warmup_epochs > 0:
                self.optimizers["warmup"] = torch.optim.Adam(self.reid_params, lr=warmup_lr, weight_decay=weight_decay)
            self.optimizers["reid"] = torch.optim.Adam(self.reid_params, lr=lr, weight_decay=weight_decay,
                                                       amsgrad=amsgrad)
            if self.decoder_params:
                betas = tuple(texture_betas)
                self.optimizers["texture_encoder"] = torch.optim.Adam(self.encoder_params, lr=texture_lr, betas=betas)
                self.optimizers["texture_decoder"] = torch.optim.Adam(self.decoder_params, lr=texture_lr, betas=betas)
        self.scaler = torch.amp.GradScaler(torch.device(device).type, enabled=amp == "fp16")
        self.epoch = 0

    # -- schedule -------------------------------------------------------------------------------
    def set_epoch(self, epoch):
        self.epoch = epoch
        lr = reid_lr(epoch, **self.schedule)
        for name in ("warmup", "reid", "joint"):
            if name in self.optimizers:
                for group in self.optimizers[name].param_groups:
                    group["lr"] = lr

    @property
    def warming_up(self):
        return self.epoch < self.schedule["warmup_epochs"]

    def active(self):
        """Names of the optimisers that step in the current epoch."""
        if self.profile == "joint":
            return ["joint"]
        names = ["warmup" if self.warming_up and "warmup" in self.optimizers else "reid"]
        return names + [n for n in ("texture_encoder", "texture_decoder") if n in self.optimizers]

    def lrs(self):
        return {name: self.optimizers[name].param_groups[0]["lr"] for name in self.active()}

    # -- one step -------------------------------------------------------------------------------
    def forward_context(self, ddp_module):
        """Context for the forward pass: ``no_sync()`` when gradients are synchronised by hand."""
        if self.distributed and self.profile == "faithful":
            return ddp_module.no_sync()
        return contextlib.nullcontext()

    def step(self, losses):
        """Gradients of the weighted ``losses`` dict, then one step of every active optimiser."""
        if self.profile == "joint":
            self._step_joint(losses)
        else:
            self._step_faithful(losses)
        self.scaler.update()

    def _step_joint(self, losses):
        opt = self.optimizers["joint"]
        opt.zero_grad(set_to_none=True)
        total = _sum(losses, REID_TERMS + TEXTURE_TERMS)
        self.scaler.scale(total).backward()
        self.scaler.step(opt)

    def _step_faithful(self, losses):
        reid, texture = _sum(losses, REID_TERMS), _sum(losses, TEXTURE_TERMS)
        groups = [(self.reid_params, reid)]
        if texture is not None and self.decoder_params:
            groups.append((self.encoder_params + self.decoder_params, texture))
        grads = []
        for k, (params, loss) in enumerate(groups):  # every gradient at the same weights
            grads.append(torch.autograd.grad(self.scaler.scale(loss), params, retain_graph=k + 1 < len(groups),
                                             allow_unused=True))
        if self.distributed:
            all_reduce_mean([g for gs in grads for g in gs if g is not None])
        first = self.active()[0]
        self._apply(self.optimizers[first], self.reid_params, grads[0])
        if len(groups) > 1:
            n = len(self.encoder_params)
            self._apply(self.optimizers["texture_encoder"], self.encoder_params, grads[1][:n])
            self._apply(self.optimizers["texture_decoder"], self.decoder_params, grads[1][n:])

    def _apply(self, opt, params, grads):
        for p, g in zip(params, grads):
            p.grad = g
        self.scaler.step(opt)
        for p in params:
            p.grad = None

    # -- checkpoint -----------------------------------------------------------------------------
    def state_dict(self):
        return {"profile": self.profile, "epoch": self.epoch, "scaler": self.scaler.state_dict(),
                "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()}}

    def load_state_dict(self, state):
        if state["profile"] != self.profile or set(state["optimizers"]) != set(self.optimizers):
            raise InputError(
                f"the checkpoint was trained with the {state['profile']!r} profile "
                f"({', '.join(sorted(state['optimizers']))}); these settings give {self.profile!r} "
                f"({', '.join(sorted(self.optimizers))}): resume with the same settings or start a new run"
            )
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.set_epoch(int(state["epoch"]))


def all_reduce_mean(tensors):
    """Average ``tensors`` in place across the process group, in one flat all-reduce."""
    if not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for t in tensors:
        t.copy_(flat[offset:offset + t.numel()].view_as(t))
        offset += t.numel()
