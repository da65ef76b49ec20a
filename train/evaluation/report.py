"""One evaluation, start to end: features -> distances -> metrics (plain and re-ranked) -> files.

Writes into ``out_dir``: ``metrics.json``, ``cmc.csv`` and ``cmc.json`` (rank, cmc, cmc_rerank: for
``dvc plots``), ``cmc.png``, ``per_query.csv`` (each query's AP and first correct rank, without
re-ranking: the pipeline's report resamples them) and ``ranklists.jpg`` (the hardest queries' top-10).
"""

import csv
import io
import json
import logging
import time
from pathlib import Path

import numpy as np

from densepose_textures.storage import write_text

from ..settings import EvalParams
from .distance import pairwise_distance
from .metrics import evaluate_rank
from .pictures import draw_rank_lists, hardest_queries, plot_cmc, top_gallery
from .rerank import k_reciprocal

log = logging.getLogger(__name__)

PER_QUERY_FILE = "per_query.csv"


def summary(result):
    cmc = result["cmc"]
    at = lambda r: float(cmc[min(r, len(cmc)) - 1])  # noqa: E731
    return {"rank1": at(1), "rank5": at(5), "rank10": at(10), "mAP": float(result["mAP"]),
            "mINP": float(result["mINP"]), "num_valid_queries": int(result["num_valid_queries"])}


def evaluate_features(qf, gf, query, gallery, out_dir, *, root=None, name="", title=None, metric=EvalParams.metric,
                      normalize=EvalParams.normalize, rerank=EvalParams.rerank, k1=EvalParams.k1, k2=EvalParams.k2,
                      lambda_value=EvalParams.lambda_value, max_rank=EvalParams.max_rank, hardest=EvalParams.hardest,
                      device="cpu"):
    """Evaluate query/gallery features (``query``/``gallery``: ``(key, pid, camid)`` items) and write
    the files of the module docstring; returns the metrics dict. ``name``: the test set's, ``title``: the CMC
    plot's (default ``name``). Defaults: :class:`train.settings.EvalParams`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = [np.array([item[i] for item in items], dtype=np.int64) for items in (query, gallery) for i in (1, 2)]
    q_pids, q_camids, g_pids, g_camids = labels
    qf, gf = qf.to(device), gf.to(device)

    started = time.perf_counter()
    dist = pairwise_distance(qf, gf, metric=metric, normalize=normalize)
    plain = evaluate_rank(dist, q_pids, g_pids, q_camids, g_camids, max_rank=max_rank, per_query=True)
    metrics = {"dataset": name, "num_query": len(query), "num_gallery": len(gallery), "metric": metric,
               "normalize": normalize, "plain": summary(plain)}
    log.info("%s: rank-1 %.2f%%  mAP %.2f%%  mINP %.2f%%", name, 100 * plain["cmc"][0], 100 * plain["mAP"],
             100 * plain["mINP"])
    curves = {"plain": plain["cmc"]}
    if rerank:
        if normalize:
            import torch.nn.functional as F

            qf, gf = F.normalize(qf, dim=1), F.normalize(gf, dim=1)
        reranked = evaluate_rank(k_reciprocal(qf, gf, k1=k1, k2=k2, lambda_value=lambda_value),
                                 q_pids, g_pids, q_camids, g_camids, max_rank=max_rank)
        metrics["rerank"] = dict(summary(reranked), k1=k1, k2=k2, lambda_value=lambda_value)
        curves["re-ranked"] = reranked["cmc"]
        log.info("%s re-ranked: rank-1 %.2f%%  mAP %.2f%%", name, 100 * reranked["cmc"][0], 100 * reranked["mAP"])
    metrics["seconds"] = round(time.perf_counter() - started, 3)

    write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    _write_cmc(out_dir, curves)
    _write_per_query(out_dir, query, plain)
    plot_cmc(out_dir / "cmc.png", curves, title=title or name)
    if hardest > 0 and root is not None:
        queries = hardest_queries(plain["ap"], hardest)
        ranked = top_gallery(dist, queries, q_pids, g_pids, q_camids, g_camids, topk=10)
        draw_rank_lists(out_dir / "ranklists.jpg", root, [q[0] for q in query], [g[0] for g in gallery],
                        queries, ranked, q_pids, g_pids)
    return metrics


def _write_per_query(out_dir, query, result):
    """``per_query.csv``: key, pid, camid, AP and first correct rank of each query (empty: no match in the gallery)."""
    table = io.StringIO(newline="")
    writer = csv.writer(table)
    writer.writerow(["key", "pid", "camid", "ap", "first_rank"])
    for (key, pid, camid), ap, first in zip(query, result["ap"], result["first_rank"]):
        valid = not np.isnan(ap)
        writer.writerow([key, pid, camid, f"{ap:.6f}" if valid else "", int(first) if valid else ""])
    write_text(out_dir / PER_QUERY_FILE, table.getvalue())


def read_per_query(path):
    """(pids, APs) of the queries with a match in the gallery, from a ``per_query.csv``."""
    with open(path, newline="") as f:
        rows = [row for row in csv.DictReader(f) if row["ap"]]
    return np.array([int(r["pid"]) for r in rows], np.int64), np.array([float(r["ap"]) for r in rows])


def _write_cmc(out_dir, curves):
    ranks = range(1, len(curves["plain"]) + 1)
    rows = [{"rank": r, "cmc": float(curves["plain"][r - 1]),
             **({"cmc_rerank": float(curves["re-ranked"][r - 1])} if "re-ranked" in curves else {})}
            for r in ranks]
    write_text(out_dir / "cmc.json", json.dumps({"cmc": rows}, indent=1) + "\n")
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text(out_dir / "cmc.csv", table.getvalue())
