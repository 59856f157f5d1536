"""BC-ResNet (Kim et al., "Broadcasted Residual Learning", 2021), width 1: about 10k parameters.

Frequency-wise depthwise convs on 2-D features, a time-wise depthwise conv on the frequency-averaged
map, and the 1-D result broadcast back over frequency. Sub-spectral norm is replaced by plain
BatchNorm (simpler to fold for int8; recorded in docs/ARCHITECTURE.md).
Layout here: ``(B, C, T, F)``, so a frequency kernel is ``(1, k)`` and a time kernel ``(k, 1)``.
"""

from __future__ import annotations

import torch
from torch import nn

from edgekd.train.models.common import FeatureNorm

__all__ = ["BCResNet"]


class _BCBlock(nn.Module):
    def __init__(self, cin: int, cout: int, freq_stride: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.transition = cin != cout
        self.pre = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))
            if self.transition
            else nn.Identity()
        )
        self.f2 = nn.Sequential(
            nn.Conv2d(cout, cout, (1, 3), stride=(1, freq_stride), padding=(0, 1), groups=cout, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.f1 = nn.Sequential(
            nn.Conv2d(cout, cout, (3, 1), padding=(dilation, 0), dilation=(dilation, 1), groups=cout, bias=False),
            nn.BatchNorm2d(cout),
            nn.SiLU(),
            nn.Conv2d(cout, cout, 1, bias=False),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pre(x)
        aux = self.f2(x)
        t = self.f1(aux.mean(dim=3, keepdim=True))
        out = t + aux
        if not self.transition and aux.shape == x.shape:
            out = out + x
        return torch.relu(out)


class BCResNet(nn.Module):
    """Input ``(B, T, n_mels)``; output ``(B, n_labels)``."""

    def __init__(self, n_labels: int, n_mels: int = 40, tau: float = 1.25, dropout: float = 0.1) -> None:
        super().__init__()
        c = [int(round(w * tau)) for w in (8, 12, 16, 20)]
        self.norm = FeatureNorm(n_mels)
        self.stem = nn.Sequential(nn.Conv2d(1, 2 * c[0], 5, stride=(2, 2), padding=2, bias=False), nn.BatchNorm2d(2 * c[0]), nn.ReLU(inplace=True))
        layers: list[nn.Module] = []
        cin = 2 * c[0]
        for _stage, (width, repeat, fstride, dil) in enumerate(zip(c, (2, 2, 4, 4), (1, 2, 2, 1), (1, 2, 4, 8), strict=False)):
            for r in range(repeat):
                layers.append(_BCBlock(cin, width, fstride if r == 0 else 1, dil, dropout))
                cin = width
        self.blocks = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Conv2d(cin, cin, (1, 5), groups=cin, padding=(0, 2), bias=False),
            nn.Conv2d(cin, 32, 1, bias=False),
            nn.BatchNorm2d(32),
            nn.ReLU(inplace=True),
        )
        self.fc = nn.Linear(32, n_labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(self.norm(x).unsqueeze(1))
        h = self.head(self.blocks(h))
        return self.fc(h.mean(dim=(2, 3)))
