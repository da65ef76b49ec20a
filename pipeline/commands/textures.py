"""``sanreid gen-textures`` (build or reuse a texture set) and ``sanreid textures`` (inspect, draw, measure)."""

import contextlib
import logging
import os
from pathlib import Path

import click

from densepose_textures.errors import InputError

from .. import __version__, paths
from ..params import TARGETS, with_options
from .common import params_from_context, user_errors

log = logging.getLogger(__name__)


def find_iuv_store(dataset, variant=None):
    """``data/iuv/<dataset>.h5`` as `sanreid iuv --dataset` writes it, else the canonical name's store."""
    candidates = [paths.iuv_store(dataset), paths.iuv_store(paths.canonical_name(dataset, variant))]
    for path in candidates:
        if path.is_file():
            return path
    raise InputError(f"no IUV store at {candidates[0]}: run `sanreid iuv --dataset {dataset} --splits all` "
                     "first, or give the store with --iuv")


def mirror_map(params, dataset, root):
    """The mirror map for symmetry filling: the .mat file if given, the synthetic body's exact map
    for ``synth``, else docs/design.md's approximation; None when mirroring is off."""
    from densepose_textures.mirror import MirrorMap

    if not params.mirror:
        return None
    if params.mirror_file:
        return MirrorMap.from_mat(params.mirror_file)
    if dataset == "synth":
        from densepose_textures.synth import body_mirror_map, read_truth

        try:
            return read_truth(root)[1]
        except InputError as err:
            log.warning("%s; using the synthetic body's own exact map", err)
            return body_mirror_map()
    log.info("no mirror file given: symmetry filling uses the approximate mirror map (recorded in the set)")
    return MirrorMap.approximate()


def unrecorded_outputs(outputs, where):
    """``[(stage, path, status)]`` for each of ``outputs`` that a stage of the DVC project holding
    the path ``where`` declares, but whose present content DVC has not recorded (``dvc status``:
    "not in cache", "modified"), so that ``dvc repro`` would rebuild it. Empty outside a DVC
    project and under ``dvc repro`` itself, which records what its stages write."""
    if os.environ.get("DVC_STAGE"):
        return []
    try:
        from dvc.exceptions import DvcException
        from dvc.repo import Repo
    except ImportError:
        return []
    found = []
    try:
        with Repo(Repo.find_root(str(Path(where).resolve().parent))) as repo:
            for path in outputs:
                try:
                    outs = repo.find_outs_by_path(str(Path(path).resolve()))
                except DvcException:  # not an output of any stage
                    continue
                for out in outs:
                    found.extend((out.stage.addressing, name, status) for name, status in out.status().items())
    except DvcException as err:  # not a DVC project, or one DVC cannot read
        log.debug("no DVC record checked: %s", err)
    return found


def true_atlases(dataset, root):
    """The renderer's true atlas of every identity ({raw pid: atlas}): synthetic datasets only."""
    if dataset != "synth":
        raise InputError(f"--source truth needs the renderer's true atlases, which only the synthetic dataset has; "
                         f"{dataset} has none: use --source warp")
    from densepose_textures.synth import read_truth

    return read_truth(root)[0]


def load_texture_generator(source, path, keep_observed, device, default=""):
    """The SAN-PG generator of ``--generator`` (else ``default``, textures.generator) for ``--source sanpg``
    (None for other sources); :class:`InputError` when there is none there, or when --generator,
    --keep-observed or --device is given elsewhere (textures.generator and textures.keep_observed are
    simply not used by other sources)."""
    if source != "sanpg":
        given = [name for name, value in (("--generator", path), ("--keep-observed", keep_observed),
                                          ("--device", device)) if value]
        if given:
            names = " and ".join(given)
            raise InputError(f"{names} {'belongs' if len(given) == 1 else 'belong'} to --source sanpg, this run's "
                             f"source is {source}: add --source sanpg, or leave out {names}")
        return None
    path = path or default
    if not path:
        raise InputError("--source sanpg needs the generator: give its checkpoint with --generator PATH or "
                         "textures.generator in params.yaml (written by `sanreid train-pg`, or a SAN training "
                         "checkpoint such as data/models/<dataset>/san/last.pt)")
    from train.generator import load_generator

    return load_generator(path, device or "auto")


