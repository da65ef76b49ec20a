"""Pictures of an evaluation: rank lists of the hardest queries and the CMC curve."""

import logging
from pathlib import Path

import cv2
import numpy as np
import torch

from densepose_textures.errors import InputError
from densepose_textures.imageio import read_rgb, write_rgb
from densepose_textures.storage import AtomicWrite

log = logging.getLogger(__name__)

GREEN, RED, GREY = (0, 170, 0), (220, 0, 0), (128, 128, 128)


def hardest_queries(per_query_ap, count):
    """Indices of the ``count`` valid queries with the lowest AP (ties: lower index first)."""
    ap = np.asarray(per_query_ap, dtype=np.float64)
    valid = np.flatnonzero(~np.isnan(ap))
    return valid[np.argsort(ap[valid], kind="stable")[:count]]


def top_gallery(distmat, queries, q_pids, g_pids, q_camids, g_camids, topk=10):
    """(len(queries), topk) gallery indices of each query's nearest non-junk entries (-1 past the end)."""
    dist = torch.as_tensor(distmat)[torch.as_tensor(queries, dtype=torch.long)].double().cpu().numpy()
    q_pids, q_camids = np.asarray(q_pids)[queries], np.asarray(q_camids)[queries]
    junk = (np.asarray(g_pids)[None] == q_pids[:, None]) & (np.asarray(g_camids)[None] == q_camids[:, None])
    dist[junk] = np.inf
    order = np.argsort(dist, axis=1, kind="stable")[:, :topk]
    return np.where(np.take_along_axis(dist, order, 1) < np.inf, order, -1)


def _tile(path, size, colour, border=4):
    h, w = size
    try:
        image = cv2.resize(read_rgb(path), (w - 2 * border, h - 2 * border), interpolation=cv2.INTER_AREA)
    except InputError:  # a missing picture must not stop an evaluation: draw a grey tile
        image = np.full((h - 2 * border, w - 2 * border, 3), 200, np.uint8)
    return cv2.copyMakeBorder(image, border, border, border, border, cv2.BORDER_CONSTANT, value=colour)


def draw_rank_lists(path, root, q_keys, g_keys, queries, ranked, q_pids, g_pids, size=(128, 64), gap=12):
    """One row per query: the query (grey border), then its ranked gallery (green: same pid, red: other)."""
    root = Path(root)
    rows = []
    for q, gallery in zip(queries, ranked):
        tiles = [_tile(root / q_keys[q], size, GREY), np.full((size[0], gap, 3), 255, np.uint8)]
        for g in gallery:
            if g < 0:
                tiles.append(np.full((size[0], size[1], 3), 255, np.uint8))
            else:
                tiles.append(_tile(root / g_keys[g], size, GREEN if g_pids[g] == q_pids[q] else RED))
        rows.append(np.concatenate(tiles, 1))
    if not rows:
        return None
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    write_rgb(path, np.concatenate(rows, 0))
    log.info("rank lists of %d queries: %s", len(rows), path)
    return Path(path)


def plot_cmc(path, curves, title=""):
    """CMC curves ({label: cmc array}) as a PNG; ``title`` above the axes and in the file's Title metadata."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6), dpi=120)
    for label, cmc in curves.items():
        ranks = np.arange(1, len(cmc) + 1)
        ax.plot(ranks, 100 * np.asarray(cmc), label=f"{label} (R1 {100 * cmc[0]:.1f}%)")
    ax.set_xlabel("rank")
    ax.set_ylabel("matching rate (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    with AtomicWrite(path) as tmp:
        fig.savefig(tmp, format=Path(path).suffix.lstrip(".") or "png", metadata={"Title": title} if title else None)
    plt.close(fig)
    return Path(path)
