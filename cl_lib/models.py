r"""Encoders and projection heads for contrastive learning.

A contrastive model is two networks in a row (SimCLR, Chen et al., 2020, Sec. 2.1):

$$x \xrightarrow{\;f\;} h = f(x) \in \mathbb{R}^{F} \xrightarrow{\;g\;} z = g(h) \in
\mathbb{R}^{d},$$

the *backbone* $f$ (a ResNet or a small convnet) and the *projector* $g$ (an MLP). The
loss acts on $z$; downstream evaluation (kNN, linear probe) uses $h$, which transfers
better (SimCLR, Sec. 4.2). :class:`ContrastiveModel` keeps the split explicit:
``model(x)`` gives $z$, ``model.features(x)`` gives $h$.

Backbones (:func:`build_backbone`):

- ``small_cnn``: four conv-BN-ReLU blocks; the quick profile's encoder (trains on CPU in
  seconds).
- ``small_resnet``: ten convolutions in three residual stages at about the arithmetic
  of ``small_cnn`` at twice its width: depth, not width, for the CPU tiers.
- ``cifar_resnet18`` / ``cifar_resnet50``: ResNets (He et al., 2016) for 32x32 images
  with the CIFAR stem used by SimCLR's CIFAR experiments (Appendix B.9): a 3x3 stride-1
  first convolution and no max-pool, so the last stage still sees 4x4 feature maps.
- ``imagenet_resnet18`` / ``imagenet_resnet50``: torchvision's standard ResNets (7x7
  stride-2 stem + max-pool), randomly initialised (``weights=None``), for 96px (STL-10)
  and ImageNet.
- ``resnet18`` / ``resnet50``: pick the CIFAR stem below 96 pixels, the standard one
  from 96 up.
"""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = [
    "SmallConvNet",
    "SmallResNet",
    "MLPProjector",
    "ContrastiveModel",
    "build_backbone",
    "build_model",
    "ARCHS",
]

ARCHS = (
    "small_cnn",
    "small_resnet",
    "resnet18",
    "resnet50",
    "cifar_resnet18",
    "cifar_resnet50",
    "imagenet_resnet18",
    "imagenet_resnet50",
)


class SmallConvNet(nn.Module):
    """Four 3x3 conv-BN-ReLU blocks (widths w, 2w, 4w, 8w; the last three downsample by
    2) followed by global average pooling, so ``feature_dim = 8 * width``. About 0.4 M
    parameters for ``width=32``; it is what the quick profile trains on a CPU."""

    def __init__(self, in_channels: int = 3, width: int = 32):
        super().__init__()
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        widths = [width, 2 * width, 4 * width, 8 * width]
        layers, c_in = [], in_channels
        for i, c_out in enumerate(widths):
            layers += [
                nn.Conv2d(
                    c_in, c_out, 3, stride=1 if i == 0 else 2, padding=1, bias=False
                ),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]
            c_in = c_out
        self.net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.feature_dim = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _conv_bn(c_in: int, c_out: int, stride: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
    ]


class _Residual(nn.Module):
    """``relu(x + bn(conv(relu(bn(conv(x))))))``: a ResNet basic block, one width."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            *_conv_bn(channels, channels),
            nn.ReLU(inplace=True),
            *_conv_bn(channels, channels),
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(x + self.body(x))


class SmallResNet(nn.Module):
    """A 3x3 conv-BN-ReLU stem of width w at full resolution, then three stages (widths
    2w, 4w, 8w), each a stride-2 conv-BN-ReLU followed by one residual basic block;
    global average pooling, so ``feature_dim = 8 * width``. Ten convolutions: at
    ``width=16`` about 0.5 M parameters and 18 M multiply-adds per 32x32 image, close to
    :class:`SmallConvNet` at width 32 (0.4 M, 15 M) with two and a half times its
    depth."""

    def __init__(self, in_channels: int = 3, width: int = 16):
        super().__init__()
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        layers = [*_conv_bn(in_channels, width), nn.ReLU(inplace=True)]
        c_in = width
        for c_out in (2 * width, 4 * width, 8 * width):
            layers += [*_conv_bn(c_in, c_out, stride=2), nn.ReLU(inplace=True)]
            layers.append(_Residual(c_out))
            c_in = c_out
        self.net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.feature_dim = 8 * width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _torchvision_resnet(
    depth: int, cifar_stem: bool, in_channels: int = 3
) -> nn.Module:
    """torchvision ResNet-{18,50} (random init) with the classifier removed (``fc`` =
    identity). With ``cifar_stem`` the 7x7/2 conv + max-pool stem becomes a single 3x3/1
    conv."""
    import torchvision

    net = {18: torchvision.models.resnet18, 50: torchvision.models.resnet50}[depth](
        weights=None
    )
    if cifar_stem:
        net.conv1 = nn.Conv2d(
            in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False
        )
        net.maxpool = nn.Identity()
    elif in_channels != 3:
        net.conv1 = nn.Conv2d(
            in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False
        )
    net.feature_dim = net.fc.in_features  # 512 for ResNet-18, 2048 for ResNet-50
    net.fc = nn.Identity()
    return net


def build_backbone(
    arch: str, image_size: int = 32, in_channels: int = 3, width: int = 32
) -> nn.Module:
    """Build a backbone by name (see the module docstring); it has a ``feature_dim``
    attribute.

    ``image_size`` only matters for ``resnet18``/``resnet50`` (CIFAR stem below 96 px);
    ``width`` only for ``small_cnn`` and ``small_resnet``.

    Args:
        arch: a name of :data:`ARCHS`; image_size: input side; in_channels: C; width:
        the ``small_cnn`` / ``small_resnet`` width.

    Returns:
        A module mapping (B, C, H, W) images to (B, feature_dim) features.
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose one of {ARCHS}")
    if image_size < 1:
        raise ValueError(f"image_size must be >= 1, got {image_size}")
    if arch == "small_cnn":
        return SmallConvNet(in_channels=in_channels, width=width)
    if arch == "small_resnet":
        return SmallResNet(in_channels=in_channels, width=width)
    depth = 18 if arch.endswith("18") else 50
    if arch.startswith("cifar_"):
        cifar_stem = True
    elif arch.startswith("imagenet_"):
        cifar_stem = False
    else:
        cifar_stem = image_size < 96
    return _torchvision_resnet(depth, cifar_stem, in_channels)


