"""A batch decoded slot by slot as images arrive: the same tensors and errors as images_to_batch."""

from __future__ import annotations

import random
import threading
import time

import pytest
import torch
from fixtures_images import encode, jpeg_with_orientation, photo, quadrants, solid

from conftest import pack_module

images = pack_module("nodes.images")
errors = pack_module("nodes.api.errors")
BatchAssembly = pack_module("nodes.batch_assembly").BatchAssembly


@pytest.fixture
def decodes(monkeypatch):
    """Every decode the assembly runs, as (slot, bytes), in the order they began."""
    seen: list[tuple[int, bytes]] = []
    lock = threading.Lock()
    start_batch, decode_slot = images.start_batch, images.decode_batch_slot

    def spy_start(first, count, **kw):
        with lock:
            seen.append((0, first))
        return start_batch(first, count, **kw)

    def spy_slot(data, batch, index, **kw):
        with lock:
            seen.append((index, data))
        return decode_slot(data, batch, index, **kw)

    monkeypatch.setattr(images, "start_batch", spy_start)
    monkeypatch.setattr(images, "decode_batch_slot", spy_slot)
    return seen


def settle(decodes, count, assembly=None):
    """Wait until ``count`` decodes have begun and the assembly's threads are idle again."""
    deadline = time.monotonic() + 10
    while len(decodes) < count and time.monotonic() < deadline:
        time.sleep(0.005)
    assert len(decodes) == count, decodes
    for *_, future in list((assembly._slots if assembly else {}).values()):
        future.exception(timeout=10)


def mixed_items():
    rgba = photo((48, 64), seed=3).convert("RGBA")
    rgba.putalpha(128)
    return [
        jpeg_with_orientation(quadrants((64, 48)), 6),  # turned by EXIF: the batch is 48x64
        encode(photo((48, 64), seed=1), "PNG"),
        encode(photo((30, 20), seed=2), "JPEG", quality=90),  # another size: resized
        encode(rgba, "PNG"),  # alpha: a mask
        encode(photo((48, 64), seed=4), "WEBP", quality=90),
    ]


def assert_same(got, want):
    assert got[0].shape == want[0].shape and got[1].shape == want[1].shape
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


def test_images_arriving_in_any_order_make_what_images_to_batch_makes(decodes):
    items = mixed_items()
    sources = [f"job {i}" for i in range(len(items))]
    with BatchAssembly(len(items)) as assembly:
        for index in (3, 1, 4, 0, 2):  # slot 0 (which fixes the size) arrives fourth
            assembly.add(index, items[index], sources[index])
        settle(decodes, len(items), assembly)
        got = assembly.result(items, sources)
    assert len(decodes) == len(items)  # every slot was decoded early, none again at the end
    assert sorted(i for i, _ in decodes) == list(range(len(items))) and decodes.index((0, items[0])) == 0
    assert got[0].shape == (5, 64, 48, 3)
    assert_same(got, images.images_to_batch(items, sources=sources))


def test_slots_never_added_are_decoded_by_result(decodes):
    items = mixed_items()
    sources = [f"job {i}" for i in range(len(items))]
    with BatchAssembly(len(items)) as assembly:
        assembly.add(0, items[0], sources[0])
        assembly.add(3, items[3], sources[3])
        settle(decodes, 2, assembly)
        got = assembly.result(items, sources)
    assert sorted(i for i, _ in decodes) == [0, 1, 2, 3, 4]
    assert_same(got, images.images_to_batch(items, sources=sources))


def test_a_slot_decoded_from_other_bytes_is_decoded_again(decodes):
    # A wrong guess of a job's place (a job that gave two images, an id given twice) costs time only.
    items = mixed_items()
    sources = [f"job {i}" for i in range(len(items))]
    stray = encode(solid((250, 0, 0, 90), (48, 64), mode="RGBA"), "PNG")  # its mask must not stay behind
    with BatchAssembly(len(items)) as assembly:
        for index, data in enumerate(items):
            assembly.add(index, stray if index == 2 else data, sources[index])
        settle(decodes, len(items), assembly)
        got = assembly.result(items, sources)
    assert [i for i, _ in decodes].count(2) == 2 and decodes[-1] == (2, items[2])
    assert_same(got, images.images_to_batch(items, sources=sources))
    assert not got[1][2].any()


def test_a_slot_decoded_under_another_name_is_decoded_again(decodes):
    # Its error, if any, must name the image as images_to_batch would.
    items = mixed_items()
    sources = [f"job {i}" for i in range(len(items))]
    with BatchAssembly(len(items)) as assembly:
        for index, data in enumerate(items):
            assembly.add(index, data, "job elsewhere" if index == 3 else sources[index])
        settle(decodes, len(items), assembly)
        got = assembly.result(items, sources)
    assert [i for i, _ in decodes].count(3) == 2
    assert_same(got, images.images_to_batch(items, sources=sources))


def test_sources_that_do_not_match_the_items_are_refused_as_images_to_batch_refuses_them(decodes):
    items = mixed_items()
    with BatchAssembly(len(items)) as assembly:
        for index, data in enumerate(items):
            assembly.add(index, data, f"job {index}")
        with pytest.raises(ValueError, match="sources has 2 entries for 5 images"):
            assembly.result(items, ["job 0", "job 1"])


