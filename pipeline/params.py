"""Every setting of every stage, as small typed dataclasses.

Defaults are the CPU profile, so every command works from an empty directory.
A ``params.yaml`` in the working directory (or ``--params FILE``) overrides them;
command options override both (:func:`override`). The ``train``, ``eval`` and ``train_pg`` sections are
:mod:`train.settings`' classes, whose defaults the library uses too.
"""

from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
import typing

import yaml

from densepose_textures.errors import InputError
from train.settings import EvalParams, PGParams, TrainParams

from .paths import PAIRS

PARAMS_FILE = "params.yaml"


@dataclass
class SynthParams:
    ids: int = 100  # identities in all: training, then test
    test_ids: int = 0  # how many of them are test identities (0: half); more gives steadier test figures
    images_per_id: int = 10
    cameras: int = 4
    seed: int = 0
    image_size: tuple[int, int] = (128, 64)  # (H, W)
    texture_size: int = 64  # P of the ground-truth atlas
    jobs: int = 2


@dataclass
class PairsParams:
    """Image/true-atlas pairs for the texture generator (``sanreid synth --pairs``), one identity per image."""

    ids: int = 400  # pairs (each its own identity)
    seed: int = 1  # not synth.seed; pair identities have their own seed namespace whatever the seeds
    image_size: tuple[int, int] = (128, 64)  # (H, W)
    texture_size: int = 64  # P of the true atlases (resampled to the generator's P when it trains)
    jobs: int = 2


@dataclass
class IUVParams:
    backend: str = "synth"  # synth | densepose | dump
    mode: str = "box"  # box | detect (densepose backend)
    config: str = ""  # DensePose config file (densepose backend)
    weights: str = ""  # DensePose weights file (densepose backend)
    dump: str = ""  # apply_net.py dump file (dump backend)
    splits: str = "train"  # train | all
    size: tuple[int, int] = (256, 128)  # canonical (H, W) of stored IUV
    batch_size: int = 16
    input_size: tuple[int, int] = (512, 256)  # crops are resized to this before DensePose (box mode)
    chunk_size: int = 256  # images per committed chunk
    device: str = "auto"  # auto | cpu | cuda
    workers: int = 2  # threads decoding images ahead of the backend


@dataclass
class TextureParams:
    size: int = 32  # P
    splat: str = "nearest"  # nearest | bilinear
    fill: str = "nearest"  # in-part fill method
    mirror: bool = True  # symmetry filling
    mirror_file: str = ""  # DensePose UV_symmetry_transforms.mat; empty: the approximation
    source: str = "warp"  # warp (each image's texels) | truth (the renderer's true atlases, synth only) | sanpg
    fuse: str = "none"  # none | identity (one fused atlas per training identity)
    generator: str = ""  # sanpg: the generator checkpoint (`sanreid train-pg`'s last.pt); empty: none
    keep_observed: bool = False  # sanpg: keep the texels the image's IUV observed, predict only the others
    shard_size: int = 1024  # images per shard
    chunk_size: int = 64  # images per parallel task
    jobs: int = 2
    parallel: str = "processes"  # processes | dask


@dataclass
class Experiment:
    """One training dataset (the key in ``experiments``) and the datasets it is tested on."""

    test: list[str] = field(default_factory=lambda: ["synth"])


# A SAN variant's texture targets: the (textures.source, textures.fuse) of the set it trains on.
TARGETS = {"per-image": ("warp", "none"), "fused": ("warp", "identity"), "truth": ("truth", "none"),
           "sanpg": ("sanpg", "none")}
# The targets the `textures-extra` stage builds (extra_targets); sanpg sets depend on the generator, so their
# own stage, `textures-sanpg`, builds them (sanpg_textures).
EXTRA_TARGETS = ("per-image", "fused", "truth")


@dataclass
class Variant:
    """A SAN variant trained beside the baseline (its name, the key in ``variants``, names the model's
    folder): its texture targets (``per-image``: the texture set as ``textures`` builds it; ``fused``:
    fused per identity; ``truth``: the renderer's true atlases, synthetic sets only; ``sanpg``: the SAN-PG
    generator ``textures.generator``'s prediction) and the train settings it changes."""

    targets: str = "per-image"
    set: list[str] = field(default_factory=list)  # train overrides, e.g. ["loss.tr_weight=0"]


@dataclass
class Params:
    synth: SynthParams = field(default_factory=SynthParams)
    pairs: PairsParams = field(default_factory=PairsParams)
    iuv: IUVParams = field(default_factory=IUVParams)
    textures: TextureParams = field(default_factory=TextureParams)
    train: TrainParams = field(default_factory=TrainParams)
    eval: EvalParams = field(default_factory=EvalParams)
    train_pg: PGParams = field(default_factory=PGParams)
    seeds: list[int] = field(default_factory=lambda: [0])
    experiments: dict[str, Experiment] = field(default_factory=lambda: {"synth": Experiment()})
    variants: dict[str, Variant] = field(default_factory=lambda: {"san": Variant()})
    extra_targets: list[str] = field(default_factory=list)  # texture sets built beside the per-image one
    # SAN-PG in the pipeline; DVC makes a stage per item and none for an empty list (the CPU profile):
    pair_sets: list[str] = field(default_factory=list)  # pairs@<name>: data/raw/<name> (synth-pairs) rendered
    generators: list[int] = field(default_factory=list)  # train-pg@<S>: data/models/sanpg/seed<S>/last.pt
    sanpg_textures: list[str] = field(default_factory=list)  # textures-sanpg@<set>: data/textures/<set>-sanpg

    def __post_init__(self):
        check(self)

    def variant(self, name):
        """The SAN variant called ``name``; InputError naming the known ones otherwise."""
        if name not in self.variants or name == "baseline":
            raise InputError(f"unknown variant {name!r}; the parameters name: {', '.join(self.variant_names())}")
        variant = self.variants[name]
        if variant.targets not in TARGETS:
            raise InputError(f"variants.{name}.targets: {variant.targets!r} is not one of {', '.join(TARGETS)}")
        return variant

    def variant_names(self):
        """The baseline, then every SAN variant: the report's order."""
        return ["baseline"] + list(self.variants)


