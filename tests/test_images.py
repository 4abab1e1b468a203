"""Image bytes -> IMAGE / MASK tensors: modes, orientation, alpha, damaged input, size limits, batches."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures_images import (
    animated_gif,
    encode,
    jpeg_with_orientation,
    png,
    png_header_only,
    quadrants,
)
from PIL import Image

from conftest import pack_module

images = pack_module("nodes.images")
errors = pack_module("nodes.api.errors")

TESTS_DIR = Path(__file__).resolve().parent
# GIF and TIFF are never sent by 3DLabs, so the pack does not open them (tests/test_memory_attacks.py); the
# mode conversions they carry (16/32-bit, float, LAB, YCbCr, CMYK) are still tested through them, on request.
ANY_FORMAT = {"formats": None}


def u8(value: int) -> float:
    """What ComfyUI's LoadImage makes of an 8-bit value."""
    return float(np.float32(value) / np.float32(255))


def rgb_at(image: torch.Tensor, x: int, y: int) -> list[float]:
    return image[y, x].tolist()


def assert_image(decoded, width: int, height: int) -> None:
    image = decoded.image
    assert image.shape == (height, width, 3)
    assert image.dtype == torch.float32
    assert image.is_contiguous()
    assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
    assert (decoded.width, decoded.height) == (width, height)


# --- modes -------------------------------------------------------------------------------------


def test_rgb_png_exact_values():
    im = Image.new("RGB", (3, 2))
    im.putpixel((0, 0), (255, 0, 0))
    im.putpixel((1, 0), (0, 128, 255))
    im.putpixel((2, 1), (1, 2, 3))
    decoded = images.decode_image(encode(im, "PNG"))
    assert_image(decoded, 3, 2)
    assert rgb_at(decoded.image, 0, 0) == [1.0, 0.0, 0.0]
    assert rgb_at(decoded.image, 1, 0) == [0.0, u8(128), 1.0]
    assert rgb_at(decoded.image, 2, 1) == [u8(1), u8(2), u8(3)]
    assert decoded.mask is None
    assert (decoded.mode, decoded.format) == ("RGB", "PNG")


def test_rgba_alpha_becomes_inverted_mask_and_colour_is_not_premultiplied():
    im = Image.new("RGBA", (2, 2), (10, 20, 30, 255))
    im.putpixel((1, 0), (200, 100, 50, 0))
    im.putpixel((0, 1), (200, 100, 50, 64))
    decoded = images.decode_image(encode(im, "PNG"))
    assert_image(decoded, 2, 2)
    assert decoded.mode == "RGBA"
    assert rgb_at(decoded.image, 1, 0) == [u8(200), u8(100), u8(50)]
    assert decoded.mask.shape == (2, 2) and decoded.mask.dtype == torch.float32
    assert decoded.mask[0, 0].item() == 0.0
    assert decoded.mask[0, 1].item() == 1.0
    assert decoded.mask[1, 0].item() == pytest.approx(1 - 64 / 255, abs=1e-6)


def test_l_grey_fills_all_three_channels():
    decoded = images.decode_image(png(128, (4, 3), "L"))
    assert_image(decoded, 4, 3)
    assert decoded.mode == "L"
    assert rgb_at(decoded.image, 3, 2) == [u8(128)] * 3
    assert decoded.mask is None


def test_la_grey_and_alpha():
    im = Image.new("LA", (2, 1), (100, 255))
    im.putpixel((1, 0), (50, 0))
    decoded = images.decode_image(encode(im, "PNG"))
    assert decoded.mode == "LA"
    assert rgb_at(decoded.image, 0, 0) == [u8(100)] * 3
    assert rgb_at(decoded.image, 1, 0) == [u8(50)] * 3
    assert decoded.mask.tolist() == [[0.0, 1.0]]


def _palette_image() -> Image.Image:
    im = Image.new("P", (3, 1))
    im.putpalette([255, 0, 0, 0, 0, 255, 0, 255, 0])
    im.putpixel((1, 0), 1)
    im.putpixel((2, 0), 2)
    return im


