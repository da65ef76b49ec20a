"""Overhead of measuring gradient shares (``train.balance``): SAN training steps with and without it.

The CPU profile's model and batch (ResNet-18, last stride 2, 128x64, 8 x 4 images, P = 32, the
``joint`` optimiser) on a random in-memory batch, so only the model step is timed. Reference:
the same steps with no measurement, in the same process. Each setting times ``--steps`` steps in
turn, 3 rounds, best round kept (load changes on a shared machine hit all settings alike). A
measurement costs about one extra backward pass per loss; measured every ``every`` steps its
cost is spread over them. The last line holds the ratios.

    python benchmarks/bench_balance.py [--steps 20] [--threads 1]

With ``--root`` and ``--textures`` (a synthetic dataset and its texture set, e.g. the pipeline's
``data/raw/synth`` and ``data/textures/synth``) it first prints each loss's gradient norm at the
backbone at initialisation, on the first P x K batch of that training split, for both TR distances.
"""

import argparse
import time

import torch

EVERY = (0, 20, 1)  # 0: never measured (the reference); 20: the default; 1: every step


def build(every, decoder_share):
    from train.balance import GradientShares
    from train.data import batch_to_device
    from train.model import SAN
    from train.objective import SANObjective
    from train.optim import Optimization

    torch.manual_seed(0)
    (h, w), (p, k), tex = (128, 64), (8, 4), 32
    n = p * k
    net = SAN(50, backbone="resnet18", last_stride=2, texture_size=tex)
    optim = Optimization(net, profile="joint", lr=8e-4, weight_decay=5e-4, amsgrad=True, step_size=15, gamma=0.5,
                         warmup_epochs=0, warmup_lr=8e-6, warmup_factor=1.259, texture_lr=1e-5,
                         texture_betas=(0.5, 0.999))
    optim.set_epoch(0)
    objective = SANObjective(net, label_smoothing=0.1, triplet_margin=0.3, texture_weight=1.0, tr_weight=1.0,
                             tr_margin=0.3)
    probe = GradientShares(net, every=every, decoder_share=decoder_share) if every else None
    batch = {"image": torch.randint(0, 256, (n, 3, h, w), dtype=torch.uint8), "pid": torch.arange(n) // k,
             "target": torch.randint(0, 256, (n, 3, 6 * tex, 4 * tex), dtype=torch.uint8),
             "provenance": torch.zeros(n, 1, 6 * tex, 4 * tex, dtype=torch.uint8)}
    inputs = batch_to_device(batch, "cpu")

    def train_step():
        objective.train()
        losses, _ = objective(**inputs)
        if probe is not None:
            probe.step(losses)
        optim.step(losses)

    return train_step


def norms_at_init(root, textures):
    """{tr distance: {loss: gradient norm at the backbone}} of the CPU profile's SAN at initialisation."""
    from pipeline import datasets
    from train.balance import backbone_gradient_norms
    from train.data import batch_to_device
    from train.objective import SANObjective
    from train.run import build_data, build_model
    from train.settings import TrainParams

    settings = TrainParams()
    settings.data.workers = 0
    data = build_data(settings, root, datasets.load("synth", root).train, textures, "cpu")
    data.sampler.set_epoch(0)
    inputs = batch_to_device(next(iter(data.loader)), "cpu")
    result = {}
    for distance in ("mse", "normalized"):
        net = build_model(settings, data, "cpu")
        objective = SANObjective(net, label_smoothing=0.1, triplet_margin=0.3, texture_weight=1.0, tr_weight=1.0,
                                 tr_margin=0.3, tr_distance=distance).train()
        losses, _ = objective(**inputs)
        result[distance] = backbone_gradient_norms(losses, list(net.encoder.backbone.parameters()))
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--root", help="a synthetic dataset (norms at initialisation on its first batch)")
    parser.add_argument("--textures", help="its texture set")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.root and args.textures:
        for distance, norms in norms_at_init(args.root, args.textures).items():
            shown = ", ".join(f"{name} {value:.3g}" for name, value in norms.items())
            print(f"gradient norms at the backbone at initialisation, tr_distance={distance}: {shown}")
    settings = {f"every={every}": build(every, 0.3 if every else 0.0) for every in EVERY}
    for step in settings.values():
        step()  # warm-up
    best = {name: float("inf") for name in settings}
    for _ in range(3):
        for name, step in settings.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            best[name] = min(best[name], (time.perf_counter() - start) / args.steps)
    for name, seconds in best.items():
        print(f"{name:9s} {1000 * seconds:8.1f} ms/step")
    reference = best["every=0"]
    print(" ".join(f"{name.replace('=', '')}_over_unmeasured={seconds / reference:.3f}"
                   for name, seconds in best.items() if name != "every=0"))


if __name__ == "__main__":
    main()
