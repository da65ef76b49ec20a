"""Settings of training and evaluation as small typed dataclasses: the one home of their defaults.

Defaults are the CPU profile (``params.yaml`` repeats them). The library takes its defaults from
here too (:class:`train.model.SAN`, the encoder and backbones, :func:`train.run.train_model`,
:func:`train.evaluation.report.evaluate_features`), so calling it directly builds what the CLI
builds. ``pipeline.params`` loads the ``train`` and ``eval`` sections into these classes.
Torch-free: ``sanreid --help`` reads it without importing torch.
"""

from dataclasses import dataclass, field


@dataclass
class ModelParams:
    backbone: str = "resnet18"  # resnet18 | resnet50
    head: str = "embedding"  # embedding (SAN: Linear-BN-ReLU 512-d) | bnneck
    embed_dim: int = 512
    last_stride: int = 2  # CPU profile; the paper uses 1 (a 2x larger layer4 map)
    pretrained: str = ""  # path to ImageNet weights in torchvision's key names
    decoder_init: str = "official"  # official (Xavier, gain 0.02) | standard (PyTorch's default init)
    decoder_width: float = 0.5  # multiplies the decoder's channel counts (1: the official decoder; the paper profile)


@dataclass
class DataParams:
    height: int = 128
    width: int = 64
    ids_per_batch: int = 8  # P
    images_per_id: int = 4  # K
    workers: int = 2
    flip: bool = True
    resize_crop: float = 1.125  # random resize-crop factor
    resize_crop_prob: float = 0.5  # share of images resize-cropped (the others are only resized), as torchreid
    erasing: float = 0.5  # random erasing probability
    loader: str = "worker"  # worker (DataLoader processes) | device (set held on the training device) | auto
    device_budget_gb: float = 2.0  # most memory the device path may hold; auto takes it when the set fits


@dataclass
class OptimParams:
    profile: str = "joint"  # joint (one optimiser, weighted loss sum; CPU profile) | faithful (the paper's optimisers)
    lr: float = 8e-4
    weight_decay: float = 5e-4
    amsgrad: bool = True
    step_size: int = 15  # epochs between lr halvings (the paper: 40)
    gamma: float = 0.5
    warmup_epochs: int = 1
    warmup_lr: float = 8e-6
    warmup_factor: float = 1.259  # per-epoch multiplier during warm-up
    texture_lr: float = 1e-5
    texture_betas: tuple[float, float] = (0.5, 0.999)


@dataclass
class LossParams:
    label_smoothing: float = 0.1
    triplet_margin: float = 0.3
    texture_weight: float = 1.0
    tr_weight: float = 1.0  # Triplet ReID constraints on decoder maps
    tr_margin: float = 0.3
    tr_distance: str = "normalized"  # normalized (L2-normalised maps) | mse (official)
    provenance_weights: list[float] = field(default_factory=list)  # per fill step 0..4; empty: uniform


@dataclass
class BalanceParams:
    """How much the decoder's losses move the encoder (:mod:`train.balance`)."""

    decoder_share: float = 0.3  # target share of texture + tr in the backbone's gradient; 0: gain 1 (official)
    every: int = 20  # steps between gradient measurements (0: never measured, the gain stays as it is)
    rate: float = 0.5  # how far each measurement moves the gain toward the target (in log space)


@dataclass
class TrainParams:
    """The ``train`` section: one run of :func:`train.run.train_model` (``--set key=value`` overrides a field)."""

    model: ModelParams = field(default_factory=ModelParams)
    data: DataParams = field(default_factory=DataParams)
    optim: OptimParams = field(default_factory=OptimParams)
    loss: LossParams = field(default_factory=LossParams)
    balance: BalanceParams = field(default_factory=BalanceParams)
    epochs: int = 20  # main epochs, after warm-up
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: str = "none"  # none | bf16 | fp16
    channels_last: bool = False
    compile: bool = False
    checkpoint_every: int = 5
    eval_every: int = 0  # test-split Rank-1/mAP (monitoring only) every N epochs; 0: at the end; -1: never
    picture_every: int = 10


@dataclass
class EvalParams:
    metric: str = "euclidean"  # euclidean | cosine
    normalize: bool = True
    flip: bool = True  # mean of image and mirrored-image features
    rerank: bool = True
    k1: int = 20
    k2: int = 6
    lambda_value: float = 0.3
    max_rank: int = 50
    hardest: int = 8  # rank-list pictures for the N hardest queries
    batch_size: int = 128
    workers: int = 2  # image-loading processes during feature extraction
    device: str = "auto"  # auto | cpu | cuda | cuda:N


@dataclass
class PGDataParams:
    """The pairs a generator trains on (``sanreid synth --pairs``) and how they are augmented."""

    height: int = 128
    width: int = 64
    batch_size: int = 16
    workers: int = 2
    flip: bool = True  # the mirrored image trains on the mirrored atlas (the body's exact mirror map)
    resize_crop: float = 1.125
    resize_crop_prob: float = 0.5
    holdout: float = 0.1  # share of the pairs (the last ones) held out: the reconstruction loss on unseen people


@dataclass
class PGOptimParams:
    lr: float = 1e-3
    weight_decay: float = 0.0
    amsgrad: bool = False
    step_size: int = 20  # epochs between lr halvings
    gamma: float = 0.5
    warmup_epochs: int = 0
    warmup_lr: float = 1e-5
    warmup_factor: float = 1.259


@dataclass
class PGParams:
    """The ``train_pg`` section: SAN-PG, the texture generator (:func:`train.pg.train_generator`)."""

    model: ModelParams = field(default_factory=ModelParams)
    data: PGDataParams = field(default_factory=PGDataParams)
    optim: PGOptimParams = field(default_factory=PGOptimParams)
    texture_size: int = 0  # P of the predicted atlas; 0: textures.size (the P of the sets the generator makes)
    warp_input: bool = False  # also read the image's warp + fill (textures.splat, textures.fill) and correct it
    epochs: int = 10  # main epochs, after warm-up
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: str = "none"  # none | bf16 | fp16
    channels_last: bool = False
    checkpoint_every: int = 1
    eval_every: int = 1  # held-out loss every N epochs; 0: after the last only; -1: never
    picture_every: int = 5