@pytest.mark.parametrize("first_is", ["other bytes", "missing"])
def test_a_different_count_or_first_image_falls_back_to_a_whole_decode(decodes, first_is):
    items = mixed_items()
    sources = [f"job {i}" for i in range(len(items))]
    with BatchAssembly(len(items) - 1) as assembly:  # guessed one image fewer than came
        if first_is == "other bytes":
            assembly.add(0, encode(solid((0, 0, 0), (10, 10)), "PNG"))
        assembly.add(1, items[1], sources[1])
        got = assembly.result(items, sources)
    assert_same(got, images.images_to_batch(items, sources=sources))


def test_the_first_failure_in_batch_order_is_raised_whatever_the_arrival_order(decodes):
    good = encode(photo((40, 30), seed=5), "PNG")
    items = [good, good[: len(good) // 2], good, b"<html>gateway timeout</html>"]
    sources = [f"job {c}" for c in "abcd"]
    with pytest.raises(errors.ImageDecodeError) as expected:
        images.images_to_batch(items, sources=sources)
    with BatchAssembly(len(items)) as assembly:
        for index in (3, 2, 1, 0):
            assembly.add(index, items[index], sources[index])
        settle(decodes, len(items), assembly)
        with pytest.raises(errors.ImageDecodeError) as raised:
            assembly.result(items, sources)
    assert str(raised.value) == str(expected.value)
    assert "batch index 1 (job b)" in str(raised.value)


def test_a_broken_first_image_is_the_error_even_when_the_others_are_fine(decodes):
    good = encode(photo((40, 30), seed=6), "PNG")
    items = [b"", good, good]
    with BatchAssembly(3) as assembly:
        for index in (2, 1, 0):
            assembly.add(index, items[index], f"job {index}")
        with pytest.raises(errors.ImageDecodeError, match=r"batch index 0 \(job 0\): empty body"):
            assembly.result(items, ["job 0", "job 1", "job 2"])
    assert [i for i, _ in decodes] == [0]  # no size, so nothing else was decoded


def test_images_added_from_many_threads_at_once(decodes):
    items = [encode(photo((64, 40), seed=s), "PNG") for s in range(16)]
    sources = [f"job {i}" for i in range(16)]
    order = list(range(16))
    random.Random(7).shuffle(order)
    with BatchAssembly(16) as assembly:
        threads = [threading.Thread(target=assembly.add, args=(i, items[i], sources[i])) for i in order]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        settle(decodes, 16, assembly)
        got = assembly.result(items, sources)
    assert len(decodes) == 16
    assert_same(got, images.images_to_batch(items, sources=sources))


def test_after_close_nothing_more_is_decoded(decodes):
    data = encode(photo((40, 30), seed=8), "PNG")
    assembly = BatchAssembly(2)
    assembly.add(1, data, "job 1")  # waits for slot 0
    assembly.close()
    assembly.add(0, data, "job 0")
    time.sleep(0.2)
    assert decodes == []


@pytest.fixture
def prepared(monkeypatch):
    """The batches prepare_batch made, as (count, width, height, IMAGE tensor)."""
    made = []
    prepare = images.prepare_batch

    def spy(count, width, height):
        batch = prepare(count, width, height)
        made.append((count, width, height, batch[0]))
        return batch

    monkeypatch.setattr(images, "prepare_batch", spy)
    return made


def test_a_batch_prepared_at_the_right_size_is_the_one_returned(decodes, prepared):
    items = [encode(photo((48, 64), seed=s), "PNG") for s in range(3)]
    rgba = photo((48, 64), seed=9).convert("RGBA")
    rgba.putalpha(40)
    items.append(encode(rgba, "PNG"))  # its mask goes into the prepared (zeroed) masks
    sources = [f"job {i}" for i in range(4)]
    with BatchAssembly(4, expect=(48, 64)) as assembly:
        for index in (2, 0, 3, 1):
            assembly.add(index, items[index], sources[index])
        got = assembly.result(items, sources)
    assert [p[:3] for p in prepared] == [(4, 48, 64)]
    assert got[0].data_ptr() == prepared[0][3].data_ptr()
    assert_same(got, images.images_to_batch(items, sources=sources))


def test_a_wrong_guess_or_a_failed_preparation_only_costs_the_preparation(decodes, prepared, monkeypatch):
    items = mixed_items()  # 48x64 once turned by its EXIF orientation
    sources = [f"job {i}" for i in range(len(items))]
    want = images.images_to_batch(items, sources=sources)
    with BatchAssembly(len(items), expect=(1344, 768)) as assembly:
        for index, data in enumerate(items):
            assembly.add(index, data, sources[index])
        got = assembly.result(items, sources)
    assert len(prepared) == 1 and got[0].data_ptr() != prepared[0][3].data_ptr()
    assert_same(got, want)

    def no_memory(count, width, height):
        raise MemoryError("no room for the prepared batch")

    monkeypatch.setattr(images, "prepare_batch", no_memory)
    with BatchAssembly(len(items), expect=(48, 64)) as assembly:
        for index, data in enumerate(items):
            assembly.add(index, data, sources[index])
        assert_same(assembly.result(items, sources), want)