def test_palette_without_transparency_is_rgb_without_mask():
    decoded = images.decode_image(encode(_palette_image(), "PNG"))
    assert decoded.mode == "P"
    assert rgb_at(decoded.image, 0, 0) == [1.0, 0.0, 0.0]
    assert rgb_at(decoded.image, 1, 0) == [0.0, 0.0, 1.0]
    assert rgb_at(decoded.image, 2, 0) == [0.0, 1.0, 0.0]
    assert decoded.mask is None


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_palette_transparency_becomes_mask(fmt):
    decoded = images.decode_image(encode(_palette_image(), fmt, transparency=1), **ANY_FORMAT)
    assert decoded.mode == "P"
    assert rgb_at(decoded.image, 0, 0) == [1.0, 0.0, 0.0]
    assert decoded.mask.tolist() == [[0.0, 1.0, 0.0]]


def test_rgb_with_transparent_colour_key_becomes_mask():
    im = Image.new("RGB", (2, 1), (9, 9, 9))
    im.putpixel((1, 0), (1, 2, 3))
    decoded = images.decode_image(encode(im, "PNG", transparency=(1, 2, 3)))
    assert decoded.mask.tolist() == [[0.0, 1.0]]


def test_one_bit():
    im = Image.new("1", (2, 1), 0)
    im.putpixel((1, 0), 1)
    decoded = images.decode_image(encode(im, "PNG"))
    assert decoded.mode == "1"
    assert rgb_at(decoded.image, 0, 0) == [0.0, 0.0, 0.0]
    assert rgb_at(decoded.image, 1, 0) == [1.0, 1.0, 1.0]


@pytest.mark.parametrize(("mode", "fmt"), [("I;16", "PNG"), ("I;16B", "TIFF")])
def test_sixteen_bit_scaled_by_65535(mode, fmt):
    values = np.array([[0, 32768, 65535]], dtype=">u2" if mode.endswith("B") else "<u2")
    data = encode(Image.frombytes(mode, (3, 1), values.tobytes()), fmt)
    decoded = images.decode_image(data, **ANY_FORMAT)
    assert decoded.mode == mode
    assert_image(decoded, 3, 1)
    assert rgb_at(decoded.image, 0, 0) == [0.0] * 3
    assert decoded.image[0, 1, 0].item() == pytest.approx(32768 / 65535, abs=1e-6)
    assert rgb_at(decoded.image, 2, 0) == [1.0] * 3


def test_int32_within_16_bits_is_scaled_as_16_bit():
    im = Image.fromarray(np.array([[-5, 0, 32768, 65535]], dtype=np.int32), "I")
    decoded = images.decode_image(encode(im, "TIFF"), **ANY_FORMAT)
    assert decoded.mode == "I"
    assert decoded.image[0, :, 0].tolist() == pytest.approx([0.0, 0.0, 32768 / 65535, 1.0], abs=1e-6)


def test_int32_beyond_16_bits_is_scaled_by_int32_max():
    im = Image.fromarray(np.array([[0, 2**30, 2**31 - 1]], dtype=np.int32), "I")
    decoded = images.decode_image(encode(im, "TIFF"), **ANY_FORMAT)
    assert decoded.image[0, :, 1].tolist() == pytest.approx([0.0, 0.5, 1.0], abs=1e-6)


def test_float_is_clipped_and_nan_is_zero():
    im = Image.fromarray(np.array([[-0.5, 0.25, 1.5, np.nan]], dtype=np.float32), "F")
    decoded = images.decode_image(encode(im, "TIFF"), **ANY_FORMAT)
    assert decoded.mode == "F"
    assert decoded.image[0, :, 2].tolist() == [0.0, 0.25, 1.0, 0.0]


@pytest.mark.parametrize("fmt", ["TIFF", "JPEG"])
def test_cmyk_becomes_rgb(fmt):
    params = {"quality": 100} if fmt == "JPEG" else {}
    data = encode(Image.new("CMYK", (8, 8), (255, 0, 0, 0)), fmt, **params)
    decoded = images.decode_image(data, **ANY_FORMAT)
    assert decoded.mode == "CMYK"
    assert rgb_at(decoded.image, 4, 4) == pytest.approx([0.0, 1.0, 1.0], abs=2 / 255)


def test_lab_becomes_rgb():
    decoded = images.decode_image(encode(Image.new("LAB", (2, 2), (255, 128, 128)), "TIFF"), **ANY_FORMAT)
    assert decoded.mode == "LAB"
    assert rgb_at(decoded.image, 0, 0) == pytest.approx([1.0, 1.0, 1.0], abs=2 / 255)


