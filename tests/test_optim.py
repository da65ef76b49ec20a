import copy

import pytest
import torch

from train.model import SAN
from train.objective import SANObjective
from train.optim import Optimization, reid_lr
from train_fixtures import one_thread  # noqa: F401  (fixture)

SCHEDULE = dict(lr=8e-4, step_size=40, gamma=0.5, warmup_epochs=20, warmup_lr=8e-6, warmup_factor=1.259)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_lr_schedule_ramps_then_halves():
    assert reid_lr(0, **SCHEDULE) == 8e-6
    assert reid_lr(19, **SCHEDULE) == pytest.approx(8e-6 * 1.259 ** 19)
    assert reid_lr(19, **SCHEDULE) < 8e-4 < 8e-6 * 1.259 ** 20 * 1.01  # the ramp ends near the main lr
    assert [reid_lr(e, **SCHEDULE) for e in (20, 59, 60, 100)] == [8e-4, 8e-4, 4e-4, 2e-4]


def _inputs(n=8, p=4):
    g = torch.Generator().manual_seed(0)
    return {"images": torch.randn(n, 3, 64, 32, generator=g), "pids": torch.arange(n) // 2,
            "target": torch.rand(n, 3, 6 * p, 4 * p, generator=g) * 2 - 1, "mask": torch.ones(n, 1, 6 * p, 4 * p),
            "provenance": torch.zeros(n, 1, 6 * p, 4 * p, dtype=torch.uint8)}


def _objective(net):
    return SANObjective(net, label_smoothing=0.1, triplet_margin=0.3, texture_weight=1.0, tr_weight=1.0, tr_margin=0.3)


def test_faithful_step_takes_both_gradient_sets_at_the_same_weights():
    torch.manual_seed(0)
    net = SAN(4, backbone="resnet18", texture_size=4)
    start = copy.deepcopy(net)
    optim = Optimization(net, profile="faithful", **dict(SCHEDULE, warmup_epochs=0), weight_decay=5e-4,
                         amsgrad=True, texture_lr=1e-5, texture_betas=(0.5, 0.999))
    optim.set_epoch(0)
    optim.step(_objective(net)(**_inputs())[0])

    # reference: both gradients at the starting weights; a first Adam step moves each weight by
    # lr * g / (|g| + eps) (bias-corrected moments of one gradient), AMSGrad too; L2 decay on the reID one
    losses = _objective(start)(**_inputs())[0]
    params = dict(start.named_parameters())
    decoder = {n for n in params if n.startswith("decoder.")}
    reid_names = [n for n in params if n not in decoder]
    tex_names = [n for n in params if n.startswith(("encoder.", "decoder."))]
    g_reid = dict(zip(reid_names, torch.autograd.grad(losses["id"] + losses["triplet"], [params[n] for n in reid_names],
                                                      retain_graph=True, allow_unused=True)))
    g_tex = dict(zip(tex_names, torch.autograd.grad(losses["texture"] + losses["tr"], [params[n] for n in tex_names],
                                                    allow_unused=True)))
    moved_by_both = 0
    for name, after in net.named_parameters():
        expected = params[name].detach().clone()
        if g_reid.get(name) is not None:
            g = g_reid[name] + 5e-4 * expected
            expected -= 8e-4 * g / (g.abs() + 1e-8)
        if g_tex.get(name) is not None:
            expected -= 1e-5 * g_tex[name] / (g_tex[name].abs() + 1e-8)
            moved_by_both += g_reid.get(name) is not None
        torch.testing.assert_close(after.detach(), expected, rtol=0, atol=2e-7, msg=name)
    assert moved_by_both > 50  # the encoder's weights take both updates
    assert all(g_reid.get(n) is None for n in decoder)


def test_joint_profile_is_one_optimiser_over_the_sum():
    torch.manual_seed(0)
    net = SAN(4, backbone="resnet18", texture_size=4)
    optim = Optimization(net, profile="joint", **dict(SCHEDULE, warmup_epochs=0), weight_decay=0.0, amsgrad=False,
                         texture_lr=1e-5, texture_betas=(0.5, 0.999))
    assert list(optim.optimizers) == ["joint"] and optim.active() == ["joint"]
    start = copy.deepcopy(net)
    optim.set_epoch(0)
    optim.step(_objective(net)(**_inputs())[0])
    losses = _objective(start)(**_inputs())[0]
    params = list(start.parameters())
    grads = torch.autograd.grad(sum(losses.values()), params)
    for p0, g, p1 in zip(params, grads, net.parameters()):
        torch.testing.assert_close(p1.detach(), p0.detach() - 8e-4 * g / (g.abs() + 1e-8), rtol=0, atol=2e-7)


def test_warmup_uses_a_separate_plain_adam():
    net = SAN(4, backbone="resnet18")
    optim = Optimization(net, profile="faithful", **dict(SCHEDULE, warmup_epochs=2), weight_decay=5e-4, amsgrad=True,
                         texture_lr=1e-5, texture_betas=(0.5, 0.999))
    optim.set_epoch(1)
    assert optim.active() == ["warmup"] and optim.lrs() == {"warmup": pytest.approx(8e-6 * 1.259)}
    assert not optim.optimizers["warmup"].defaults["amsgrad"] and optim.optimizers["reid"].defaults["amsgrad"]
    optim.set_epoch(2)
    assert optim.active() == ["reid"] and optim.lrs() == {"reid": 8e-4}


@pytest.mark.parametrize("profile", ["faithful", "joint"])
def test_bnneck_head_with_a_frozen_bias_trains(profile):
    net = SAN(4, backbone="resnet18", head="bnneck", texture_size=4)
    frozen = {n: p.detach().clone() for n, p in net.named_parameters() if not p.requires_grad}
    assert frozen  # BNNeck's BN bias
    optim = Optimization(net, profile=profile, **dict(SCHEDULE, warmup_epochs=0), weight_decay=5e-4, amsgrad=True,
                         texture_lr=1e-5, texture_betas=(0.5, 0.999))
    optim.set_epoch(0)
    optim.step(_objective(net)(**_inputs())[0])
    params = dict(net.named_parameters())
    assert all(torch.equal(params[n], v) for n, v in frozen.items())


def test_provenance_weights_weigh_target_texels_by_fill_step():
    from train.losses import texture_l1

    net = SAN(4, backbone="resnet18", texture_size=4)
    inputs = _inputs()
    inputs["provenance"] = torch.randint(0, 3, inputs["provenance"].shape, dtype=torch.uint8)
    objective = SANObjective(net, label_smoothing=0.1, triplet_margin=0.3, texture_weight=2.0, tr_weight=1.0,
                             tr_margin=0.3, provenance_weights=[1.0, 0.5, 0.25])
    with torch.no_grad():
        losses, texture = objective(**inputs)
    weights = torch.tensor([1.0, 0.5, 0.25])[inputs["provenance"].long()]
    expected = 2.0 * texture_l1(texture, inputs["target"], inputs["mask"], weights)
    torch.testing.assert_close(losses["texture"], expected)
    assert not torch.allclose(losses["texture"], 2.0 * texture_l1(texture, inputs["target"], inputs["mask"]))