def refuse_unordered_sanpg(source, stage=None):
    """:class:`InputError` for sanpg targets built by the pipeline's `textures` stage, which does not depend on
    the generator (a DVC stage's dependencies are fixed): `dvc repro` could run it before `train-pg`, and would not
    rerun it when the generator changes. The `textures-sanpg` stage builds them (sanpg_textures)."""
    stage = os.environ.get("DVC_STAGE", "") if stage is None else stage
    if source == "sanpg" and stage.split("@")[0] == "textures":
        raise InputError("textures.source: sanpg is for `sanreid gen-textures` by hand: the pipeline's `textures` "
                         "stage does not depend on the generator. Keep textures.source warp (or truth) and train SAN "
                         "on sanpg targets with a variant of targets: sanpg, its sets listed in sanpg_textures "
                         "(README: SAN-PG in the pipeline)")


@contextlib.contextmanager
def parallel_backend(parallel, jobs, scheduler=None):
    """joblib runs in local processes, or on a Dask cluster (``scheduler`` address, else a local one)."""
    if parallel == "processes":
        yield
        return
    try:
        import joblib
        from distributed import Client, LocalCluster
    except ImportError as err:
        raise InputError(f"--parallel dask needs Dask distributed ({err}): pip install 'san-reid[cluster]'") from err
    with contextlib.ExitStack() as stack:
        if scheduler:
            client = stack.enter_context(Client(scheduler))
        else:
            cluster = stack.enter_context(LocalCluster(n_workers=jobs, threads_per_worker=1, dashboard_address=None))
            client = stack.enter_context(Client(cluster))
        log.info("running on Dask cluster %s", client.scheduler.address)
        stack.enter_context(joblib.parallel_config(backend="dask"))
        yield


@click.command("gen-textures")
@click.option("--dataset", required=True, help="Dataset name (see `sanreid datasets`); cuhk03 means labeled.")
@click.option("--variant", type=click.Choice(["labeled", "detected"]), default=None,
              help="cuhk03 only: which boxes (names the output cuhk03_<variant>) [default: labeled].")
@click.option("--root", type=click.Path(file_okay=False), default=None, help="Dataset root [default: data/raw/<dataset>].")
@click.option("--iuv", "iuv_store", type=click.Path(dir_okay=False), default=None,
              help="IUV store [default: data/iuv/<dataset>.h5].")
@click.option("--size", type=click.IntRange(min=2), default=None, help="Texels per part side P [textures.size].")
@click.option("--splat", type=click.Choice(["nearest", "bilinear"]), default=None, help="Pixel to texel rule [textures.splat].")
@click.option("--fill", type=click.Choice(["nearest", "pushpull", "telea"]), default=None,
              help="In-part fill of unseen texels [textures.fill].")
@click.option("--mirror/--no-mirror", default=None, help="Symmetry filling [textures.mirror].")
@click.option("--mirror-file", type=click.Path(dir_okay=False), default=None,
              help="DensePose UV_symmetry_transforms.mat [textures.mirror_file; empty: approximation, exact for synth].")
@click.option("--source", type=click.Choice(["warp", "truth", "sanpg"]), default=None,
              help="Targets from each image's IUV warp, the renderer's true atlases (synth only), or a SAN-PG "
                   "generator's prediction (with --generator) [textures.source].")
@click.option("--generator", type=click.Path(dir_okay=False), default=None,
              help="--source sanpg: the generator checkpoint (`sanreid train-pg`, or a SAN training checkpoint) "
                   "[textures.generator].")
@click.option("--keep-observed/--no-keep-observed", default=None,
              help="--source sanpg: keep the texels the image's IUV observed, predict only the others "
                   "[textures.keep_observed].")
@click.option("--device", default=None, help="--source sanpg: where the generator runs: auto, cpu, cuda, cuda:N "
                                             "[default: auto, the GPU when there is one].")
