"""Training pictures: input image | predicted atlas | target atlas, one row per sample."""

import cv2
import numpy as np
import torch


def to_uint8_image(x, mean=None, std=None):
    """(3, H, W) float tensor -> (H, W, 3) uint8: de-normalised with mean/std, else mapped from [-1, 1]."""
    x = x.detach().float().cpu()
    if mean is not None:
        x = x * torch.tensor(std).view(3, 1, 1) + torch.tensor(mean).view(3, 1, 1)
    else:
        x = (x + 1) / 2
    return (x.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def texture_rows(images, predicted, target, mask, *, mean, std, count=4, gap=4):
    """uint8 (rows, cols, 3) picture of ``count`` samples; texels without evidence drawn grey in the target."""
    rows = []
    for i in range(min(count, len(images))):
        pred = to_uint8_image(predicted[i])
        tgt = to_uint8_image(target[i])
        tgt[mask[i, 0].cpu().numpy() == 0] = 128
        h = pred.shape[0]
        img = to_uint8_image(images[i], mean, std)
        img = cv2.resize(img, (max(1, round(img.shape[1] * h / img.shape[0])), h), interpolation=cv2.INTER_LINEAR)
        pad = np.full((h, gap, 3), 255, np.uint8)
        rows.append(np.concatenate([img, pad, pred, pad, tgt], axis=1))
        rows.append(np.full((gap, rows[-1].shape[1], 3), 255, np.uint8))
    return np.concatenate(rows[:-1], axis=0)
