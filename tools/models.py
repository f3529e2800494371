"""PyTorch twins of the Swift models (Sources/CIFARGAN/Models.swift).

nn.Sequential indices match the Swift `Sequential`, so a state dict saved by cifar-gan loads with
`load_state_dict(safetensors.torch.load_file(path))` (or `tools/safetensors_io.py` without that package).
"""
import torch
import torch.nn as nn


def upsample(cin, cout, mode="transposed"):
    """G's 2x step: ConvTranspose2d(4, 2, 1), or nearest upsampling then Conv2d(3, 1, 1) (ModelConfig.upsampling)."""
    if mode == "nearest":
        return [nn.Upsample(scale_factor=2), nn.Conv2d(cin, cout, 3, 1, 1)]
    return [nn.ConvTranspose2d(cin, cout, 4, 2, 1)]


def generator(latent_dim=100, width=128, slope=0.2, num_classes=0, labels=None, upsampling="transposed"):
    w = width
    norm = (lambda c: ConditionalBatchNorm2d(c, num_classes, labels)) if num_classes else nn.BatchNorm2d
    layers = [nn.Linear(latent_dim, w * 16), nn.Unflatten(1, (w, 4, 4))]
    for _ in range(2):
        layers += [norm(w), nn.LeakyReLU(slope)] + upsample(w, w, upsampling)
    layers += [norm(w), nn.LeakyReLU(slope)] + upsample(w, 3, upsampling) + [nn.Tanh()]
    return nn.Sequential(*layers)


def discriminator(width=64, dropout=0.4, slope=0.2, dropout_module=None, spectral_norm=False, num_classes=0, labels=None):
    w = width
    sn = nn.utils.spectral_norm if spectral_norm else (lambda m: m)
    head = sn(nn.Linear(2 * w * 16, 1))
    if num_classes:
        head = ProjectionHead(head, 2 * w * 16, num_classes, labels)
    return nn.Sequential(
        sn(nn.Conv2d(3, w, 3, 1, 1)),
        nn.LeakyReLU(slope),
        sn(nn.Conv2d(w, w, 3, 2, 1)),
        nn.LeakyReLU(slope),
        sn(nn.Conv2d(w, 2 * w, 3, 2, 1)),
        nn.LeakyReLU(slope),
        sn(nn.Conv2d(2 * w, 2 * w, 3, 2, 1)),
        nn.LeakyReLU(slope),
        nn.Flatten(),
        dropout_module if dropout_module is not None else nn.Dropout(dropout),
        head,
    )


def from_config(model):
    """The twins of a run's config.json "model" section, with the Labels object a conditional pair shares."""
    labels = Labels()
    k = model.get("classes", 0)
    arch = model.get("architecture", "dcgan")
    up = model.get("upsampling", "transposed")
    if arch == "resnet":
        G = resnet_generator(model["latent_dim"], model["generator_width"], k, labels)
        D = resnet_discriminator(model["discriminator_width"], model.get("spectral_norm", False), k, labels)
    elif arch == "cnn":
        G = cnn_generator(model["latent_dim"], model["generator_width"], k, labels, up)
        D = cnn_discriminator(model["discriminator_width"], model["leaky_slope"], model.get("spectral_norm", False), k, labels)
    else:
        G = generator(model["latent_dim"], model["generator_width"], model["leaky_slope"], k, labels, up)
        D = discriminator(model["discriminator_width"], model["dropout"], model["leaky_slope"],
                          spectral_norm=model.get("spectral_norm", False), num_classes=k, labels=labels)
    return G, D, labels


class ResidualBlock(nn.Module):
    """y = relu(main(x) + shortcut(x)) (without the relu when final_relu is False, SNGAN's blocks);
    the identity when shortcut is None (GANCore's ResidualBlock)."""

    def __init__(self, main, shortcut=None, final_relu=True):
        super().__init__()
        self.main = main
        self.shortcut = shortcut
        self.final_relu = final_relu

    def forward(self, x):
        y = self.main(x) + (self.shortcut(x) if self.shortcut is not None else x)
        return torch.relu(y) if self.final_relu else y


def basic_block(cin, cout, stride):
    """Two 3×3 convolutions with batch norm; a 1×1 convolution shortcut when the shape changes."""
    main = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
    shortcut = None
    if stride != 1 or cin != cout:
        shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, 0, bias=False), nn.BatchNorm2d(cout))
    return ResidualBlock(main, shortcut)


class ReplayDropout(nn.Module):
    """Dropout whose masks (0/1) are given in advance, so Swift can replay the very same masks."""

    def __init__(self, p, masks):
        super().__init__()
        self.p = p
        self.masks = list(masks)

    def forward(self, x):
        if not self.training:
            return x
        return x * self.masks.pop(0) / (1 - self.p)


class Labels:
    """The class labels of the current batch, shared by a conditional model's layers (GANCore's ClassLabels)."""

    def __init__(self):
        self.labels = None


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm without affine, then per-class scale and shift: x̂·weight[y] + bias[y] (GANCore's ConditionalBatchNorm)."""

    def __init__(self, num_features, num_classes, labels):
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features, affine=False)
        self.weight = nn.Parameter(torch.ones(num_classes, num_features))
        self.bias = nn.Parameter(torch.zeros(num_classes, num_features))
        self._labels = labels

    def forward(self, x):
        y = self._labels.labels
        h = self.bn(x)
        shape = (x.shape[0], -1) + (1,) * (x.dim() - 2)
        return h * self.weight[y].view(shape) + self.bias[y].view(shape)


