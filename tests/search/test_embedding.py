"""search.embedding: decoding for the model, backbones and weights, vectors, per-item errors.

Pure library tests, no database. ResNet-18 is checked with seeded random weights (its ImageNet weights can't
be downloaded here); quality is checked with the offline ImageNet MobileNet-V2 weights from ../shared/models.
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from core.pixels import upright_rgb
from search import embedding, model_input
from search.embedding import WeightsUnavailableError
from search.model_input import ImageDecodeError
from tests.images import OFFLINE_WEIGHTS, deflate_tiff, encode, photo_jpeg, photo_like_image, shared_path

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def resnet() -> embedding.Embedder:
    return embedding.seeded_embedder(model_name="resnet18", seed=0)


@pytest.fixture(scope="module")
def mobilenet() -> embedding.Embedder:
    return embedding.load_embedder(model_name="mobilenet_v2", weights_path=shared_path("models", OFFLINE_WEIGHTS.name))


def photos(count: int, size: tuple[int, int] = (320, 240)) -> list[Image.Image]:
    return [photo_like_image(seed, size) for seed in range(count)]


def large_photo(name: str) -> Path:
    return shared_path("data", "large-photos", name)


# ------------------------------------------------------------------------------------------- module import


def test_importing_the_module_loads_neither_torch_nor_django():
    code = (
        "import sys, search.embedding; "
        "loaded = [m for m in ('torch', 'torchvision', 'django') if m in sys.modules]; "
        "assert not loaded, loaded"
    )
    completed = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stderr


def test_backbone_registry_lists_the_dims():
    assert {"resnet18", "mobilenet_v2"} <= set(embedding.backbone_names())
    assert embedding.BACKBONES["resnet18"].dim == 512
    assert embedding.BACKBONES["mobilenet_v2"].dim == 1280


def test_unknown_backbone_names_the_choices():
    with pytest.raises(ValueError, match="resnet18"):
        embedding.seeded_embedder(model_name="vgg-ish")


# ------------------------------------------------------------------------------------ resnet18, seeded


def test_resnet18_gives_unit_float32_vectors_of_512(resnet):
    vectors = resnet.embed_images(photos(3))

    assert resnet.model_name == "resnet18"
    assert resnet.dim == 512
    assert vectors.shape == (3, 512)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.ml
def test_same_seed_gives_the_same_vectors_and_another_seed_does_not(resnet):
    images = photos(2)
    again = embedding.seeded_embedder(model_name="resnet18", seed=0)
    other = embedding.seeded_embedder(model_name="resnet18", seed=1)

    np.testing.assert_allclose(again.embed_images(images), resnet.embed_images(images), atol=1e-6)
    assert not np.allclose(other.embed_images(images), resnet.embed_images(images), atol=1e-3)


def test_a_batch_gives_the_same_vectors_as_one_image_at_a_time(resnet):
    images = photos(5, size=(300, 200))

    batched = resnet.embed_images(images)
    one_by_one = np.concatenate([resnet.embed_images([image]) for image in images])

    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)


def test_different_images_give_different_vectors(resnet):
    vectors = resnet.embed_images(photos(2))

    assert float(vectors[0] @ vectors[1]) < 0.9999


@pytest.mark.ml
def test_optimised_model_equals_the_eager_fp32_reference_on_real_photos(resnet):
    """BN folding and channels-last must not move vectors: duplicate thresholds are tight."""
    reference = embedding.seeded_embedder(model_name="resnet18", seed=0, optimize=False)
    paths = [large_photo("Storm.jpg"), large_photo("Wine_by_Jakkub_Mede.jpg")]
    pixels = np.stack([model_input.model_input_pixels(model_input.load_rgb_for_embedding(p)) for p in paths])

    cosines = np.sum(resnet.embed_pixels(pixels) * reference.embed_pixels(pixels), axis=1)

    assert cosines.min() >= 0.9999


@pytest.mark.ml
def test_pixels_are_normalised_like_torchvision_transforms(resnet):
    """Same tensor as Resize((224, 224)) + ToTensor + Normalize, so vectors match the prototype's."""
    from torchvision import transforms

    image = photo_like_image(3, (500, 333))
    transform = transforms.Compose(
        [
            transforms.Resize((224, 224)),
            transforms.ToTensor(),
            transforms.Normalize(embedding.IMAGENET_MEAN, embedding.IMAGENET_STD),
        ]
    )
    reference = embedding.seeded_embedder(model_name="resnet18", seed=0, optimize=False)
    with torch.inference_mode():
        expected = torch.nn.functional.normalize(reference._model(transform(image).unsqueeze(0)), dim=1)

    np.testing.assert_allclose(reference.embed_images([image]), expected.numpy(), atol=1e-6)


