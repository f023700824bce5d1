"""Image preprocessing and train-time augmentation, with Pillow and torch only.

torchvision is not an option here: the build that matches the local CPU torch fails to import
("operator torchvision::nms does not exist") and every other version replaces torch.

- `load_image`: decode with Pillow, convert to RGB (a grayscale X-ray is repeated over three channels,
  which is what an ImageNet backbone expects), resize the shorter side to `size` (bicubic, antialiased)
  and centre-crop a square: a uint8 [3, size, size] tensor, cached once per example.
- `normalise`: (x / 255 - mean) / std with the model's own statistics.
- `augment`: a batch's random flips, crops (random scale and shift), small rotations and colour jitter.
  The parameters are drawn from torch's global generator in a fixed order, after the batch is chosen, so a
  run is seeded by train.seed and a resumed run (which restores that generator from the checkpoint) draws
  the same augmentations bit for bit. Crop and rotation are one affine warp (`grid_sample`) per image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from PIL import Image

IMAGE_OPS = ("flip", "crop", "rotate", "color")
CROP_SCALE = (0.75, 1.0)  # side of the crop as a share of the image: mild, so small objects stay in view
MAX_ROTATION_DEG = 15.0
COLOR_JITTER = 0.2  # brightness, contrast and saturation factors drawn from 1 +- this


def load_image(path: str, size: int) -> torch.Tensor:
    with Image.open(path) as image:
        rgb = image.convert("RGB")
    w, h = rgb.size
    scale = size / min(w, h)
    new = (max(size, round(w * scale)), max(size, round(h * scale)))
    if new != (w, h):
        rgb = rgb.resize(new, Image.Resampling.BICUBIC)
    left, top = (new[0] - size) // 2, (new[1] - size) // 2
    rgb = rgb.crop((left, top, left + size, top + size))
    data = torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8)
    return data.view(size, size, 3).permute(2, 0, 1).contiguous()


def normalise(pixels: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 [B, 3, H, W] -> float32 normalised with the model's statistics."""
    x = pixels.float().div_(255.0)
    m = torch.tensor(mean, dtype=x.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - m) / s


def augment(x: torch.Tensor, ops: Sequence[str]) -> torch.Tensor:
    """Random augmentations of a float [B, 3, H, W] batch in [0, 1] (before normalisation)."""
    b = x.shape[0]
    if "flip" in ops:
        flip = torch.rand(b) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
    if "crop" in ops or "rotate" in ops:
        theta = torch.zeros(b, 2, 3)
        scale, shift = torch.ones(b), torch.zeros(b, 2)
        angle = torch.zeros(b)
        if "crop" in ops:
            scale = CROP_SCALE[0] + (CROP_SCALE[1] - CROP_SCALE[0]) * torch.rand(b)
            shift = (torch.rand(b, 2) * 2 - 1) * (1 - scale).unsqueeze(1)  # the crop stays inside the image
        if "rotate" in ops:
            angle = (torch.rand(b) * 2 - 1) * math.radians(MAX_ROTATION_DEG)
        cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
        theta[:, 0, 0], theta[:, 0, 1], theta[:, 0, 2] = cos, -sin, shift[:, 0]
        theta[:, 1, 0], theta[:, 1, 1], theta[:, 1, 2] = sin, cos, shift[:, 1]
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    if "color" in ops:
        factors = 1 + (torch.rand(b, 3) * 2 - 1) * COLOR_JITTER
        brightness, contrast, saturation = (factors[:, i].view(-1, 1, 1, 1) for i in range(3))
        x = x * brightness
        grey = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).clamp(0, 1)
        x = grey.mean((2, 3), keepdim=True) + (x - grey.mean((2, 3), keepdim=True)) * contrast
        grey = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
        x = grey + (x - grey) * saturation
    return x.clamp_(0.0, 1.0)