class ProjectionHead(nn.Module):
    """logit = linear(φ) + <embed[y], φ> (Miyato & Koyama 2018; GANCore's ProjectionHead)."""

    def __init__(self, linear, features, num_classes, labels):
        super().__init__()
        self.linear = linear
        self.embed = nn.Embedding(num_classes, features)
        self._labels = labels

    def forward(self, h):
        return self.linear(h) + (self.embed(self._labels.labels) * h).sum(1, keepdim=True)


class SumPool(nn.Module):
    def forward(self, x):
        return x.sum(dim=(2, 3))


def resnet_generator(latent_dim=100, width=64, num_classes=0, labels=None):
    """SNGAN's CIFAR-10 generator (GANCore ModelConfig architecture "resnet")."""
    w = width
    norm = (lambda c: ConditionalBatchNorm2d(c, num_classes, labels)) if num_classes else nn.BatchNorm2d
    layers = [nn.Linear(latent_dim, w * 16), nn.Unflatten(1, (w, 4, 4))]
    for _ in range(3):
        main = nn.Sequential(norm(w), nn.ReLU(), nn.Upsample(scale_factor=2), nn.Conv2d(w, w, 3, 1, 1),
                             norm(w), nn.ReLU(), nn.Conv2d(w, w, 3, 1, 1))
        layers.append(ResidualBlock(main, nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(w, w, 1)), final_relu=False))
    layers += [nn.BatchNorm2d(w), nn.ReLU(), nn.Conv2d(w, 3, 3, 1, 1), nn.Tanh()]
    return nn.Sequential(*layers)


def resnet_discriminator(width=64, spectral_norm=True, num_classes=0, labels=None):
    """SNGAN's CIFAR-10 discriminator (GANCore ModelConfig architecture "resnet")."""
    w = width
    sn = nn.utils.spectral_norm if spectral_norm else (lambda m: m)

    def conv(i, o, k):
        return sn(nn.Conv2d(i, o, k, 1, k // 2))

    layers = [
        ResidualBlock(nn.Sequential(conv(3, w, 3), nn.ReLU(), conv(w, w, 3), nn.AvgPool2d(2)),
                      nn.Sequential(nn.AvgPool2d(2), conv(3, w, 1)), final_relu=False),
        ResidualBlock(nn.Sequential(nn.ReLU(), conv(w, w, 3), nn.ReLU(), conv(w, w, 3), nn.AvgPool2d(2)),
                      nn.Sequential(conv(w, w, 1), nn.AvgPool2d(2)), final_relu=False),
    ]
    for _ in range(2):
        layers.append(ResidualBlock(nn.Sequential(nn.ReLU(), conv(w, w, 3), nn.ReLU(), conv(w, w, 3)), None, final_relu=False))
    head = sn(nn.Linear(w, 1))
    if num_classes:
        head = ProjectionHead(head, w, num_classes, labels)
    layers += [nn.ReLU(), SumPool(), head]
    return nn.Sequential(*layers)


def cnn_generator(latent_dim=128, width=512, num_classes=0, labels=None, upsampling="transposed"):
    """SNGAN's standard CNN generator (GANCore ModelConfig architecture "cnn"): channels halve W -> W/8."""
    c = width
    norm = (lambda n: ConditionalBatchNorm2d(n, num_classes, labels)) if num_classes else nn.BatchNorm2d
    layers = [nn.Linear(latent_dim, c * 16), nn.Unflatten(1, (c, 4, 4)), norm(c), nn.ReLU()]
    for _ in range(3):
        layers += upsample(c, c // 2, upsampling) + [norm(c // 2), nn.ReLU()]
        c //= 2
    layers += [nn.Conv2d(c, 3, 3, 1, 1), nn.Tanh()]
    return nn.Sequential(*layers)


def cnn_discriminator(width=64, slope=0.1, spectral_norm=True, num_classes=0, labels=None):
    """SNGAN's standard CNN discriminator (GANCore ModelConfig architecture "cnn"): channels W -> 8W."""
    w = width
    sn = nn.utils.spectral_norm if spectral_norm else (lambda m: m)
    layers = []
    for (i, o, k, s) in [(3, w, 3, 1), (w, w, 4, 2), (w, 2 * w, 3, 1), (2 * w, 2 * w, 4, 2),
                         (2 * w, 4 * w, 3, 1), (4 * w, 4 * w, 4, 2), (4 * w, 8 * w, 3, 1)]:
        layers += [sn(nn.Conv2d(i, o, k, s, 1)), nn.LeakyReLU(slope)]
    head = sn(nn.Linear(8 * w * 16, 1))
    if num_classes:
        head = ProjectionHead(head, 8 * w * 16, num_classes, labels)
    layers += [nn.Flatten(), head]
    return nn.Sequential(*layers)
