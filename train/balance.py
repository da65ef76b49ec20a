"""How much each loss moves the encoder: gradient norms at the backbone, and the decoder's gain.

:func:`backbone_gradient_norms` measures, for one batch, the norm of each loss's gradient with
respect to the backbone's weights (one extra backward pass per loss, on the retained graph).
:class:`GradientShares` does it every ``every`` steps of an epoch, averages the norms and each
loss's share (its norm over the sum of all norms) per epoch for dvclive, and, given a target
``decoder_share``, moves the decoder's ``encoder_gain`` so that texture + tr make up that share
of the gradient reaching the backbone: ``log gain += rate * log(wanted ratio / measured ratio)``,
ratio = decoder norms / reID norms. The gain scales only what flows back into the encoder; the
decoder's own gradients and every forward pass are unchanged. With ``decoder_share = 0`` the
gain stays where it is (1: the official behaviour) and the shares are only measured.
"""

import math

import torch
import torch.distributed as dist

from .optim import REID_TERMS, TEXTURE_TERMS

GAIN_RANGE = (1e-3, 1e5)


def backbone_gradient_norms(losses, params):
    """{loss name: L2 norm of its gradient with respect to ``params``}; the graph is kept for the real step."""
    norms = {}
    for name, loss in losses.items():
        if not loss.requires_grad:
            norms[name] = 0.0
            continue
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        squares = [g.detach().float().pow(2).sum() for g in grads if g is not None]
        norms[name] = math.sqrt(float(sum(squares))) if squares else 0.0
    return norms


def _mean_over_ranks(values):
    if not (dist.is_available() and dist.is_initialized()):
        return values
    names = sorted(values)
    t = torch.tensor([values[n] for n in names], dtype=torch.float64)
    dist.all_reduce(t)
    return dict(zip(names, (t / dist.get_world_size()).tolist()))


class GradientShares:
    """The engine's probe (:func:`train.engine.fit`): measures, and with a target balances, every ``every`` steps.

    ``model``: the bare :class:`train.model.SAN`. The step counter restarts each epoch, so the
    measured steps, and the gain, do not depend on where a run was resumed.
    """

    def __init__(self, model, *, every, decoder_share=0.0, rate=0.5):
        if not 0.0 <= decoder_share < 1.0:
            raise ValueError(f"decoder_share must be in [0, 1), got {decoder_share}")
        self.params = [p for p in model.encoder.backbone.parameters() if p.requires_grad]
        self.decoder = getattr(model, "decoder", None)
        self.every, self.target, self.rate = every, decoder_share, rate
        self.batch, self.sums, self.count = 0, {}, 0

    @property
    def gain(self):
        return float(self.decoder.encoder_gain) if self.decoder is not None else 1.0

    def step(self, losses):
        due = self.every > 0 and self.batch % self.every == 0
        self.batch += 1
        if not due:
            return
        norms = _mean_over_ranks(backbone_gradient_norms(losses, self.params))
        total = sum(norms.values()) or 1.0
        for name, norm in norms.items():
            self.sums[f"grad/{name}"] = self.sums.get(f"grad/{name}", 0.0) + norm
            self.sums[f"share/{name}"] = self.sums.get(f"share/{name}", 0.0) + norm / total
        self.count += 1
        if self.target > 0 and self.decoder is not None:
            self._balance(norms)

    def _balance(self, norms):
        decoder = sum(norms.get(n, 0.0) for n in TEXTURE_TERMS)
        reid = sum(norms.get(n, 0.0) for n in REID_TERMS)
        if decoder <= 0 or reid <= 0:
            return
        wanted = self.target / (1.0 - self.target)
        log_gain = math.log(self.gain) + self.rate * math.log(wanted / (decoder / reid))
        self.decoder.encoder_gain.fill_(min(max(math.exp(log_gain), GAIN_RANGE[0]), GAIN_RANGE[1]))

    def end_epoch(self):
        """The epoch's mean norms and shares, and the gain at its end; then a fresh epoch."""
        means = {name: value / self.count for name, value in self.sums.items()} if self.count else {}
        if self.decoder is not None:
            means["decoder/encoder_gain"] = self.gain
        self.batch, self.sums, self.count = 0, {}, 0
        return means