@click.option("--fuse", type=click.Choice(["none", "identity"]), default=None,
              help="identity: every training image gets its identity's fused atlas [textures.fuse].")
@click.option("--targets", type=click.Choice(list(TARGETS)), default=None,
              help="Shorthand for a SAN variant's targets: per-image (--source warp --fuse none), fused "
                   "(--source warp --fuse identity), truth (--source truth --fuse none) or sanpg (--source sanpg "
                   "--fuse none).")
@click.option("--jobs", type=click.IntRange(min=1), default=None, help="Parallel workers [textures.jobs].")
@click.option("--chunk-size", type=click.IntRange(min=1), default=None, help="Images per parallel task [textures.chunk_size].")
@click.option("--shard-size", type=click.IntRange(min=1), default=None, help="Images per shard file [textures.shard_size].")
@click.option("--parallel", type=click.Choice(["processes", "dask"]), default=None,
              help="joblib backend: local processes or Dask distributed [textures.parallel].")
@click.option("--scheduler", default=None, help="Dask scheduler address (default: a local cluster of --jobs workers).")
@click.option("--force", is_flag=True, help="Rebuild even if a set exists (one built with other settings is otherwise refused).")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Set directory [default: data/textures/<dataset>, -truth, -sanpg and/or -fused added for those "
                   "targets].")
@user_errors
def gen_textures(dataset, variant, root, iuv_store, size, splat, fill, mirror, mirror_file, source, generator,
                 keep_observed, device, fuse, targets, jobs, chunk_size, shard_size, parallel, scheduler, force, out):
    """Build the HDF5 texture set of one dataset: warp each image into the atlas, fill, write shards.

    Covers every image of the IUV store. --fuse identity gives every training image its identity's
    fused atlas; --source truth the renderer's true atlases (synthetic dataset only); --source sanpg
    a SAN-PG generator's prediction for each image (--generator). A finished set is reused when it matches the dataset and
    settings, and refused (naming the field that differs) when it does not; an interrupted build
    resumes from its finished shards.
    """
    from densepose_textures.textures import build_texture_set
    from pipeline import datasets

    if targets:
        if source or fuse:
            raise click.UsageError("--targets sets --source and --fuse: give one or the other")
        source, fuse = TARGETS[targets]
    params = with_options(params_from_context().textures, size=size, splat=splat, fill=fill, mirror=mirror,
                          mirror_file=mirror_file, source=source, fuse=fuse, jobs=jobs, chunk_size=chunk_size,
                          shard_size=shard_size, parallel=parallel)
    name = paths.canonical_name(dataset, variant)
    root = paths.raw_root(dataset) if root is None else Path(root)
    refuse_unordered_sanpg(params.source)
    truth = true_atlases(dataset, root) if params.source == "truth" else None
    texture_generator = load_texture_generator(params.source, generator, keep_observed, device, params.generator)
    if params.source != "sanpg":
        keep_observed = False  # textures.keep_observed belongs to sanpg targets
    elif keep_observed is None:
        keep_observed = params.keep_observed
    ds = datasets.load(dataset, root, **({"variant": variant} if variant else {}))
    labels = dataset_labels(ds)
    store = Path(iuv_store) if iuv_store else find_iuv_store(dataset, variant)
    out = Path(out) if out else paths.texture_set(name, params.source, params.fuse)
    with parallel_backend(params.parallel, params.jobs, scheduler):
        summary = build_texture_set(
            out, store_path=store, image_root=ds.root, dataset=name, labels=labels, size=params.size,
            splat=params.splat, fill=params.fill, mirror=mirror_map(params, dataset, ds.root),
            source=params.source, fuse=params.fuse, fused_keys=[key for key, _, _ in ds.split("train")],
            truth=truth, generator=texture_generator, keep_observed=bool(keep_observed),
            shard_size=params.shard_size, chunk_size=params.chunk_size, jobs=params.jobs, force=force,
            software_version=__version__)
    if summary.reused:
        click.echo(f"reused {summary.path}: {summary.records} images, it matches the dataset and settings")
    else:
        click.echo(f"wrote {summary.path}: {summary.records} images, {summary.found} with a person "
                   f"({summary.resumed} resumed; {summary.images_per_second:.0f} images/s)")
    unrecorded = unrecorded_outputs([store, out], where=out)
    if unrecorded:
        stages = " ".join(dict.fromkeys(stage for stage, _, _ in unrecorded))
        listed = " and ".join(f"{path} ({status})" for _, path, status in unrecorded)
        them = "them" if len(unrecorded) > 1 else "it"
        click.echo(f"note: DVC has not recorded {listed}: `dvc repro` would rebuild {them}. To keep {them} as "
                   f"the stages' results: `dvc commit -f {stages}` (README: Sharing a set)")


