"""Texture sets against ground truth (synthetic data) and their summary statistics.

For every image with a person whose identity has a true atlas, each texel's error is
charged to the fill step that set it (its provenance), so the table shows how good the
observed texels, the mirrored ones, the in-part fill, and so on, each are; and to the region
it lies in, the texels the image shows (``observed``) or the ones it does not, so per-image,
identity-fused and true targets compare on the same texels.
"""

import re
from pathlib import Path

import numpy as np

from .atlas import texel_to_uv, uv_to_texel
from .errors import InputError
from .fill import fill_atlases
from .parts import NUM_PARTS
from .provenance import Provenance

STEPS = [code for code in Provenance if code != Provenance.NO_PERSON]  # texels with a person behind them
_PID = re.compile(r"^(-?\d+)_c")


def raw_pid(key):
    """The raw identity of an image key: the integer before ``_c`` in its file name (Market-1501 naming)."""
    match = _PID.match(Path(key).name)
    return int(match.group(1)) if match else None


def resample_truth(truth, size):
    """A (24, Pt, Pt, 3) true atlas at the set's P: the mean of the true texels whose centres fall
    in each texel (Pt >= P), else the true texel at each texel centre. Float (24, P, P, 3)."""
    pt = truth.shape[1]
    if pt == size:
        return truth.astype(np.float64)
    if pt < size:
        row, col = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
        trow, tcol = uv_to_texel(*texel_to_uv(row, col, size), pt)
        return truth[:, trow, tcol].astype(np.float64)
    trow, tcol = np.meshgrid(np.arange(pt), np.arange(pt), indexing="ij")
    row, col = uv_to_texel(*texel_to_uv(trow, tcol, pt), size)
    target = (np.arange(NUM_PARTS)[:, None, None] * size + row) * size + col  # (24, Pt, Pt)
    bins = NUM_PARTS * size * size
    counts = np.bincount(target.ravel(), minlength=bins)
    sums = np.stack([np.bincount(target.ravel(), truth[..., c].ravel().astype(np.float64), minlength=bins)
                     for c in range(3)], axis=-1)
    return (sums / counts[:, None]).reshape(NUM_PARTS, size, size, 3)


def true_atlas(truth, size):
    """:func:`resample_truth` rounded to uint8 (24, P, P, 3): the target a truth set or a generator trains on."""
    return np.clip(resample_truth(truth, size) + 0.5, 0, 255).astype(np.uint8)


REGIONS = ("observed in the image", "not observed", "all")


def _row(count, abs_sum, sq_sum, total):
    mae = abs_sum / (3 * count) if count else float("nan")
    mse = sq_sum / (3 * count) if count else float("nan")
    psnr = 10 * np.log10(255.0 ** 2 / mse) if count and mse > 0 else (float("inf") if count else float("nan"))
    return {"share": count / total if total else 0.0, "mae": mae, "psnr": psnr, "texels": int(count)}


class _Tally:
    """Error sums by provenance code (256 bins) and by region (observed in the image or not)."""

    def __init__(self):
        self.count, self.abs, self.sq = np.zeros(256, np.int64), np.zeros(256), np.zeros(256)
        self.region = np.zeros((3, 2))  # rows: count, abs, sq; columns: not observed, observed

    def add(self, texture, truth, provenance, observed):
        err = texture.astype(np.float64) - truth  # (..., 3)
        code = provenance.ravel()
        abs_err, sq_err = np.abs(err).sum(-1).ravel(), (err ** 2).sum(-1).ravel()
        self.count += np.bincount(code, minlength=256)
        self.abs += np.bincount(code, abs_err, minlength=256)
        self.sq += np.bincount(code, sq_err, minlength=256)
        person = code != Provenance.NO_PERSON
        seen = (observed.ravel() > 0)[person].astype(np.int64)
        for row, weights in enumerate((None, abs_err[person], sq_err[person])):
            self.region[row] += np.bincount(seen, weights, minlength=2)

    def rows(self):
        total = self.count[STEPS].sum()
        rows = []
        for code in STEPS + ["all"]:
            idx = STEPS if code == "all" else [code]
            sums = (self.count[idx].sum(), self.abs[idx].sum(), self.sq[idx].sum())
            rows.append({"step": code if code == "all" else code.label, **_row(*sums, total)})
        return rows

    def region_rows(self):
        total = self.region[0].sum()
        columns = (self.region[:, 1], self.region[:, 0], self.region.sum(axis=1))
        return [{"region": name, **_row(*sums, total)} for name, sums in zip(REGIONS, columns)]


def describe_targets(attrs):
    """How a set's targets were made, in a few words: ``nearest``, ``nearest, fused by identity``, ``truth``,
    ``imported``, ``sanpg`` (``sanpg, observed kept``)."""
    source = attrs.get("source", "warp")
    if source in ("truth", "import"):
        return {"truth": "truth", "import": "imported"}[source]
    if source == "sanpg":
        return "sanpg, observed kept" if attrs.get("keep_observed", False) else "sanpg"
    fill = attrs.get("fill", "?")
    return f"{fill}, fused by identity" if attrs.get("fuse", "none") == "identity" else fill