# ------------------------------------------------------------------------------- mobilenet_v2, ImageNet


@pytest.mark.ml
def test_mobilenet_v2_with_offline_weights_gives_1280_unit_vectors(mobilenet):
    vectors = mobilenet.embed_images(photos(2))

    assert mobilenet.dim == 1280
    assert vectors.shape == (2, 1280)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.ml
def test_variants_of_one_photo_are_closer_than_different_photos(mobilenet):
    """Crops/rescales/recompressions of a photo (neardup-dev groups) vs other photos and distractors."""
    labels_path = shared_path("data", "neardup-dev", "labels.csv")
    with labels_path.open(newline="") as labels_file:
        rows = list(csv.DictReader(labels_file))
    by_group: dict[str, list[str]] = {}
    for row in rows:
        by_group.setdefault(row["group_id"], []).append(row["file"])
    sample = [(group, labels_path.parent / name) for group in sorted(by_group) for name in by_group[group][:3]]
    distractors = sorted(shared_path("data", "distractors-dev", "train").glob("*.jpg"))[:6]
    sample += [(f"distractor-{path.stem}", path) for path in distractors]

    result = mobilenet.embed_sources([path for _, path in sample])
    assert result.errors == {}
    labels = np.array([group for group, _ in sample])
    similarity = result.vectors @ result.vectors.T
    same = labels[:, None] == labels[None, :]
    off_diagonal = ~np.eye(len(sample), dtype=bool)
    within = similarity[same & off_diagonal].mean()
    between = similarity[~same].mean()

    assert within > between + 0.2, (within, between)
    np.fill_diagonal(similarity, -np.inf)
    grouped = [i for i, group in enumerate(labels) if not group.startswith("distractor-")]
    wrong = [sample[i][1].name for i in grouped if labels[similarity[i].argmax()] != labels[i]]
    assert wrong == []


# -------------------------------------------------------------------------------------------- weights


@pytest.mark.ml
def test_weights_of_another_backbone_are_refused_naming_both():
    with pytest.raises(WeightsUnavailableError) as raised:
        embedding.load_embedder(model_name="resnet18", weights_path=shared_path("models", OFFLINE_WEIGHTS.name))

    message = str(raised.value)
    assert OFFLINE_WEIGHTS.name in message
    assert "resnet18" in message
    assert "look like weights for mobilenet_v2" in message


@pytest.mark.ml
def test_resnet18_weights_are_refused_for_mobilenet(tmp_path):
    path = tmp_path / "resnet18.pth"
    torch.save(embedding._build_architecture(embedding.BACKBONES["resnet18"]).state_dict(), path)

    with pytest.raises(WeightsUnavailableError, match="look like weights for resnet18"):
        embedding.load_embedder(model_name="mobilenet_v2", weights_path=path)


@pytest.mark.ml
def test_missing_weights_file_is_reported(tmp_path):
    with pytest.raises(WeightsUnavailableError, match="does not exist"):
        embedding.load_embedder(model_name="resnet18", weights_path=tmp_path / "nowhere.pth")