@click.group("textures")
def textures():
    """Inspect, draw and measure texture sets; import released ones."""


def dataset_labels(ds):
    """{key: (pid, camid)} of every image the dataset reader lists (train, query, gallery), in that order."""
    labels = {}
    for split in ("train", "query", "gallery"):
        for key, pid, camid in ds.split(split):
            labels.setdefault(key, (pid, camid))
    return labels


@textures.command("import")
@click.option("--dataset", required=True, help="Dataset name (see `sanreid datasets`); cuhk03 means labeled.")
@click.option("--folder", required=True, type=click.Path(file_okay=False),
              help="Folder of released texture images, one per reID image, named as the image (any image extension).")
@click.option("--variant", type=click.Choice(["labeled", "detected"]), default=None,
              help="cuhk03 only: which boxes (names the output cuhk03_<variant>) [default: labeled].")
@click.option("--root", type=click.Path(file_okay=False), default=None, help="Dataset root [default: data/raw/<dataset>].")
@click.option("--jobs", type=click.IntRange(min=1), default=None, help="Decoding threads [textures.jobs].")
@click.option("--shard-size", type=click.IntRange(min=1), default=None, help="Images per shard file [textures.shard_size].")
@click.option("--force", is_flag=True, help="Rebuild even if a set exists (one built from other files is otherwise refused).")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Set directory [default: data/textures/<name>-import].")
@user_errors
def import_textures(dataset, folder, variant, root, jobs, shard_size, force, out):
    """Import a released texture folder (e.g. SAN's pseudo full textures of CUHK03-labeled) as a texture set.

    Every image of the dataset (all splits) needs the texture file of the same name (file name without
    extension, anywhere under --folder); the images without one are named before anything is written.
    Textures are stored at their own size and layout (one size for the folder), every texel with
    provenance 'imported'; training on the set turns horizontal flipping off (no mirror map is known).
    Reused when the dataset and files match, refused naming the differing field otherwise (--force rebuilds).
    """
    from densepose_textures.imported import SOURCE, import_texture_set
    from pipeline import datasets

    params = with_options(params_from_context().textures, jobs=jobs, shard_size=shard_size)
    name = paths.canonical_name(dataset, variant)
    root = paths.raw_root(dataset) if root is None else Path(root)
    ds = datasets.load(dataset, root, **({"variant": variant} if variant else {}))
    out = Path(out) if out else paths.texture_set(name, SOURCE)
    summary = import_texture_set(out, folder=folder, dataset=name, labels=dataset_labels(ds),
                                 shard_size=params.shard_size, jobs=params.jobs, force=force,
                                 software_version=__version__)
    if summary.reused:
        click.echo(f"reused {summary.path}: {summary.records} images, it matches the dataset and the texture folder")
    else:
        click.echo(f"wrote {summary.path}: {summary.records} imported textures ({summary.resumed} resumed)")


