"""Tests for cl_lib.models: shapes, stems, the backbone/projector split, bad input."""
import pytest
import torch
import torch.nn as nn

from cl_lib.models import ARCHS, ContrastiveModel, MLPProjector, SmallConvNet, build_backbone, build_model


def test_small_cnn_shapes_and_feature_dim():
    net = SmallConvNet(width=8)
    assert net.feature_dim == 64
    assert net(torch.randn(3, 3, 32, 32)).shape == (3, 64)
    assert net(torch.randn(2, 3, 17, 23)).shape == (2, 64)  # any image size (global pooling)


@pytest.mark.parametrize("arch, dim", [("cifar_resnet18", 512), ("resnet18", 512)])
def test_cifar_resnet18_stem(arch, dim):
    net = build_backbone(arch, image_size=32)
    assert net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1)
    assert isinstance(net.maxpool, nn.Identity) and isinstance(net.fc, nn.Identity)
    assert net.feature_dim == dim
    assert net(torch.randn(2, 3, 8, 8)).shape == (2, dim)  # stride-1 stem: even 8x8 inputs work


def test_imagenet_resnet_stem_auto_and_explicit():
    for net in (build_backbone("resnet18", image_size=96), build_backbone("imagenet_resnet18", image_size=32)):
        assert net.conv1.kernel_size == (7, 7) and net.conv1.stride == (2, 2)
        assert isinstance(net.maxpool, nn.MaxPool2d)
    assert build_backbone("resnet18", image_size=96)(torch.randn(2, 3, 64, 64)).shape == (2, 512)


def test_projector_layers():
    p2 = MLPProjector(16, 32, 8, num_layers=2)
    assert [type(m) for m in p2.net] == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    assert p2(torch.randn(4, 16)).shape == (4, 8)
    assert isinstance(MLPProjector(16, 32, 8, num_layers=1).net[0], nn.Linear)
    ident = MLPProjector(16, 32, 8, num_layers=0)
    x = torch.randn(4, 16)
    assert torch.equal(ident(x), x) and ident.out_dim == 16
    no_bn = MLPProjector(16, 32, 8, num_layers=3, batch_norm=False)
    assert not any(isinstance(m, nn.BatchNorm1d) for m in no_bn.modules())


def test_contrastive_model_split():
    torch.manual_seed(0)
    m = build_model("small_cnn", proj_dim=16, width=8).eval()
    x = torch.randn(4, 3, 32, 32)
    z, h = m(x, return_features=True)
    assert z.shape == (4, 16) and h.shape == (4, 64)
    assert torch.allclose(m.features(x), h) and torch.allclose(m.projector(h), z)
    assert torch.allclose(m(x), z)
    assert m.feature_dim == 64 and m.out_dim == 16
    assert isinstance(m, ContrastiveModel)
    # default hidden width = feature width
    assert m.projector.net[0].out_features == 64


def test_in_channels():
    m = build_model("cifar_resnet18", proj_dim=8, in_channels=1)
    assert m(torch.randn(2, 1, 8, 8)).shape == (2, 8)
    assert build_backbone("imagenet_resnet18", in_channels=1).conv1.in_channels == 1


def test_all_arch_names_build():
    dims = {"small_cnn": 256, "small_resnet": 256, "18": 512, "50": 2048}
    for arch in ARCHS:
        want = dims[arch if arch.startswith("small_") else arch[-2:]]
        assert build_backbone(arch).feature_dim == want  # width 32: 8 x 32


@pytest.mark.parametrize("kwargs", [dict(arch="vgg"), dict(arch="small_cnn", width=0),
                                    dict(arch="resnet18", image_size=0)])
def test_bad_input(kwargs):
    with pytest.raises(ValueError):
        build_backbone(**kwargs)
    with pytest.raises(ValueError):
        MLPProjector(8, 8, 8, num_layers=-1)
    with pytest.raises(ValueError):
        MLPProjector(0, 8, 8)


def test_small_resnet_is_deeper_at_the_cost_of_a_wider_small_cnn():
    """small_resnet: 8w features, ten convolutions, residual stages; at width 16 its
    multiply-adds are within 25% of small_cnn's at width 32, and it trains (finite
    gradients on every parameter)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from cl_lib.models import SmallConvNet, SmallResNet, build_model

    net = SmallResNet(width=16)
    x = torch.randn(4, 3, 32, 32)
    assert net(x).shape == (4, 128) and net.feature_dim == 128
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 10

    def macs(model):
        with FlopCounterMode(display=False) as count:
            model(torch.randn(1, 3, 32, 32))
        return count.get_total_flops() / 2

    assert abs(macs(net) / macs(SmallConvNet(width=32)) - 1) < 0.25
    model = build_model("small_resnet", proj_dim=8, width=4)
    model(torch.randn(8, 3, 32, 32)).square().mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    with pytest.raises(ValueError, match="width"):
        SmallResNet(width=0)