def test_ycbcr_tiff_becomes_rgb():
    decoded = images.decode_image(encode(Image.new("YCbCr", (2, 2), (128, 128, 128)), "TIFF"), **ANY_FORMAT)
    assert decoded.mode == "YCbCr"
    assert rgb_at(decoded.image, 1, 1) == [u8(128)] * 3


def _big_gradient(mode: str) -> Image.Image:
    # 2048x1024 (2.1 Mpx): large enough for the two-thread, block-by-block conversion path.
    y, x = np.mgrid[0:1024, 0:2048]
    bands = {"L": [x % 256], "LA": [x % 256, y % 256], "RGB": [x % 256, y % 256, (x + y) % 256]}
    bands["RGBA"] = [*bands["RGB"], (x * 7 + y) % 256]
    arr = np.stack(bands[mode], axis=-1).astype(np.uint8)
    return Image.fromarray(arr[..., 0] if mode == "L" else arr, mode)


def _reference(im: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    arr = np.asarray(im).astype(np.float32) / np.float32(255)
    if arr.ndim == 2:
        arr = arr[..., None]
    colour = arr[..., :1].repeat(3, -1) if im.mode in ("L", "LA") else arr[..., :3]
    mask = 1.0 - arr[..., -1] if im.mode in ("LA", "RGBA") else None
    return colour, mask


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA"])
def test_large_images_convert_exactly(mode):
    im = _big_gradient(mode)
    decoded = images.decode_image(encode(im, "PNG", compress_level=1))
    colour, mask = _reference(im)
    assert decoded.image.shape == (1024, 2048, 3)
    assert np.array_equal(decoded.image.numpy(), colour)
    if mask is None:
        assert decoded.mask is None
    else:
        assert np.allclose(decoded.mask.numpy(), mask, atol=1e-6)


# --- formats and frames --------------------------------------------------------------------------


def test_lossless_webp_exact_with_alpha():
    im = Image.new("RGBA", (4, 4), (10, 20, 30, 255))
    im.putpixel((3, 3), (40, 50, 60, 0))
    decoded = images.decode_image(encode(im, "WEBP", lossless=True))
    assert decoded.format == "WEBP"
    assert rgb_at(decoded.image, 0, 0) == [u8(10), u8(20), u8(30)]
    assert decoded.mask[3, 3].item() == 1.0 and decoded.mask[0, 0].item() == 0.0


def test_lossy_webp_and_jpeg_decode_close_to_source():
    for data in (encode(quadrants(), "WEBP", quality=95), encode(quadrants(), "JPEG", quality=95)):
        decoded = images.decode_image(data)
        assert_image(decoded, 40, 20)
        assert rgb_at(decoded.image, 5, 5) == pytest.approx([1.0, 0.0, 0.0], abs=0.05)
        assert rgb_at(decoded.image, 35, 15) == pytest.approx([1.0, 1.0, 1.0], abs=0.05)


def test_animated_gif_takes_the_first_frame():
    decoded = images.decode_image(animated_gif([(255, 0, 0), (0, 0, 255), (0, 255, 0)]), **ANY_FORMAT)
    assert_image(decoded, 6, 4)
    assert rgb_at(decoded.image, 3, 2) == [1.0, 0.0, 0.0]


def test_animated_webp_takes_the_first_frame():
    frames = [Image.new("RGB", (6, 4), c) for c in ((0, 255, 0), (255, 0, 0))]
    data = encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    decoded = images.decode_image(data)
    assert decoded.image.shape == (4, 6, 3)
    assert rgb_at(decoded.image, 0, 0) == [0.0, 1.0, 0.0]


# --- EXIF orientation ----------------------------------------------------------------------------


def test_exif_orientation_6_rotates_clockwise():
    # Orientation 6: the camera was turned; the picture must be rotated 90 degrees clockwise.
    decoded = images.decode_image(jpeg_with_orientation(quadrants((40, 20)), 6))
    assert (decoded.width, decoded.height) == (20, 40)
    assert decoded.image.shape == (40, 20, 3)
    assert rgb_at(decoded.image, 15, 5) == pytest.approx([1.0, 0.0, 0.0], abs=0.06)  # red: top-right
    assert rgb_at(decoded.image, 5, 5) == pytest.approx([0.0, 0.0, 1.0], abs=0.06)  # blue: top-left
    assert rgb_at(decoded.image, 15, 35) == pytest.approx([0.0, 1.0, 0.0], abs=0.06)  # green: bottom-right


def test_exif_orientation_8_rotates_counter_clockwise():
    decoded = images.decode_image(jpeg_with_orientation(quadrants((40, 20)), 8))
    assert decoded.image.shape == (40, 20, 3)
    assert rgb_at(decoded.image, 5, 35) == pytest.approx([1.0, 0.0, 0.0], abs=0.06)  # red: bottom-left
    assert rgb_at(decoded.image, 5, 5) == pytest.approx([0.0, 1.0, 0.0], abs=0.06)  # green: top-left


# --- damaged or wrong input ------------------------------------------------------------------------


def test_empty_body_names_the_source():
    with pytest.raises(errors.ImageDecodeError) as info:
        images.decode_image(b"", source="https://cdn.example/a.png")
    assert "https://cdn.example/a.png" in str(info.value)
    assert "empty body" in str(info.value)


def test_html_is_not_an_image_and_says_it_looks_like_html():
    page = b"\n<!DOCTYPE html><html><head><title>Sign in</title></head><body>...</body></html>"
    with pytest.raises(errors.ImageDecodeError) as info:
        images.decode_image(page, source="result 1")
    message = str(info.value)
    assert "result 1" in message and "not an image" in message
    assert "HTML" in message and "Sign in" in message


def test_json_is_not_an_image_and_says_it_looks_like_json():
    with pytest.raises(errors.ImageDecodeError, match="JSON") as info:
        images.decode_image(b'{"error": "expired"}')
    assert "not an image" in str(info.value)


def test_binary_garbage_shows_leading_bytes():
    with pytest.raises(errors.ImageDecodeError, match="not an image.*00 01 02"):
        images.decode_image(bytes(range(64)))


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_png(keep):
    data = encode(Image.effect_noise((64, 64), 40).convert("RGB"), "PNG")
    with pytest.raises(errors.ImageDecodeError, match="truncated") as info:
        images.decode_image(data[: int(len(data) * keep)], source="scene 3")
    assert "PNG" in str(info.value) and "scene 3" in str(info.value)


def test_png_cut_inside_its_header_is_reported_as_truncated_png():
    with pytest.raises(errors.ImageDecodeError, match="truncated or corrupt PNG"):
        images.decode_image(png((1, 2, 3))[:20])


def test_truncated_jpeg():
    data = encode(Image.effect_noise((64, 64), 40).convert("RGB"), "JPEG")
    with pytest.raises(errors.ImageDecodeError, match="truncated"):
        images.decode_image(data[: len(data) // 2])


def test_image_errors_are_image_errors():
    with pytest.raises(errors.ImageError):
        images.decode_image(b"nope")


# --- size limits --------------------------------------------------------------------------------


def test_decompression_bomb_is_refused_from_its_header_quickly():
    bomb = png_header_only(20000, 20000)
    assert len(bomb) < 100
    before = Image.MAX_IMAGE_PIXELS
    started = time.perf_counter()
    with pytest.raises(errors.ImageTooLargeError) as info:
        images.decode_image(bomb, source="bomb.png")
    assert time.perf_counter() - started < 5.0  # refused from the header: decoding 400 Mpx takes far longer
    message = str(info.value)
    assert "20000x20000" in message and str(images.MAX_PIXELS_DEFAULT) in message and "bomb.png" in message
    assert Image.MAX_IMAGE_PIXELS == before


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("size", [(9000, 8000), (10000, 10000)])
def test_over_our_limit_but_under_pillows_refusal(size):
    # 72 Mpx is under Pillow's warning threshold; 100 Mpx is between its warning and its refusal.
    with pytest.raises(errors.ImageTooLargeError, match=f"{size[0]}x{size[1]}"):
        images.decode_image(png_header_only(*size))


def test_pillow_bomb_warning_escalated_to_error_is_still_too_large():
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(errors.ImageTooLargeError, match="10000x10000"):
            images.decode_image(png_header_only(10000, 10000))


def test_our_limit_governs_not_pillows_global():
    # Allowed by max_pixels although Pillow alone would refuse it: the header passes and decoding
    # then fails on the empty pixel data, not on size.
    with pytest.raises(errors.ImageDecodeError):
        images.decode_image(png_header_only(20000, 20000), max_pixels=500_000_000)


def test_small_max_pixels_on_a_normal_image():
    data = png((1, 2, 3), (100, 100))
    with pytest.raises(errors.ImageTooLargeError) as info:
        images.decode_image(data, max_pixels=5000)
    assert "100x100" in str(info.value) and "5000" in str(info.value)
    assert images.decode_image(data, max_pixels=10000).image.shape == (100, 100, 3)


# --- batches -----------------------------------------------------------------------------------


COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (10, 20, 30)]


def test_batch_of_same_size_keeps_order_and_zero_masks():
    items = [png(c, (8, 4)) for c in COLOURS]
    batch, masks = images.images_to_batch(items)
    assert batch.shape == (4, 4, 8, 3) and batch.dtype == torch.float32 and batch.is_contiguous()
    assert masks.shape == (4, 4, 8) and masks.dtype == torch.float32
    for i, colour in enumerate(COLOURS):
        assert rgb_at(batch[i], 7, 3) == [u8(v) for v in colour]
    assert not masks.any()


def test_batch_masks_follow_each_images_alpha():
    rgba = Image.new("RGBA", (8, 4), (5, 5, 5, 255))
    rgba.putpixel((2, 1), (5, 5, 5, 0))
    batch, masks = images.images_to_batch([png((1, 1, 1)), encode(rgba, "PNG"), png((2, 2, 2))])
    assert not masks[0].any() and not masks[2].any()
    assert masks[1, 1, 2].item() == 1.0
    assert masks[1].sum().item() == 1.0


def test_resize_policy_takes_the_first_size():
    batch, masks = images.images_to_batch([png((255, 0, 0), (8, 4)), png((0, 0, 255), (3, 7))])
    assert batch.shape == (2, 4, 8, 3)
    assert torch.allclose(batch[1], torch.tensor([0.0, 0.0, 1.0]).expand(4, 8, 3))
    assert not masks.any()


def test_batch_decode_error_names_the_failing_item():
    with pytest.raises(errors.ImageDecodeError, match="batch index 1"):
        images.images_to_batch([png((0, 0, 0)), b"<html>gone</html>"])


def test_an_empty_batch_is_a_validation_error():
    with pytest.raises(errors.ValidationError):
        images.images_to_batch([])


def test_batch_is_filled_in_place_without_stacking(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("a batch must not be assembled by stacking decoded images")

    for module, name in ((torch, "stack"), (torch, "cat"), (np, "stack"), (np, "concatenate")):
        monkeypatch.setattr(module, name, forbidden)
    batch, _ = images.images_to_batch([png(c, (8, 4)) for c in COLOURS])
    assert batch.shape[0] == len(COLOURS)


def test_write_fills_the_given_slot_only():
    batch, masks = torch.full((3, 4, 8, 3), 7.0), torch.zeros((3, 4, 8))
    pointer = batch[1].data_ptr()
    images.write(images.decode(png((0, 0, 255), (8, 4))), batch[1], masks[1])
    assert batch[1].data_ptr() == pointer
    assert torch.equal(batch[1], torch.tensor([0.0, 0.0, 1.0]).expand(4, 8, 3))
    assert batch[0].eq(7.0).all() and batch[2].eq(7.0).all() and not masks.any()
    images.write(images.decode(encode(Image.new("RGBA", (8, 4), (255, 255, 255, 0)), "PNG")), batch[2], masks[2])
    assert masks[2].eq(1.0).all() and batch[2].eq(1.0).all() and not masks[:2].any()


def test_write_resizes_to_the_slot_with_the_alpha():
    rgba = Image.new("RGBA", (2, 2), (255, 255, 255, 255))
    out, mask = torch.empty((4, 8, 3)), torch.ones((4, 8))
    images.write(images.decode(encode(rgba, "PNG")), out, mask)
    assert out.eq(1.0).all() and not mask.any()


def _pixels(colour, size=(8, 4)):
    return images.decode(png(colour, size))


def test_a_batch_filled_in_any_order_is_the_batch_in_job_order():
    items = [png(c, (8, 4)) for c in COLOURS]
    want_images, want_masks = images.images_to_batch(items)
    batch = images.Batch(len(items))
    for i in (3, 1, 0, 2):  # pictures before the first one wait for it; then each is written as it comes
        batch.put(i, [images.decode(items[i])])
        assert (batch.images is None) == (i in (3, 1))
    got_images, got_masks = batch.result()
    assert torch.equal(got_images, want_images) and torch.equal(got_masks, want_masks)


def test_a_batch_takes_the_first_jobs_size_and_lays_out_jobs_with_no_or_several_pictures():
    batch = images.Batch(4)
    batch.put(2, [_pixels((0, 0, 255), (3, 7)), _pixels((0, 255, 0))])
    batch.put(1, [_pixels((255, 0, 0))])
    batch.put(3, [_pixels((10, 20, 30))])
    assert batch.result() is None  # job 0 has not given its pictures yet
    batch.put(0, [])
    got, masks = batch.result()
    assert got.shape == (4, 4, 8, 3) and masks.shape == (4, 4, 8)  # job 1's picture is the first one
    assert [rgb_at(got[i], 0, 0) for i in range(4)] == [[u8(v) for v in c] for c in
                                                         [(255, 0, 0), (0, 0, 255), (0, 255, 0), (10, 20, 30)]]


def test_a_batch_of_jobs_without_pictures_is_none():
    batch = images.Batch(2)
    batch.put(1, [])
    batch.put(0, [])
    assert batch.result() is None


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc peak-RSS reset")
def test_batch_peak_memory_stays_near_the_output_size():
    # Measured in a fresh interpreter: peak RSS (VmHWM, reset first) over the RSS before the call.
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(TESTS_DIR)!r})
        from conftest import pack_module
        from fixtures_images import png
        images = pack_module("nodes.images")

        def status(key):
            for line in open("/proc/self/status"):
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024

        items = [png((i * 15, 255 - i * 15, 128), (1024, 1024)) for i in range(16)]
        images.images_to_batch(items[:1])
        before = status("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        batch, masks = images.images_to_batch(items)
        peak = status("VmHWM")
        print(peak - before, batch.numel() * batch.element_size())
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=dict(os.environ)
    )
    assert result.returncode == 0, result.stderr
    extra, output_bytes = map(int, result.stdout.split()[-2:])
    assert output_bytes == 16 * 1024 * 1024 * 3 * 4
    mib = 2**20
    assert extra <= 1.25 * output_bytes, f"peak +{extra / mib:.0f} MiB for {output_bytes / mib:.0f} MiB"


# --- placeholders and encoding ----------------------------------------------------------------------


def test_empty_image_is_zeros_of_the_asked_shape():
    image, mask = images.empty_image()
    assert image.shape == (1, 64, 64, 3) and mask.shape == (1, 64, 64)
    assert not image.any() and not mask.any()
    image, mask = images.empty_image(width=16, height=8, batch=3)
    assert image.shape == (3, 8, 16, 3) and mask.shape == (3, 8, 16)
    with pytest.raises(errors.ValidationError):
        images.empty_image(width=0)


def test_empty_mask_matches_placeholder_shape():
    mask = images.empty_mask(3, 32, 16)
    assert mask.shape == (3, 16, 32) and mask.dtype == torch.float32 and not mask.any()


def test_placeholder_images_are_mid_grey():
    plain = images.placeholder_images(3, 32, 16)
    assert plain.shape == (3, 16, 32, 3) and plain.dtype == torch.float32
    assert plain.eq(0.5).all()
    with pytest.raises(errors.ValidationError):
        images.placeholder_images(1, 0, 16)


def test_tensor_to_png_bytes_round_trips_exactly():
    pixels = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    decoded = images.decode_image(encode(Image.fromarray(pixels, "RGB"), "PNG"))
    data = images.tensor_to_png_bytes(decoded.image)
    assert data.startswith(b"\x89PNG")
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), pixels)
    assert images.tensor_to_png_bytes(decoded.image[None]) == data
    with pytest.raises(ValueError):
        images.tensor_to_png_bytes(torch.zeros((2, 4, 4, 3)))