def measure_quality(texture_set, truth, methods=None, limit=None, batch_size=64, label=None, steps_of=None):
    """Error of ``texture_set`` against ``truth`` ({raw pid: (24, Pt, Pt, 3)}), per fill step and per region.

    ``methods``: fill methods to re-run on the observed texels of a per-image set with the set's
    mirror map (None: the set as stored, labelled ``label`` or by :func:`describe_targets`).
    ``steps_of``: another set of the same images (a per-image warp set) whose provenance charges each
    texel to a step instead of the set's own, so a generated set's error splits by what the fill did there.
    Returns {label: {"images": n, "rows": [...], "regions": [...]}}: each row has ``step`` (or
    ``region``: observed in the image, not observed, all), ``share`` (of the person texels),
    ``mae`` and ``psnr`` (8-bit scale), ``texels``.
    """
    size = texture_set.size
    attrs = texture_set.attrs
    if attrs.get("layout", "atlas") != "atlas":
        raise InputError(f"{texture_set.path} holds {describe_targets(attrs)} textures of a foreign layout, not "
                         "atlases: they cannot be compared texel by texel with the true atlases")
    if methods is not None and (attrs.get("source", "warp"), attrs.get("fuse", "none")) != ("warp", "none"):
        raise InputError(f"{texture_set.path} holds {describe_targets(attrs)} targets: fill methods can only be "
                         "re-run on a per-image set (source warp, fuse none)")
    mirror = texture_set.mirror_index if attrs.get("mirror", True) else None
    if steps_of is not None and list(steps_of.keys) != list(texture_set.keys):
        raise InputError(f"{steps_of.path} does not hold the images of {texture_set.path} in the same order: "
                         "--steps-of takes a set built from the same IUV store")
    labels = [label or f"{describe_targets(attrs)} (as stored)"] if methods is None else list(methods)
    tallies = {name: _Tally() for name in labels}
    resampled = {}
    images = 0
    for start, arrays in texture_set.batches(batch_size=batch_size):
        keep = []
        person = (arrays["provenance"].reshape(len(arrays["provenance"]), -1) != Provenance.NO_PERSON).any(axis=1)
        for j in np.flatnonzero(person):
            pid = raw_pid(texture_set.keys[start + j])
            if pid in truth and (limit is None or images < limit):
                keep.append(j)
                images += 1
                if pid not in resampled:
                    resampled[pid] = resample_truth(truth[pid], size)
        if not keep:
            continue
        true = np.stack([resampled[raw_pid(texture_set.keys[start + j])] for j in keep])
        texture, observed, provenance = (arrays[k][keep] for k in ("texture", "observed", "provenance"))
        if steps_of is not None:
            provenance = np.stack([steps_of[start + j]["provenance"] for j in keep])
        for name in labels:
            if methods is None:
                tallies[name].add(texture, true, provenance, observed)
            else:
                filled, steps = fill_atlases(np.where(observed[..., None] > 0, texture, 0), observed, mirror, name)
                tallies[name].add(filled, true, steps, observed)
        if limit is not None and images >= limit:
            break
    return {name: {"images": images, "rows": tally.rows(), "regions": tally.region_rows()}
            for name, tally in tallies.items()}


def format_regions_table(results):
    """Plain-text (and Markdown) table of :func:`measure_quality` results by region: the texels each
    image shows, those it does not, and all."""
    lines = ["| targets | texels | images | share of texels | MAE | PSNR (dB) |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for label, result in results.items():
        for row in result["regions"]:
            lines.append(f"| {label} | {row['region']} | {result['images']} | {row['share']:.1%} | "
                         f"{row['mae']:.1f} | {row['psnr']:.1f} |")
    lines.append("(images with a person; errors in 8-bit levels per channel, against the true atlases at the set's P)")
    return "\n".join(lines)


def format_table(results):
    """Plain-text table of :func:`measure_quality` results (also valid Markdown)."""
    lines = ["| fill | step | share of texels | MAE | PSNR (dB) |", "| --- | --- | ---: | ---: | ---: |"]
    for label, result in results.items():
        for row in result["rows"]:
            if row["texels"] == 0 and row["step"] != "all":
                continue
            lines.append(f"| {label} | {row['step']} | {row['share']:.1%} | {row['mae']:.1f} | {row['psnr']:.1f} |")
    images = next(iter(results.values()))["images"] if results else 0
    lines.append(f"({images} images with a person; errors in 8-bit levels per channel)")
    return "\n".join(lines)


def set_statistics(texture_set, batch_size=256):
    """Images with a person, observed share per person image (mean/min/max), share of texels per fill step."""
    coverage, counts = [], np.zeros(256, np.int64)
    for _, arrays in texture_set.batches(("observed", "provenance"), batch_size=batch_size):
        observed, provenance = arrays["observed"], arrays["provenance"]
        person = (provenance.reshape(len(provenance), -1) != Provenance.NO_PERSON).any(axis=1)
        coverage.extend(observed[person].reshape(int(person.sum()), -1).mean(axis=1))
        counts += np.bincount(provenance[person].ravel(), minlength=256)
    total = counts[STEPS].sum()
    coverage = np.array(coverage) if coverage else np.zeros(1)
    return {
        "found": int(len(coverage) if total else 0),
        "coverage_mean": float(coverage.mean()), "coverage_min": float(coverage.min()),
        "coverage_max": float(coverage.max()),
        "shares": {c.label: (counts[c] / total if total else 0.0) for c in STEPS},
    }