@pytest.mark.ml
def test_a_file_that_is_not_torch_weights_is_reported(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_bytes(b"these are not weights")

    with pytest.raises(WeightsUnavailableError, match="cannot be read as torch weights"):
        embedding.load_embedder(model_name="resnet18", weights_path=path)


@pytest.mark.ml
def test_checkpoint_with_state_dict_entry_and_classifier_loads(tmp_path, resnet):
    """A DataParallel training checkpoint ({"state_dict": ..., "epoch": ...}) with its own classifier."""
    source = embedding.seeded_embedder(model_name="resnet18", seed=0, optimize=False)
    fine_tuned_head = {"fc.weight": torch.zeros(10, 512), "fc.bias": torch.zeros(10)}  # 10 classes, not 1000
    state = {f"module.{key}": value for key, value in {**source._model.state_dict(), **fine_tuned_head}.items()}
    path = tmp_path / "checkpoint.pth"
    torch.save({"state_dict": state, "epoch": 3}, path)

    loaded = embedding.load_embedder(model_name="resnet18", weights_path=path)

    images = photos(2)
    np.testing.assert_allclose(loaded.embed_images(images), resnet.embed_images(images), atol=1e-5)


def _no_network(monkeypatch, torch_home: Path) -> None:
    monkeypatch.setenv("TORCH_HOME", str(torch_home))

    def refuse_download(url, *args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse_download)


@pytest.mark.ml
def test_without_weights_or_network_the_error_says_how_to_get_them(monkeypatch, tmp_path):
    _no_network(monkeypatch, tmp_path)
    embedding.forget_embedders()

    with pytest.raises(WeightsUnavailableError) as raised:
        embedding.get_embedder(model_name="resnet18")

    message = str(raised.value)
    assert str(tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in message
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in message
    assert "IMGSIM_WEIGHTS=/path/to/" in message
    assert "IMGSIM_MODEL=mobilenet_v2" in message


@pytest.mark.ml
def test_weights_already_in_the_torch_hub_cache_are_used_and_the_embedder_is_kept(monkeypatch, tmp_path, resnet):
    _no_network(monkeypatch, tmp_path)
    embedding.forget_embedders()
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    seeded = embedding.seeded_embedder(model_name="resnet18", seed=0, optimize=False)
    torch.save(seeded._model.state_dict(), cache / "resnet18-f37072fd.pth")

    first = embedding.get_embedder(model_name="resnet18")
    second = embedding.get_embedder(model_name="resnet18")
    embedding.forget_embedders()

    assert first is second
    images = photos(2)
    np.testing.assert_allclose(first.embed_images(images), resnet.embed_images(images), atol=1e-5)


# ------------------------------------------------------------------------------------------- decoding


def test_exif_orientation_is_applied():
    """Orientation 6 = stored sideways, shown turned 90 degrees clockwise: the left edge becomes the top."""
    stored = Image.new("RGB", (320, 240), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 40, 240))  # red stripe on the stored image's left edge
    exif = Image.Exif()
    exif[0x0112] = 6

    upright = model_input.load_rgb_for_embedding(encode(stored, "JPEG", quality=95, exif=exif.tobytes()))

    assert upright.size == (240, 320)
    top, bottom = np.asarray(upright)[:20].mean(axis=(0, 1)), np.asarray(upright)[-20:].mean(axis=(0, 1))
    assert top[0] > 200 > bottom[0]


@pytest.mark.parametrize(
    ("image", "fmt", "expected"),
    [
        pytest.param(Image.new("RGBA", (64, 48), (255, 0, 0, 0)), "PNG", (255, 255, 255), id="transparent-rgba"),
        pytest.param(Image.new("RGBA", (64, 48), (255, 0, 0, 255)), "PNG", (255, 0, 0), id="opaque-rgba"),
        pytest.param(Image.new("LA", (64, 48), (0, 0)), "PNG", (255, 255, 255), id="transparent-la"),
        pytest.param(Image.new("L", (64, 48), 77), "PNG", (77, 77, 77), id="grey"),
        pytest.param(Image.new("CMYK", (64, 48), (0, 255, 255, 0)), "JPEG", (255, 0, 0), id="cmyk-jpeg"),
        pytest.param(Image.new("I;16", (64, 48), 65535), "PNG", (255, 255, 255), id="16-bit-white"),
        pytest.param(Image.new("I;16", (64, 48), 32896), "PNG", (128, 128, 128), id="16-bit-grey"),
    ],
)
def test_every_mode_becomes_rgb(image, fmt, expected):
    loaded = model_input.load_rgb_for_embedding(encode(image, fmt))

    assert loaded.mode == "RGB"
    assert loaded.size == (64, 48)
    np.testing.assert_allclose(np.asarray(loaded)[24, 32], expected, atol=3)


def test_palette_image_with_transparent_index_is_composited_on_white():
    palette_image = Image.new("P", (64, 48), 0)
    palette_image.putpalette([0, 0, 0] + [0, 200, 0] * 255)
    palette_image.paste(1, (32, 0, 64, 48))

    loaded = model_input.load_rgb_for_embedding(encode(palette_image, "PNG", transparency=0))

    assert tuple(np.asarray(loaded)[24, 10]) == (255, 255, 255)
    assert tuple(np.asarray(loaded)[24, 50]) == (0, 200, 0)


def test_animated_gif_gives_its_first_frame():
    frames = [Image.new("RGB", (40, 30), colour) for colour in [(255, 0, 0), (0, 0, 255), (0, 255, 0)]]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)

    loaded = model_input.load_rgb_for_embedding(buffer.getvalue())

    np.testing.assert_allclose(np.asarray(loaded)[15, 20], (255, 0, 0), atol=8)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"GIF89a but not really an image at all", id="garbage"),
        pytest.param(photo_jpeg(5, (640, 480))[:3000], id="truncated-jpeg"),
        pytest.param(encode(photo_like_image(6), "PNG")[:2000], id="truncated-png"),
    ],
)
def test_undecodable_bytes_raise_image_decode_error(data):
    with pytest.raises(ImageDecodeError, match="Cannot decode image"):
        model_input.load_rgb_for_embedding(data)