@textures.command("info")
@click.argument("path", type=click.Path(file_okay=False))
@user_errors
def info(path):
    """Print a set's attributes and statistics (coverage, provenance shares)."""
    from densepose_textures.quality import set_statistics
    from densepose_textures.shards import TextureSet

    ts = TextureSet(path)
    shape = f"P={ts.size}" if ts.layout == "atlas" else "{}x{} images of a foreign layout".format(*ts.target_shape)
    click.echo(f"{ts.path}: {len(ts)} images, {shape}, {len(ts.shard_files)} shard(s)")
    for name, value in ts.attrs.items():
        click.echo(f"  {name}: {value}")
    stats = set_statistics(ts)
    click.echo(f"images with a person: {stats['found']} of {len(ts)}")
    click.echo(f"observed texels per person image: mean {stats['coverage_mean']:.1%}, "
               f"min {stats['coverage_min']:.1%}, max {stats['coverage_max']:.1%}")
    click.echo("texels by fill step (images with a person):")
    for label, share in stats["shares"].items():
        click.echo(f"  {label:<14} {share:7.2%}")


@textures.command("show")
@click.argument("path", type=click.Path(file_okay=False))
@click.option("--n", "count", type=click.IntRange(min=1), default=16, show_default=True, help="Images to draw.")
@click.option("--root", type=click.Path(file_okay=False), default=None,
              help="Dataset root holding the images [default: data/raw/<the set's dataset>].")
@click.option("--seed", type=int, default=0, show_default=True, help="Which images (random, among those with a person).")
@click.option("--out", type=click.Path(dir_okay=False), default="textures.png", show_default=True, help="PNG to write.")
@user_errors
def show(path, count, root, seed, out):
    """Draw images beside their atlases: image, observed texels, filled atlas, fill steps."""
    from densepose_textures.imageio import write_rgb
    from densepose_textures.pictures import texture_grid
    from densepose_textures.shards import TextureSet

    ts = TextureSet(path)
    root = Path(root) if root else paths.raw_root(ts.attrs.get("dataset", ""))
    grid = texture_grid(ts, root, count=count, seed=seed)
    write_rgb(out, grid)
    click.echo(f"wrote {out} ({grid.shape[1]}x{grid.shape[0]})")


@textures.command("atlas")
@click.argument("path", type=click.Path(file_okay=False))
@click.option("--key", required=True, help="Relative image path of the record.")
@click.option("--what", type=click.Choice(["texture", "observed", "provenance"]), default="texture", show_default=True,
              help="The filled texture, only the observed texels, or the fill steps in colour.")
@click.option("--scale", type=click.IntRange(min=1), default=1, show_default=True, help="Enlarge by this factor (nearest).")
@click.option("--out", type=click.Path(dir_okay=False), default="atlas.png", show_default=True, help="PNG to write.")
@user_errors
def atlas(path, key, what, scale, out):
    """Write one texture in DensePose's atlas layout (6P x 4P; `apply_net.py show --texture_atlas`).

    The fill steps (--what provenance) come with a legend of their colours below the atlas."""
    from densepose_textures.imageio import write_rgb
    from densepose_textures.pictures import record_atlas_image, with_legend
    from densepose_textures.shards import TextureSet

    ts = TextureSet(path)
    image = record_atlas_image(ts.get(key), what)
    if scale > 1:
        image = image.repeat(scale, axis=0).repeat(scale, axis=1)
    if what == "provenance":
        image = with_legend(image)
    write_rgb(out, image)
    enlarged = f", enlarged {scale}x" if scale > 1 else ""
    shape = f"P={ts.size}" if ts.layout == "atlas" else "an imported image"
    click.echo(f"wrote {out} ({image.shape[1]}x{image.shape[0]}: {what} of {key}, {shape}{enlarged})")


@textures.command("quality")
@click.argument("paths", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--truth", required=True, type=click.Path(),
              help="Ground truth: a synthetic dataset's textures.h5 (or its folder).")
@click.option("--methods", default=None,
              help="Comma-separated fill methods to re-run on the observed texels of a per-image set "
                   "(nearest,pushpull,telea or all) [default: only the set's own fill].")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Measure only the first N images with a person.")
@click.option("--steps-of", type=click.Path(file_okay=False), default=None,
              help="A per-image set of the same images: charge every set's texels to the fill step that set them "
                   "there (e.g. to see where a generator beats the fill) [default: each set's own steps].")
