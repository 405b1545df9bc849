"""zoo.load: real offline weights through the registry, cut points, features, heads, stages."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import zoo
from zoo.errors import LoadError, OfflineError
from zoo.loading import load

torchvision = pytest.importorskip("torchvision")
from torchvision.models._meta import _IMAGENET_CATEGORIES  # noqa: E402


@pytest.fixture(scope="module")
def photos():
    from sklearn.datasets import load_sample_images

    return load_sample_images().images  # china.jpg (a temple), flower.jpg (a flower)


@pytest.fixture(scope="module")
def lite0():
    return load("efficientnet_lite0")


@pytest.mark.slow
def test_efficientnet_lite0_gives_sensible_imagenet_predictions(photos):
    classifier = load("efficientnet_lite0", head="pretrained")
    probabilities = classifier.embed(photos).softmax(-1)
    top5 = [[_IMAGENET_CATEGORIES[i] for i in row] for row in probabilities.topk(5).indices.tolist()]
    assert top5[0][0] in ("palace", "monastery", "bell cote", "pagoda"), top5[0]
    assert top5[1][0] in ("daisy", "bee", "pot"), top5[1]
    assert probabilities.max(-1).values.min() > 0.2  # confident, not a near-uniform guess


@pytest.mark.slow
def test_the_embedding_is_the_heads_input(lite0, photos):
    embedding = lite0.embed(photos)
    assert embedding.shape == (2, lite0.feature_dim) == (2, 1280)
    classifier = load("efficientnet_lite0", head="pretrained")
    torch.testing.assert_close(classifier.head(embedding), classifier.embed(photos))


@pytest.mark.slow
def test_named_intermediate_features(photos):
    backbone = load("efficientnet_lite0", features=["blocks.2", "blocks.6"])
    out = backbone.embed(photos[:1])
    card = zoo.get_card("efficientnet_lite0")
    assert out["blocks.2"].shape[1] == card.features["blocks.2"]
    assert out["blocks.6"].shape[1] == card.features["blocks.6"]
    with pytest.raises(LoadError, match="unknown features"):
        load("efficientnet_lite0", features=["blocks.99"])


def test_stages_partition_the_parameters_from_input_to_output(lite0):
    stages = lite0.stages()
    assert [name for name, _ in stages] == list(lite0.card.stages)
    counted = sum(p.numel() for _, params in stages for p in params)
    assert counted == sum(p.numel() for p in lite0.body.parameters())
    lite0.freeze()
    assert not any(p.requires_grad for p in lite0.parameters())
    assert lite0.unfreeze(2) == ["conv_head", "blocks.6"]
    trainable = {id(p) for p in lite0.parameters() if p.requires_grad}
    assert trainable == {id(p) for _, params in stages[-2:] for p in params}
    lite0.unfreeze("all")
    assert all(p.requires_grad for p in lite0.parameters())


def test_minilm_offline_matches_sentence_transformers():
    import sentence_transformers  # the dev extra installs it: this reference check is never skipped
    backbone = load("all-minilm-l6-v2-offline")
    texts = ["A man is eating food.", "A man is eating a piece of bread.", "The stock market fell sharply."]
    ours = torch.nn.functional.normalize(backbone.embed(texts), dim=-1)
    folder = zoo.pull("all-minilm-l6-v2-offline").root
    reference = sentence_transformers.SentenceTransformer(str(folder), device="cpu").encode(
        texts, convert_to_tensor=True, normalize_embeddings=True)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-4)
    similarity = ours @ ours.T
    assert similarity[0, 1] > 0.6 > 0.1 > similarity[0, 2]


def test_text_features_and_stages():
    backbone = load("all-minilm-l6-v2-offline", features=["embeddings", "encoder.layer.5"])
    out = backbone.embed(["hello world"])
    assert out["encoder.layer.5"].shape[-1] == 384 and out["embeddings"].shape[-1] == 384
    names = [n for n, _ in load("all-minilm-l6-v2-offline").stages()]
    assert names == ["embeddings"] + [f"encoder.layer.{i}" for i in range(6)]


@pytest.mark.slow
def test_encoders_have_no_pretrained_head():
    with pytest.raises(LoadError, match="no pretrained head"):
        load("all-minilm-l6-v2-offline", head="pretrained")
    with pytest.raises(LoadError, match="zoo finetune"):
        load("efficientnet_lite0", head="linear")


def test_offline_loads_what_is_cached_and_refuses_the_rest(monkeypatch):
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    assert load("efficientnet_lite0").feature_dim == 1280  # package files need no network
    with pytest.raises(OfflineError, match="resnet18"):
        load("resnet18")


def test_preprocess_follows_the_card(lite0, photos):
    batch = lite0.preprocess(photos)
    assert batch.shape == (2, 3, 224, 224) and batch.dtype == torch.float32
    assert -1.01 <= float(batch.min()) and float(batch.max()) <= 1.01  # mean = std = 0.5
    gray = np.zeros((50, 80), dtype=np.uint8)
    assert lite0.preprocess([gray]).shape == (1, 3, 224, 224)


def test_corrupt_image_is_a_clear_error(lite0, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(zoo.ZooError, match="bad.jpg: not a readable image"):
        lite0.preprocess([bad])


@pytest.mark.parametrize("size", [(640, 427), (427, 640), (300, 300), (200, 150)])
def test_image_preprocessing_is_timms_and_torchvisions_to_the_pixel(size):
    """zoo's resize + crop + normalise against the libraries' own eval transforms (the reference):
    timm's create_transform for the offline cards, torchvision's Resize + CenterCrop for others."""
    import numpy as np
    import timm
    from PIL import Image
    from sklearn.datasets import load_sample_images
    from timm.data import create_transform, resolve_data_config
    from torchvision.transforms import v2

    from zoo.card import InputSpec
    from zoo.preprocess import image_array

    photo = Image.fromarray(load_sample_images().images[0]).resize(size, Image.BICUBIC)
    for name, arch in (("efficientnet_lite0", "tf_efficientnet_lite0"), ("efficientnet_lite2", "tf_efficientnet_lite2")):
        card = zoo.get_card(name)
        reference = create_transform(**resolve_data_config({}, model=timm.create_model(arch, pretrained=False)))
        np.testing.assert_allclose(image_array(photo, card.input), reference(photo).numpy(), atol=1e-6)
    spec = InputSpec(size=(224, 224), resize=232, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                     interpolation="bilinear")  # torchvision's ResNet-50 V2 weights' transforms
    torchvision_eval = v2.Compose([v2.Resize(232, interpolation=v2.InterpolationMode.BILINEAR), v2.CenterCrop(224),
                                   v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True),
                                   v2.Normalize(spec.mean, spec.std)])
    np.testing.assert_allclose(image_array(photo, spec), torchvision_eval(photo).numpy(), atol=1e-6)