def test_a_file_too_large_to_decode_is_refused_before_decoding(monkeypatch):
    # given a stored 16-bit RGB TIFF in one deflate strip (16 MB of pixels, a 24 MB strip) and a 4 MP cap
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 4_000_000)
    data = deflate_tiff((2000, 2000))
    # when the worker decodes it for the model, then it is one failed item with the reason, never decoded
    with pytest.raises(ImageDecodeError, match=r"TIFF \(16-bit RGB; 2000x2000 pixels\) is too large to process"):
        model_input.load_rgb_for_embedding(data)


def test_missing_file_raises_image_decode_error(tmp_path):
    with pytest.raises(ImageDecodeError, match="Cannot read image file"):
        model_input.load_rgb_for_embedding(tmp_path / "gone.jpg")


def test_paths_bytes_and_file_objects_decode_alike(tmp_path):
    data = photo_jpeg(7)
    path = tmp_path / "photo.jpg"
    path.write_bytes(data)

    from_path = np.asarray(model_input.load_rgb_for_embedding(path))
    from_str = np.asarray(model_input.load_rgb_for_embedding(str(path)))
    from_bytes = np.asarray(model_input.load_rgb_for_embedding(data))
    from_file = np.asarray(model_input.load_rgb_for_embedding(io.BytesIO(data)))

    assert from_path.shape == (240, 320, 3)
    assert np.array_equal(from_path, from_str)
    assert np.array_equal(from_path, from_bytes)
    assert np.array_equal(from_path, from_file)


@pytest.mark.parametrize("progressive", [False, True])
def test_big_jpeg_is_drafted_but_never_below_the_model_input(progressive):
    data = photo_jpeg(8, (3000, 2000), progressive=progressive)

    loaded = model_input.load_rgb_for_embedding(data)

    assert loaded.size == (375, 250)  # 1/8 scale: the largest reduction keeping both sides >= 224
    assert min(loaded.size) >= model_input.INPUT_SIZE