def check(params):
    """Refuse settings the pipeline cannot run with, naming the setting (:class:`InputError`)."""
    for name, variant in params.variants.items():
        if variant.targets not in TARGETS:
            raise InputError(f"variants.{name}.targets: {variant.targets!r} is not one of {', '.join(TARGETS)}")
    for target in params.extra_targets:
        if target == "sanpg":
            raise InputError("extra_targets: sanpg sets depend on the generator and have their own stage: list the "
                             "training sets that need them in sanpg_textures (e.g. sanpg_textures: [synth])")
        if target not in EXTRA_TARGETS:
            raise InputError(f"extra_targets: {target!r} is not one of {', '.join(EXTRA_TARGETS)}")
    for name in params.pair_sets:
        if not name or "/" in name or name in ("synth", *params.experiments):
            raise InputError(f"pair_sets: {name!r} is not a folder name of its own under data/raw "
                             f"(the generator's pairs: {PAIRS})")
    for seed in params.generators:
        if seed < 0:
            raise InputError(f"generators: {seed} is not a seed (0 or more)")
    for name in params.sanpg_textures:
        if name not in params.experiments:
            raise InputError(f"sanpg_textures: {name!r} is not a training set of experiments "
                             f"({', '.join(params.experiments)}): only those have an IUV store")
    sanpg = [name for name, v in params.variants.items() if v.targets == "sanpg"]
    for name in sanpg:
        missing = [train for train in params.experiments if train not in params.sanpg_textures]
        if missing:
            raise InputError(f"variants.{name}.targets: sanpg needs the sanpg texture set of every training set: "
                             f"add {', '.join(missing)} to sanpg_textures")
    if (params.sanpg_textures or params.textures.source == "sanpg") and not params.textures.generator:
        why = "sanpg_textures" if params.sanpg_textures else "textures.source: sanpg"
        raise InputError(f"{why} needs the generator: set textures.generator to its checkpoint (`sanreid train-pg` "
                         "writes data/models/sanpg/seed<S>/last.pt; list S in generators to train it in the pipeline)")


def _coerce(value, hint, where):
    """Check and convert a YAML value to the dataclass field type ``hint``."""
    origin = typing.get_origin(hint)
    if is_dataclass(hint):
        if not isinstance(value, dict):
            raise InputError(f"{where}: expected a mapping, got {value!r}")
        return _from_dict(hint, value, where)
    if origin is dict:
        if not isinstance(value, dict):
            raise InputError(f"{where}: expected a mapping, got {value!r}")
        _, item = typing.get_args(hint)
        return {str(k): _coerce(v if v is not None else {}, item, f"{where}.{k}") for k, v in value.items()}
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise InputError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(hint)
        if origin is tuple:
            if len(value) != len(args):
                raise InputError(f"{where}: expected {len(args)} values, got {value!r}")
            return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        return [_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is str and value is None:
        return ""
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise InputError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value


def _from_dict(cls, data, where):
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise InputError(f"{where}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    return cls(**{k: _coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in data.items()})


def load_params(path=None):
    """Defaults, overridden by ``path`` or, when ``path`` is None, by ./params.yaml if it exists."""
    if path is None:
        path = Path(PARAMS_FILE)
        if not path.is_file():
            return Params()
    path = Path(path)
    if not path.is_file():
        raise InputError(f"parameter file {path} not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise InputError(f"{path} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping of sections at the top level")
    return _from_dict(Params, data, "")


def override(obj, assignments):
    """A copy of dataclass ``obj`` with ``"a.b=value"`` assignments applied (values parsed as YAML)."""
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        if not sep:
            raise InputError(f"--set expects key=value, got {assignment!r}")
        obj = _set(obj, key.strip().split("."), yaml.safe_load(text) if text.strip() else "", key)
    return obj


def _set(obj, keys, value, full_key):
    hints = typing.get_type_hints(type(obj))
    if keys[0] not in hints:
        raise InputError(f"unknown setting {full_key!r}; known here: {', '.join(sorted(hints))}")
    if len(keys) == 1:
        return replace(obj, **{keys[0]: _coerce(value, hints[keys[0]], full_key)})
    return replace(obj, **{keys[0]: _set(getattr(obj, keys[0]), keys[1:], value, full_key)})


def with_options(obj, **options):
    """A copy of dataclass ``obj`` with the command options that were given (not None)."""
    given = {k: v for k, v in options.items() if v is not None}
    return replace(obj, **given) if given else obj
