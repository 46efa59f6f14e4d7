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
    dims = {"small_cnn": 256, "18": 512, "50": 2048}
    for arch in ARCHS:
        assert build_backbone(arch).feature_dim == dims["small_cnn" if arch == "small_cnn" else arch[-2:]]


@pytest.mark.parametrize("kwargs", [dict(arch="vgg"), dict(arch="small_cnn", width=0),
                                    dict(arch="resnet18", image_size=0)])
def test_bad_input(kwargs):
    with pytest.raises(ValueError):
        build_backbone(**kwargs)
    with pytest.raises(ValueError):
        MLPProjector(8, 8, 8, num_layers=-1)
    with pytest.raises(ValueError):
        MLPProjector(0, 8, 8)