@user_errors
def quality(paths, truth, methods, limit, steps_of):
    """Error against the true textures of one or more sets (per-image, fused, truth): by region
    (texels the image shows, those it does not, all), then by fill step (share, MAE, PSNR)."""
    from densepose_textures.fill import FILL_METHODS
    from densepose_textures.quality import format_regions_table, format_table, measure_quality
    from densepose_textures.shards import TextureSet
    from densepose_textures.synth import read_truth

    sets = [TextureSet(path) for path in paths]
    chosen = None
    if methods:
        chosen = list(FILL_METHODS) if methods == "all" else [m.strip() for m in methods.split(",") if m.strip()]
        unknown = [m for m in chosen if m not in FILL_METHODS]
        if unknown:
            raise InputError(f"unknown fill method(s) {', '.join(unknown)}; choose from {', '.join(FILL_METHODS)} or all")
    truth_textures, _ = read_truth(truth)
    steps_set = TextureSet(steps_of) if steps_of else None
    results = {}
    for ts in sets:
        for label, result in measure_quality(ts, truth_textures, methods=chosen, limit=limit,
                                             steps_of=steps_set).items():
            results[f"{ts.path.name}: {label}" if len(sets) > 1 else label] = result
    click.echo(format_regions_table(results))
    click.echo()
    if steps_set is not None:
        click.echo(f"by the fill steps of {steps_set.path}:")
    click.echo(format_table(results))


def column_labels(texture_sets):
    """Each set's targets in a few words (:func:`~densepose_textures.quality.describe_targets`), its folder
    name added where two sets would read the same."""
    from densepose_textures.quality import describe_targets

    labels = [describe_targets(ts.attrs) for ts in texture_sets]
    return [f"{label} ({ts.path.name})" if labels.count(label) > 1 else label
            for label, ts in zip(labels, texture_sets)]


@textures.command("compare")
@click.argument("set_paths", metavar="SET [SET ...]", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--truth", required=True, type=click.Path(),
              help="Ground truth: a synthetic dataset's textures.h5 (or its folder).")
@click.option("--root", type=click.Path(file_okay=False), default=None,
              help="Dataset root holding the images [default: data/raw/<the sets' dataset>].")
@click.option("--n", "count", type=click.IntRange(min=1), default=6, show_default=True, help="Images (rows) to draw.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Which images (random, among those with a person in every set).")
@click.option("--keys", default=None, help="Comma-separated image keys to draw instead of a random choice.")
@click.option("--height", type=click.IntRange(min=8), default=192, show_default=True, help="Row height in pixels.")
@click.option("--out", type=click.Path(dir_okay=False), default="compare.png", show_default=True, help="PNG to write.")
@user_errors
def compare(set_paths, truth, root, count, seed, keys, height, out):
    """Draw texture sources side by side (synthetic data): per row an image, each set's atlas of it, and the
    true atlas of its identity at the sets' P; a header names the columns."""
    from densepose_textures.imageio import write_rgb
    from densepose_textures.pictures import comparable_sets, compare_keys, compare_picture
    from densepose_textures.shards import TextureSet
    from densepose_textures.synth import read_truth

    sets = [TextureSet(path) for path in set_paths]
    comparable_sets(sets)
    truth_textures, _ = read_truth(truth)
    if keys is not None:
        keys = [key.strip() for key in keys.split(",") if key.strip()]
        if not keys:
            raise InputError("--keys names no image: give comma-separated image keys, the images' paths under "
                             "the dataset root")
    chosen = compare_keys(sets, truth_textures, count=count, seed=seed, keys=keys)
    root = Path(root) if root else paths.raw_root(sets[0].attrs.get("dataset", ""))
    if not root.is_dir():
        raise InputError(f"dataset root {root} not found: give the folder holding the images with --root")
    picture = compare_picture(sets, column_labels(sets), truth_textures, root, chosen, height=height)
    write_rgb(out, picture)
    click.echo(f"wrote {out} ({picture.shape[1]}x{picture.shape[0]}: {len(chosen)} images x "
               f"{len(sets) + 2} columns): {', '.join(chosen)}")
