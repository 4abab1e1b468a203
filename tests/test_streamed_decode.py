"""Decoding while converting (``nodes/image_rows.stream_rgb``): exact, taken where it should be, and
safe where it cannot be taken, where it finds out too late, and when the file is damaged."""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest
import torch
from fixtures_images import encode, jpeg_with_orientation, photo, png_with_exif_after_pixels
from PIL import Image, ImageFile, ImageOps

from conftest import pack_module

images = pack_module("nodes.images")
image_rows = pack_module("nodes.image_rows")
errors = pack_module("nodes.api.errors")

FORMATS = {"JPEG": {"quality": 90}, "PNG": {"compress_level": 1}, "WEBP": {"quality": 90}}


def reference(data: bytes) -> np.ndarray:
    """What ComfyUI's LoadImage makes of ``data``: oriented, RGB, astype float32, divided by 255."""
    im = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    return np.array(im.convert("RGB")).astype(np.float32) / np.float32(255.0)


@pytest.fixture
def streams(monkeypatch):
    """The result of every stream_rgb call, so that a test knows which path decoded its images."""
    results: list[bool] = []
    real = image_rows.stream_rgb

    def spy(im, dst, load):
        ok = real(im, dst, load)
        results.append(ok)
        return ok

    monkeypatch.setattr(image_rows, "stream_rgb", spy)
    return results


@pytest.mark.parametrize("fmt", [*FORMATS, "progressive JPEG"])
@pytest.mark.parametrize("size", [(1024, 768), (1001, 517), (257, 1100), (4000, 70)])
def test_streamed_decode_is_exact(streams, fmt, size):
    if fmt == "progressive JPEG":
        fmt, params = "JPEG", {"quality": 90, "progressive": True}
    else:
        params = FORMATS[fmt]
    data = encode(photo(size), fmt, **params)
    decoded = images.decode_image(data)
    assert streams == [True]
    assert decoded.image.shape == (size[1], size[0], 3) and decoded.image.is_contiguous()
    assert np.array_equal(decoded.image.numpy(), reference(data))
    assert decoded.mask is None
    assert (decoded.mode, decoded.format, decoded.width, decoded.height) == ("RGB", fmt, *size)


def test_small_images_are_not_streamed(streams):
    data = encode(photo((200, 150)), "JPEG")
    assert np.array_equal(images.decode_image(data).image.numpy(), reference(data))
    assert streams == []


def test_jpeg_orientation_found_after_decoding_is_still_applied(streams):
    data = jpeg_with_orientation(photo((1024, 600)), 6)
    decoded = images.decode_image(data)
    assert streams == [True]  # decoded while converting, then redone turned
    assert decoded.image.shape == (1024, 600, 3)
    assert np.array_equal(decoded.image.numpy(), reference(data))


def test_png_orientation_stored_after_the_pixels_is_applied(streams):
    data = png_with_exif_after_pixels(photo((800, 500)), 3)
    loaded = Image.open(io.BytesIO(data))
    loaded.load()
    assert loaded.getexif().get(0x0112) == 3  # the file really says "turn 180 degrees", after the pixels
    decoded = images.decode_image(data)
    assert streams == [True]
    expected = np.asarray(photo((800, 500))).astype(np.float32)[::-1, ::-1] / np.float32(255.0)
    assert np.array_equal(decoded.image.numpy(), expected)


def test_files_that_do_not_write_rows_once_in_order_are_not_streamed():
    im = Image.open(io.BytesIO(encode(photo(), "PNG")))
    assert image_rows.can_stream(im, 1024, 768)
    im.info["interlace"] = 1  # Adam7 writes each row in several passes
    assert not image_rows.can_stream(im, 1024, 768)
    alpha = Image.open(io.BytesIO(encode(photo().convert("RGBA"), "PNG")))
    assert not image_rows.can_stream(alpha, 1024, 768)
    assert not image_rows.can_stream(Image.open(io.BytesIO(encode(photo(), "PNG"))), 1024, 767)