@pytest.mark.ml
def test_drafted_large_photo_gives_nearly_the_vector_of_a_full_decode(mobilenet):
    path = large_photo("Fossa_by_Jasper_Roks.jpg")
    with Image.open(path) as image:
        full = ImageOps.exif_transpose(image.convert("RGB"))

    drafted = model_input.load_rgb_for_embedding(path)
    vectors = mobilenet.embed_images([drafted, full])

    assert drafted.size == (512, 288)
    assert float(vectors[0] @ vectors[1]) > 0.99


def _plain_draft(data: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(data))
    image.draft("RGB", (model_input.INPUT_SIZE, model_input.INPUT_SIZE))
    return np.asarray(image.convert("RGB"))


@pytest.mark.parametrize(
    "save_kwargs",
    [
        pytest.param({"subsampling": 2}, id="4:2:0"),
        pytest.param({"subsampling": 0}, id="4:4:4"),
        pytest.param({"subsampling": 1, "restart_marker_blocks": 7}, id="4:2:2-restarts"),
        pytest.param({"subsampling": 2, "restart_marker_rows": 1}, id="4:2:0-restart-rows"),
    ],
)
def test_progressive_dc_only_stream_decodes_to_the_same_pixels_at_one_eighth(save_kwargs):
    """The speed trick must be invisible: same pixels as plain draft mode, odd sizes included."""
    data = photo_jpeg(9, (2003, 1811), progressive=True, **save_kwargs)

    dc_only = model_input._progressive_dc_only_stream(data)

    assert dc_only is not None
    assert len(dc_only) < len(data) / 2
    assert np.array_equal(_plain_draft(dc_only), _plain_draft(data))
    assert np.array_equal(np.asarray(model_input.load_rgb_for_embedding(data)), _plain_draft(data))


@pytest.mark.parametrize("mode", ["L", "CMYK"])
def test_progressive_dc_only_stream_of_grey_and_cmyk_jpegs_decodes_to_the_same_pixels(mode):
    data = encode(photo_like_image(10, (1900, 1850)).convert(mode), "JPEG", quality=90, progressive=True)

    dc_only = model_input._progressive_dc_only_stream(data)

    assert dc_only is not None
    assert np.array_equal(_plain_draft(dc_only), _plain_draft(data))


@pytest.mark.parametrize(
    "name", ["Elephants_5640x3172.jpg", "Infinite-Sea_by_Aury88.jpg", "greentock_by_Peter_Nerlich.jpg"]
)
def test_progressive_dc_only_stream_of_real_photos_decodes_to_the_same_pixels(name):
    data = large_photo(name).read_bytes()

    dc_only = model_input._progressive_dc_only_stream(data)

    assert dc_only is not None
    assert np.array_equal(_plain_draft(dc_only), _plain_draft(data))
    assert np.array_equal(np.asarray(model_input.load_rgb_for_embedding(data)), _plain_draft(data))


def test_baseline_jpegs_and_other_formats_are_left_to_the_normal_decoder():
    assert model_input._progressive_dc_only_stream(photo_jpeg(11)) is None
    assert model_input._progressive_dc_only_stream(encode(photo_like_image(11), "PNG")) is None
    assert model_input._progressive_dc_only_stream(photo_jpeg(11, progressive=True)[:500]) is None


# ------------------------------------------------------------------------------------ embedding sources


def test_embed_sources_reports_bad_items_and_embeds_the_rest(tmp_path, resnet):
    good_path = tmp_path / "good.jpg"
    good_path.write_bytes(photo_jpeg(12))
    good_bytes = photo_jpeg(13, (900, 700), progressive=True)
    sources = [good_path, b"not an image", photo_jpeg(14)[:1500], good_bytes, tmp_path / "missing.jpg"]

    result = resnet.embed_sources(sources, batch_size=2)

    assert result.ok_indices == [0, 3]
    assert set(result.errors) == {1, 2, 4}
    assert "missing.jpg" in result.errors[4]
    expected = resnet.embed_images([model_input.load_rgb_for_embedding(s) for s in (good_path, good_bytes)])
    np.testing.assert_allclose(result.vectors, expected, atol=1e-5)


