"""PyTorch twins of the Swift models (Sources/CIFARGAN/Models.swift).

nn.Sequential indices match the Swift `Sequential`, so a state dict saved by cifar-gan loads with
`load_state_dict(safetensors.torch.load_file(path))` (or `tools/safetensors_io.py` without that package).
"""
import torch
import torch.nn as nn


def generator(latent_dim=100, width=128, slope=0.2):
    w = width
    return nn.Sequential(
        nn.Linear(latent_dim, w * 16),
        nn.Unflatten(1, (w, 4, 4)),
        nn.BatchNorm2d(w),
        nn.LeakyReLU(slope),
        nn.ConvTranspose2d(w, w, 4, 2, 1),
        nn.BatchNorm2d(w),
        nn.LeakyReLU(slope),
        nn.ConvTranspose2d(w, w, 4, 2, 1),
        nn.BatchNorm2d(w),
        nn.LeakyReLU(slope),
        nn.ConvTranspose2d(w, 3, 4, 2, 1),
        nn.Tanh(),
    )


def discriminator(width=64, dropout=0.4, slope=0.2, dropout_module=None):
    w = width
    return nn.Sequential(
        nn.Conv2d(3, w, 3, 1, 1),
        nn.LeakyReLU(slope),
        nn.Conv2d(w, w, 3, 2, 1),
        nn.LeakyReLU(slope),
        nn.Conv2d(w, 2 * w, 3, 2, 1),
        nn.LeakyReLU(slope),
        nn.Conv2d(2 * w, 2 * w, 3, 2, 1),
        nn.LeakyReLU(slope),
        nn.Flatten(),
        dropout_module if dropout_module is not None else nn.Dropout(dropout),
        nn.Linear(2 * w * 16, 1),
    )


class ResidualBlock(nn.Module):
    """y = relu(main(x) + shortcut(x)); the identity when shortcut is None (GANCore's ResidualBlock)."""

    def __init__(self, main, shortcut=None):
        super().__init__()
        self.main = main
        self.shortcut = shortcut

    def forward(self, x):
        return torch.relu(self.main(x) + (self.shortcut(x) if self.shortcut is not None else x))


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