def test_tolerated_truncation_is_left_to_the_ordinary_path(streams, monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    data = encode(photo(), "PNG")
    assert np.array_equal(images.decode_image(data).image.numpy(), reference(data))
    assert streams == []


def test_busy_helper_means_the_ordinary_path(streams):
    data = encode(photo(), "JPEG")
    with image_rows._helper_idle:  # another node is decoding at this moment
        decoded = images.decode_image(data)
    assert streams == [False]
    assert np.array_equal(decoded.image.numpy(), reference(data))


def test_rows_that_never_show_as_finished_fall_back_to_the_ordinary_path(streams, monkeypatch):
    # Stands in for a Pillow whose decoder leaves the padding byte alone: the decoder writes to other
    # memory, the marks never change, and the picture must still come out right.
    real_map = image_rows._map_buffer
    decoys = []

    def map_elsewhere(raw, size, *args):
        decoys.append(np.zeros_like(raw))
        return real_map(decoys[-1], size, *args)

    monkeypatch.setattr(image_rows, "_map_buffer", map_elsewhere)
    data = encode(photo(), "PNG")
    decoded = images.decode_image(data)
    assert streams == [False] and len(decoys) == 1
    assert np.array_equal(decoded.image.numpy(), reference(data))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_damaged_file_is_reported_and_the_helper_stops_writing(streams, fmt):
    data = encode(photo(), fmt, **FORMATS[fmt])
    slot = torch.full((768, 1024, 3), 7.0)
    with pytest.raises(errors.ImageDecodeError, match=f"truncated.*{fmt}|{fmt}.*truncated") as info:
        images.decode_into(data[: len(data) * 6 // 10], slot, source="scene 4")
    assert "scene 4" in str(info.value)
    assert streams == [True] or streams == []  # the error may come before or after streaming began
    snapshot = slot.clone()
    time.sleep(0.05)
    assert torch.equal(slot, snapshot), "the helper went on writing after the error was raised"
    assert image_rows._helper_idle.acquire(blocking=False), "the helper was left marked busy"
    image_rows._helper_idle.release()
    good = encode(photo(seed=1), fmt, **FORMATS[fmt])
    assert np.array_equal(images.decode_image(good).image.numpy(), reference(good))


def test_batch_slots_are_streamed_exactly_and_keep_zero_masks(streams):
    items = [encode(photo(seed=i), "JPEG", quality=90) for i in range(3)]
    batch, masks = images.images_to_batch(items)
    # The first image is decoded alone; the others two at a time, so one of a pair may find the
    # helper taken and convert on its own thread.
    assert len(streams) == 3 and streams[0] is True
    assert batch.shape == (3, 768, 1024, 3) and masks.shape == (3, 768, 1024)
    for i, data in enumerate(items):
        assert np.array_equal(batch[i].numpy(), reference(data))
    assert not masks.any()


def test_batch_whose_first_image_turns_takes_the_turned_size(streams):
    items = [jpeg_with_orientation(photo((1024, 600)), 6), encode(photo((600, 1024), seed=2), "PNG")]
    batch, _ = images.images_to_batch(items, fit="error")
    assert batch.shape == (2, 1024, 600, 3)
    for i, data in enumerate(items):
        assert np.array_equal(batch[i].numpy(), reference(data))


def test_decode_into_overwrites_the_whole_slot():
    batch = torch.full((2, 768, 1024, 3), 7.0)
    data = encode(photo(), "WEBP", quality=90)
    assert images.decode_into(data, batch[1]) is None
    assert np.array_equal(batch[1].numpy(), reference(data))
    assert batch[0].eq(7.0).all()


def test_concurrent_decodes_are_each_exact(streams):
    items = [encode(photo(seed=i), fmt, **FORMATS[fmt]) for i, fmt in enumerate(["JPEG", "PNG", "WEBP"] * 2)]
    results: dict[int, np.ndarray] = {}
    start = threading.Barrier(len(items))

    def work(i):
        start.wait()
        results[i] = images.decode_image(items[i]).image.numpy()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(items))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert True in streams  # one of them had the helper; the others did without
    for i, data in enumerate(items):
        assert np.array_equal(results[i], reference(data))


def test_batch_reports_the_first_failure_in_batch_order_and_stops_writing():
    good = encode(photo(seed=5), "PNG", compress_level=1)
    slow_failure = good[: len(good) * 9 // 10]  # fails late, after decoding most of its rows
    quick_failure = b"<html>not an image</html>"
    items = [good, slow_failure, quick_failure, good, good, good]
    Image.init()  # Pillow imports every plugin on its first unknown file; that would make this one slow
    with pytest.raises(errors.ImageDecodeError) as info:
        images.images_to_batch(items, sources=[f"job {i}" for i in range(len(items))])
    assert "batch index 1" in str(info.value) and "job 1" in str(info.value)
    leftover = [t.name for t in threading.enumerate() if t.name.startswith("threedlabs-decode")]
    assert not leftover, f"batch decode threads outlived the error: {leftover}"
