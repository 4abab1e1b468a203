"""Captions of a storyboard: one text per scene becomes cues timed to the scenes, as SRT and WebVTT.

A scene's text is split into cues of a readable length (at most two lines of ``LINE_CHARS``), broken
at sentence ends, then commas, then spaces; a script written without spaces (Chinese, Japanese) is
broken between characters. The cues of a scene share its time in proportion to their length, every
boundary on a frame, so the first cue starts on the scene's first frame and the last ends where the
next scene begins: the burned-in caption and the SRT change on the same frame. No torch here.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

LINE_CHARS = 42  # the usual limit of a subtitle line (Netflix, BBC): read in about two seconds
CUE_LINES = 2
SENTENCE_ENDS = ".!?。！？…"
_BREAKS = (re.compile(rf"(?<=[{SENTENCE_ENDS}])\s*"), re.compile(r"(?<=[,;:，、；：—])\s*"), re.compile(r"\s+"))


@dataclass(frozen=True)
class Cue:
    first: int  # frame, inclusive
    last: int  # frame, exclusive
    text: str  # lines separated by "\n"
    scene: object = None  # the scene's label


def text_width(text: str) -> int:
    # A wide character (CJK) takes the room of two narrow ones on screen.
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def join_text(left: str, right: str) -> str:
    wide = text_width(left[-1]) == 2 or text_width(right[0]) == 2  # scripts without spaces are joined without one
    return left + right if wide else f"{left} {right}"


def _pieces(text: str, limit: int, level: int = 0) -> list[str]:
    """``text`` cut into pieces no wider than ``limit``, at the coarsest kind of break that does it."""
    text = " ".join(text.split())
    if text_width(text) <= limit or not text:
        return [text] if text else []
    if level == len(_BREAKS):  # no break left: between characters
        out, line = [], ""
        for ch in text:
            if text_width(line + ch) > limit:
                out.append(line)
                line = ""
            line += ch
        return out + [line] if line else out
    parts = [p for p in _BREAKS[level].split(text) if p]
    if len(parts) == 1:
        return _pieces(text, limit, level + 1)
    out: list[str] = []
    for part in parts:
        for piece in _pieces(part, limit, level + 1):
            joined = join_text(out[-1], piece) if out else piece
            if out and text_width(joined) <= limit:
                out[-1] = joined
            else:
                out.append(piece)
    return out


def split_text(text: str, line_chars: int = LINE_CHARS) -> list[str]:
    """A scene's text as cue texts: each sentence in lines of at most ``line_chars``, two lines to a cue
    (lines joined by "\n"); a cue never runs on into the next sentence."""
    cues = []
    for sentence in _sentences(text):
        lines = _pieces(sentence, line_chars)
        cues += ["\n".join(lines[i:i + CUE_LINES]) for i in range(0, len(lines), CUE_LINES)]
    return cues


def _sentences(text: str) -> list[str]:
    return [p for p in _BREAKS[0].split(" ".join(text.split())) if p]


def scene_cues(text: str, first: int, last: int, scene=None, line_chars: int = LINE_CHARS) -> list[Cue]:
    """The cues of one scene shown on frames [first, last), sharing them in proportion to their length."""
    texts = split_text(text or "", line_chars)
    frames = last - first
    if not texts or frames <= 0:
        return []
    while len(texts) > frames:  # more cues than frames (a long text on a very short scene): fewer, longer cues
        texts = ["\n".join(texts[i:i + 2]) for i in range(0, len(texts), 2)]
    weights = [max(1, text_width(t)) for t in texts]
    total, cues, start, seen = sum(weights), [], first, 0
    for index, (cue_text, weight) in enumerate(zip(texts, weights)):
        seen += weight
        # Each cue keeps at least one frame, and leaves one for each cue after it.
        end = last if index == len(texts) - 1 else first + round(frames * seen / total)
        end = min(max(end, start + 1), last - (len(texts) - 1 - index))
        cues.append(Cue(start, end, cue_text, scene))
        start = end
    return cues


def storyboard_cues(texts: Sequence[str], boundaries: Sequence[int], labels: Sequence = (),
                    line_chars: int = LINE_CHARS) -> list[Cue]:
    """Cues for every scene: ``texts[i]`` over frames [boundaries[i], boundaries[i + 1])."""
    cues: list[Cue] = []
    for index, text in enumerate(texts[: len(boundaries) - 1]):
        label = labels[index] if index < len(labels) else index + 1
        cues += scene_cues(text, boundaries[index], boundaries[index + 1], label, line_chars)
    return cues


def _milliseconds(frame: int, fps: Fraction) -> int:
    exact = Fraction(frame) * 1000 / fps
    return int(exact + Fraction(1, 2))  # half up, as the frames are counted


def _stamp(ms: int, separator: str) -> str:
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{separator}{millis:03d}"


def _fps(fps: float) -> Fraction:
    return Fraction(repr(float(fps)))  # the decimal the fps prints as, as the planner counts frames with it


def to_srt(cues: Sequence[Cue], fps: float, offset: int = 0) -> str:
    """SubRip text; ``offset`` is the frame the video starts at (a trimmed part starts at 0)."""
    rate, blocks = _fps(fps), []
    for number, cue in enumerate(cues, 1):
        start, end = (_stamp(_milliseconds(f - offset, rate), ",") for f in (cue.first, cue.last))
        blocks.append(f"{number}\n{start} --> {end}\n{cue.text}\n")
    return "\n".join(blocks)


def to_vtt(cues: Sequence[Cue], fps: float, offset: int = 0) -> str:
    """WebVTT text (what browsers and most players read beside an MP4)."""
    rate = _fps(fps)
    blocks = ["WEBVTT\n"]
    for cue in cues:
        start, end = (_stamp(_milliseconds(f - offset, rate), ".") for f in (cue.first, cue.last))
        # "-->" in a cue's text would end it early in a WebVTT reader.
        blocks.append(f"{start} --> {end}\n{cue.text.replace('-->', '->')}\n")
    return "\n".join(blocks)


def within(cues: Sequence[Cue], first: int, last: int) -> list[Cue]:
    """The cues of frames [first, last), cut to that window (the captions of a trimmed part)."""
    return [Cue(max(c.first, first), min(c.last, last), c.text, c.scene) for c in cues
            if c.last > first and c.first < last]
