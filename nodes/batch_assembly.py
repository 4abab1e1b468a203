"""An IMAGE batch decoded slot by slot while the jobs that make it are still running.

Image Generate and Job Wait wait for lists of jobs and fetch each finished job's image at once
(``nodes/downloads.py``). Decoding it at once as well leaves only the last image to decode when the
last job ends, instead of the whole batch (a dozen 1344x768 images take 0.15-0.4 s here).

The result is exactly what :func:`images.images_to_batch` makes of the same bytes. The batch takes the
first image's size, so slot 0 is decoded first and images that arrive before it wait (their bytes are
held by the downloads anyway). Callers place images by their guess of the final order (one image per
job, in job order); :meth:`BatchAssembly.result` keeps an early slot only when it was decoded from the
very bytes object that ends up in that place, and decodes the rest then, so a wrong guess costs time,
never a wrong picture. Bytes in, tensors out: no HTTP here.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor

import torch

from . import images

Batch = tuple[torch.Tensor, torch.Tensor]


class BatchAssembly:
    """A batch of ``count`` images filled as their bytes arrive; use as a context manager.

    :meth:`add` may be called from any thread and returns at once (decoding runs on threads of this
    object). Leaving the context drops decodes not yet begun, after an error or a Cancel.
    """

    def __init__(
        self,
        count: int,
        *,
        fit: str = "resize",
        max_pixels: int = images.MAX_PIXELS_DEFAULT,
        expect: tuple[int, int] | None = None,
    ) -> None:
        """``expect`` (width, height), when the images' size can be guessed, prepares the batch's memory
        at once, while the jobs run; a wrong guess only wastes that preparation."""
        self._count = count
        self._fit = fit
        self._max_pixels = max_pixels
        self._lock = threading.RLock()  # add() holds it while starting the pool
        self._open = True
        self._batch: Batch | None = None
        self._waiting: dict[int, tuple[bytes, str]] = {}  # arrived before slot 0 fixed the batch's size
        self._slots: dict[int, tuple[bytes, str, Future]] = {}  # slot -> (bytes, source, their decode)
        self._pool: ThreadPoolExecutor | None = None
        self._prepared: Future | None = None
        if expect is not None and count > 0:
            self._prepared = self._executor().submit(images.prepare_batch, count, *expect)

    def __enter__(self) -> BatchAssembly:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def add(self, index: int, data: bytes, source: str = "") -> None:
        """Decode ``data`` into slot ``index`` soon. Each slot takes the first bytes given for it."""
        with self._lock:
            if not self._open or not 0 <= index < self._count or index in self._slots or index in self._waiting:
                return
            if index == 0:
                self._slots[0] = (data, source, self._executor().submit(self._start, data, source))
            elif self._batch is None:
                self._waiting[index] = (data, source)
            else:
                self._slots[index] = (data, source, self._executor().submit(self._fill, self._batch, index, data,
                                                                            source))

    def add_job(self, index: int, data: list[bytes], sources: list[str]) -> None:
        """A job's images, the job being ``index``-th: placed only when it gave exactly one image."""
        if len(data) == 1:  # the places assume one image per job; other jobs are decoded at the end
            self.add(index, data[0], sources[0])

    def result(self, items: list[bytes], sources: list[str]) -> Batch:
        """The batch of ``items`` (every image's bytes, in batch order), as images_to_batch makes it.

        Slots decoded early from these same bytes (and source) are kept, the others are decoded now;
        the first failure in batch order is raised, as images_to_batch raises it.
        """
        with self._lock:
            self._open = False  # from here on nothing is added; what is queued still runs
            self._waiting.clear()
            slots, self._slots = self._slots, {}
        if not (items and len(items) == self._count == len(sources) and _same(slots.get(0), items, sources, 0)):
            del slots  # an early batch of the wrong shape is not kept while the right one is made
            self.close()
            return images.images_to_batch(items, fit=self._fit, max_pixels=self._max_pixels, sources=sources)
        try:
            batch = slots.pop(0)[2].result()  # slot 0's failure is the first in batch order
            decodes = []
            for index in range(1, len(items)):
                early = slots.pop(index, None)
                if _same(early, items, sources, index):
                    decodes.append(early[2])
                    continue
                if early is not None:
                    early[2].exception()  # a decode of other bytes may still be writing into this slot
                    batch[1][index].zero_()  # and may have left a mask the right picture would not write
                decodes.append(self._executor().submit(self._fill, batch, index, items[index], sources[index]))
            for decode in decodes:
                decode.result()
        finally:
            self.close()
        return batch

    def close(self) -> None:
        """Stop taking images and drop the decodes not begun; those running finish on their own."""
        with self._lock:
            self._open = False
            self._waiting.clear()
            self._slots.clear()
            self._batch = None
            self._prepared = None  # a batch prepared in vain is freed now
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def _start(self, data: bytes, source: str) -> Batch:
        with self._lock:
            prepared, self._prepared = self._prepared, None
        ready = None
        # Still being prepared (on the other thread): waiting for it costs no more than starting anew.
        if prepared is not None and not prepared.cancelled() and prepared.exception() is None:
            ready = prepared.result()
        batch = images.start_batch(data, self._count, fit=self._fit, max_pixels=self._max_pixels, source=source,
                                   prepared=ready)
        del prepared, ready
        with self._lock:
            if self._open:  # after result() or close() the slots left are decoded there, or not at all
                self._batch = batch
                for index, (early, early_source) in sorted(self._waiting.items()):
                    future = self._executor().submit(self._fill, batch, index, early, early_source)
                    self._slots[index] = (early, early_source, future)
                self._waiting.clear()
        return batch

    def _fill(self, batch: Batch, index: int, data: bytes, source: str) -> None:
        images.decode_batch_slot(data, batch, index, fit=self._fit, max_pixels=self._max_pixels, source=source)

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=images.BATCH_WORKERS, thread_name_prefix="3dlabs-decode")
            return self._pool


def _same(early: tuple[bytes, str, Future] | None, items: list[bytes], sources: list[str], index: int) -> bool:
    """Whether a slot decoded early holds what ``items[index]`` would give, error label included."""
    return early is not None and early[0] is items[index] and early[1] == sources[index]