def test_embed_sources_keeps_input_order_across_batches(resnet):
    sources = [photo_jpeg(seed) for seed in range(7)]

    result = resnet.embed_sources(sources, batch_size=3)

    assert result.ok_indices == list(range(7))
    assert result.errors == {}
    expected = resnet.embed_images([model_input.load_rgb_for_embedding(s) for s in sources])
    np.testing.assert_allclose(result.vectors, expected, atol=1e-5)


def test_embed_sources_of_nothing_is_empty(resnet):
    result = resnet.embed_sources([])

    assert result.vectors.shape == (0, 512)
    assert result.ok_indices == []
    assert result.errors == {}


# --- one pixel normaliser (core.pixels) -------------------------------------------------------------------


def pre_pixels_reference(data: bytes) -> np.ndarray:
    """What embedding decoded before it used core.pixels: draft, exif_transpose, convert("RGB") (8-bit input)."""
    image = Image.open(io.BytesIO(data))
    image.draft("RGB", (model_input.INPUT_SIZE, model_input.INPUT_SIZE))
    image.load()
    upright = ImageOps.exif_transpose(image) or image
    return model_input.model_input_pixels(upright.convert("RGB"))


def eight_bit_inputs() -> dict[str, bytes]:
    """8-bit files of the modes uploads come in, EXIF-rotated ones included, as stored files."""
    photo = photo_like_image(31, (640, 480))
    rotated = Image.Exif()
    rotated[0x0112] = 6
    mirrored = Image.Exif()
    mirrored[0x0112] = 5
    orientation_file = shared_path("data", "exif", "exif-samples", "files/jpg/orientation/landscape_6.jpg")
    return {
        "rgb_jpeg": encode(photo, "JPEG", quality=90),
        "rgb_jpeg_orientation_6": encode(photo, "JPEG", quality=90, exif=rotated.tobytes()),
        "rgb_png_orientation_5": encode(photo, "PNG", exif=mirrored.tobytes()),
        "grey_png": encode(photo.convert("L"), "PNG"),
        "palette_png": encode(photo.convert("P"), "PNG"),
        "cmyk_jpeg": encode(photo.convert("CMYK"), "JPEG", quality=90),
        "real_photo_orientation_6": orientation_file.read_bytes(),
    }


@pytest.mark.parametrize("name", list(eight_bit_inputs()))
def test_eight_bit_inputs_decode_to_the_same_pixels_as_before_core_pixels(name):
    # given an 8-bit file, when embedding decodes it through core.pixels
    data = eight_bit_inputs()[name]
    pixels = model_input.model_input_pixels(model_input.load_rgb_for_embedding(data))
    # then the model sees exactly the pixels it saw before the switch
    np.testing.assert_array_equal(pixels, pre_pixels_reference(data))


def test_eight_bit_inputs_keep_bit_identical_embeddings(resnet):
    inputs = eight_bit_inputs()
    now = resnet.embed_sources(list(inputs.values()), batch_size=len(inputs))
    before = resnet.embed_pixels(np.stack([pre_pixels_reference(data) for data in inputs.values()]))
    assert now.ok_indices == list(range(len(inputs)))
    np.testing.assert_array_equal(now.vectors, before)


def test_sixteen_bit_grey_is_scaled_like_every_other_pixel_consumer():
    # given 16-bit grey (a scan): a ramp from black to white
    ramp = np.tile(np.linspace(0, 65535, 224).astype(np.uint16), (224, 1))
    data = encode(Image.frombytes("I;16", (224, 224), ramp.tobytes()), "PNG")
    # when embedding decodes it, then it sees what core.pixels gives validation and thumbnails
    pixels = model_input.model_input_pixels(model_input.load_rgb_for_embedding(data))
    np.testing.assert_array_equal(pixels, model_input.model_input_pixels(upright_rgb(Image.open(io.BytesIO(data)))))
    # and the ramp is scaled, not clipped: black to white across the width
    assert (pixels[0, 0, 0], pixels[0, -1, 0]) == (0, 255)
    assert 120 <= pixels[0, 112, 0] <= 135
