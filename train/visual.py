"""Training pictures: a label strip, then input image | predicted atlas | target atlas, one row per sample."""

import math

import cv2
import numpy as np

LABELS = ("input", "predicted", "target")
FONT = cv2.FONT_HERSHEY_SIMPLEX
MARGIN = 4  # pixels around a label


def to_uint8_image(x):
    """(3, H, W) float tensor in [-1, 1] -> (H, W, 3) uint8."""
    x = (x.detach().float().cpu() + 1) / 2
    return (x.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def label_strip(labels, widths, gap):
    """White strip with each label centred, in black, over its column (``widths``, ``gap`` pixels apart)."""
    scale = min([0.5] + [0.9 * w / cv2.getTextSize(t, FONT, 1.0, 1)[0][0] for t, w in zip(labels, widths)])
    sizes = [cv2.getTextSize(t, FONT, scale, 1) for t in labels]
    height = max(h + base for (_, h), base in sizes) + 2 * MARGIN
    strip = np.full((height, sum(widths) + gap * (len(widths) - 1), 3), 255, np.uint8)
    x = 0
    for text, width, ((w, h), _) in zip(labels, widths, sizes):
        cv2.putText(strip, text, (x + (width - w) // 2, MARGIN + h), FONT, scale, (0, 0, 0), 1, cv2.LINE_AA)
        x += width + gap
    return strip


def texture_rows(images, predicted, target, mask, *, labels=LABELS, gap=4, min_width=96):
    """uint8 (rows, cols, 3) picture: ``labels`` over the columns, then for each of ``images`` ((H, W, 3) uint8,
    the person as seen) the image | its predicted atlas | its target atlas (``predicted``, ``target``: (B, 3, 6P, 4P)
    in [-1, 1]), texels without evidence (``mask`` 0) grey in the target. Atlases narrower than ``min_width`` are
    enlarged by a whole factor (texels stay sharp), the image scaled to their height."""
    zoom = max(1, math.ceil(min_width / target.shape[-1]))
    rows = []
    for i, image in enumerate(images):
        pred = to_uint8_image(predicted[i])
        tgt = to_uint8_image(target[i])
        tgt[mask[i, 0].cpu().numpy() == 0] = 128
        pred, tgt = (a.repeat(zoom, axis=0).repeat(zoom, axis=1) for a in (pred, tgt))
        h = pred.shape[0]
        if image.shape[0] != h:
            image = cv2.resize(image, (max(1, round(image.shape[1] * h / image.shape[0])), h),
                               interpolation=cv2.INTER_LINEAR)
        pad = np.full((h, gap, 3), 255, np.uint8)
        rows.append(np.concatenate([image, pad, pred, pad, tgt], axis=1))
        widths = (image.shape[1], pred.shape[1], tgt.shape[1])
    strip = label_strip(labels, widths, gap)
    between = np.full((gap, strip.shape[1], 3), 255, np.uint8)
    return np.concatenate([strip] + [part for row in rows for part in (row, between)][:-1], axis=0)
