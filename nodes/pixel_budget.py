"""The budget of decoded pixels of one node's images (a job result or a project), in pure Python.

Small files can hold huge pictures (an 8000x8000 PNG of 200 KB is 1 GB as IMAGE), so ``images`` charges
each picture its header's pixel count before decoding it, and a batch its size before making it (every
picture is resized to the first one's). A node run makes one budget from the settings.
"""

from __future__ import annotations

import threading

from .api.errors import PixelBudgetError


class PixelBudget:
    """``megapixels`` (``THREEDLABS_MAX_DECODED_MEGAPIXELS``) for one node. Once a charge is refused, every
    later one and :meth:`check` (called before each download) raise the same error: nothing more is
    downloaded or decoded, whichever worker comes next."""

    def __init__(self, megapixels: int) -> None:
        self.megapixels = megapixels
        self.limit = megapixels * 1_000_000
        self.used = 0
        self._refused = ""
        self._lock = threading.Lock()

    def check(self) -> None:
        if self._refused:
            raise self._error()

    def charge(self, pixels: int, what: str) -> None:
        """Count ``pixels`` more as decoded, or refuse them (``what`` names them in the error)."""
        with self._lock:
            if not self._refused and self.used + pixels <= self.limit:
                self.used += pixels
                return
            self._refused = self._refused or (
                f"{what} is {pixels / 1e6:.1f} Mpx, which would bring the decoded pixels of this node's images to "
                f"{(self.used + pixels) / 1e6:.1f} Mpx")
        raise self._error()

    def fits(self, count: int, width: int, height: int) -> None:
        """Refuse a batch of ``count`` pictures of ``width`` x ``height`` above the budget, before it is made."""
        if count * width * height > self.limit:
            with self._lock:
                self._refused = self._refused or (
                    f"a batch of {count} images at the first one's size, {width}x{height}, is "
                    f"{count * width * height / 1e6:.1f} Mpx")
            raise self._error()

    def _error(self) -> PixelBudgetError:
        return PixelBudgetError(
            f"{self._refused}, past the budget of {self.megapixels} Mpx (THREEDLABS_MAX_DECODED_MEGAPIXELS)",
            hint=f"Raise THREEDLABS_MAX_DECODED_MEGAPIXELS (now {self.megapixels}) if this machine has the memory: "
                 "a megapixel takes 16 MB as IMAGE and MASK. Jobs paid for stay in the journal: queue again "
                 "afterwards to collect them without paying again.")