class MLPProjector(nn.Module):
    r"""Projection head $g$: ``num_layers`` linear layers, with BatchNorm + ReLU between
    them (SimCLR v1 used Linear-ReLU-Linear; BN in the hidden layers is the SimCLR v2 /
    solo-learn choice and trains more stably). ``num_layers=1`` is a linear projector;
    ``num_layers=0`` is the identity (the loss then acts on the backbone features)."""

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int,
        out_dim: int,
        num_layers: int = 2,
        batch_norm: bool = True,
    ):
        super().__init__()
        if num_layers < 0:
            raise ValueError(f"num_layers must be >= 0, got {num_layers}")
        if min(in_dim, hidden_dim, out_dim) < 1:
            raise ValueError(
                "dimensions must be >= 1, "
                f"got in={in_dim}, hidden={hidden_dim}, out={out_dim}"
            )
        if num_layers == 0:
            self.net, self.out_dim = nn.Identity(), in_dim
            return
        layers, d = [], in_dim
        for _ in range(num_layers - 1):
            layers += [nn.Linear(d, hidden_dim, bias=not batch_norm)]
            layers += [nn.BatchNorm1d(hidden_dim)] if batch_norm else []
            layers += [nn.ReLU(inplace=True)]
            d = hidden_dim
        layers.append(nn.Linear(d, out_dim))
        self.net, self.out_dim = nn.Sequential(*layers), out_dim

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


class ContrastiveModel(nn.Module):
    """Backbone $f$ + projector $g$: ``forward(x) = g(f(x))`` (what the loss sees),
    ``features(x) = f(x)`` (what evaluation uses)."""

    def __init__(self, backbone: nn.Module, projector: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.projector = projector
        self.feature_dim = getattr(backbone, "feature_dim", None)
        self.out_dim = getattr(projector, "out_dim", None)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward(self, x: torch.Tensor, return_features: bool = False):
        h = self.backbone(x)
        z = self.projector(h)
        return (z, h) if return_features else z


def build_model(
    arch: str = "resnet18",
    proj_dim: int = 128,
    proj_hidden_dim: int | None = None,
    proj_layers: int = 2,
    image_size: int = 32,
    in_channels: int = 3,
    width: int = 32,
    proj_batch_norm: bool = True,
) -> ContrastiveModel:
    """Backbone by name + MLP projector (hidden width defaults to the feature width, as
    in SimCLR).

    >>> m = build_model("small_cnn", proj_dim=16, width=8)
    >>> m(torch.zeros(2, 3, 32, 32)).shape, m.features(torch.zeros(2, 3, 32, 32)).shape
    (torch.Size([2, 16]), torch.Size([2, 64]))

    Args:
        arch, image_size, in_channels, width: the backbone (:func:`build_backbone`).
        proj_dim: output width D of the projector; proj_hidden_dim: its hidden width;
        proj_layers: its depth; proj_batch_norm: BatchNorm between its layers.

    Returns:
        A :class:`ContrastiveModel`: (B, C, H, W) -> (B, D) projections.
    """
    backbone = build_backbone(
        arch, image_size=image_size, in_channels=in_channels, width=width
    )
    hidden = proj_hidden_dim or backbone.feature_dim
    projector = MLPProjector(
        backbone.feature_dim, hidden, proj_dim, proj_layers, proj_batch_norm
    )
    return ContrastiveModel(backbone, projector)


def check_model(
    arch: str,
    proj_dim: int = 128,
    proj_hidden_dim: int | None = None,
    proj_layers: int = 2,
    image_size: int | None = 32,
    width: int = 32,
) -> None:
    """Check the arguments of :func:`build_model` before anything is built or loaded.

    Args:
        arch: a name of :data:`ARCHS`.
        proj_dim: the projector's output width D (>= 1).
        proj_hidden_dim: its hidden width (>= 1), or None for the feature width.
        proj_layers: its depth (>= 0; 0 is the identity).
        image_size: the input side (>= 1), or None for the data's own.
        width: the ``small_cnn`` width (>= 1).

    Returns:
        None.

    Raises:
        ValueError: one line naming the argument and its value.
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose one of {list(ARCHS)}")
    for name, value, lowest in (
        ("width", width, 1),
        ("proj_dim", proj_dim, 1),
        ("proj_hidden_dim", proj_hidden_dim, 1),
        ("proj_layers", proj_layers, 0),
        ("image_size", image_size, 1),
    ):
        if value is None and name in ("proj_hidden_dim", "image_size"):
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
            none = " or none" if name in ("proj_hidden_dim", "image_size") else ""
            raise ValueError(
                f"{name} must be an integer >= {lowest}{none}, got {value}"
            )
