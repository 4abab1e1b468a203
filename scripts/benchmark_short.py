"""Benchmark of the finished short: a vertical storyboard with narrations, a music bed and burned-in captions.

    .venv/bin/python scripts/benchmark_short.py [--quick]

A 5-minute 1080x1920 24 fps storyboard of 12 scenes (slow zoom in, crossfades), saved through the VIDEO's
``save_to`` as SaveVideo calls it, twice, each in its own child process whose resident memory is sampled
every 5 ms:
(a) with 12 narrations (tones of known onset and frequency, at 22,050 Hz mono and 44,100 Hz stereo; half of
    them longer than their planned scene, which they lengthen), a 37 s music bed at 44,100 Hz stereo
    (looped, ducked, faded) and captions burned in: peak extra memory, the file's frames and duration, the
    audio stream's length, and each narration's onset in the decoded file;
(b) the same storyboard (the same scene lengths) without captions and sound: the baseline of the same run.
The figure is (a)'s time per frame over (b)'s. --quick makes both 30 s. Prints one table.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchmark_video import PeakRss, scene_images  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TARGET_MEMORY = 1024**3
TARGET_RATIO = 1.2
SCENES, FPS, WIDTH, HEIGHT, PAUSE = 12, 24.0, 1080, 1920, 0.5
TEXT = ("The keeper's cat climbs the spiral stairs as the fog rolls in from the sea. Far out, a ship's bell "
        "rings, lost and slow, and the cat's green eyes turn towards the sound.")


def frequency(scene: int) -> float:
    return 400.0 + 230.0 * scene


def narration(scene: int, seconds: float):
    """A tone of the scene's frequency after 0.1 s of silence: the onset is known to the sample."""
    import torch

    rate, channels = (22050, 1) if scene % 2 else (44100, 2)
    t = torch.arange(round(seconds * rate)) / rate
    wave = 0.4 * torch.sin(2 * math.pi * frequency(scene) * t)
    wave[: round(0.1 * rate)] = 0.0
    return {"waveform": wave.repeat(1, channels, 1), "sample_rate": rate}


def inputs(seconds: float, full: bool) -> dict:
    """Scenes of seconds / 12 each: even ones planned that long with a shorter narration, odd ones planned
    shorter and lengthened by a narration (+ pause) to that length, so the total stays ``seconds``."""
    import torch

    sys.path.insert(0, str(ROOT / "scripts"))
    from demo import load_pack

    _, mod = load_pack()
    models = mod("nodes.api.models")
    each = seconds / SCENES
    planned = [each if k % 2 == 0 else each * 0.6 for k in range(SCENES)]
    spoken = [each * 0.8 if k % 2 == 0 else each - PAUSE for k in range(SCENES)]
    plan = models.ScenePlan(scenes=[models.Scene(number=k + 1, image_prompt="p", narration=TEXT, duration=d)
                                    for k, d in enumerate(planned)])
    args = dict(images=scene_images(SCENES), scene_plan=plan, fps=FPS, motion="slow zoom in",
                transition="crossfade", crossfade_seconds=0.5, width=0, height=0, seconds_per_scene=each,
                size=f"{WIDTH}x{HEIGHT}", fit="auto", narration_pause=PAUSE)
    if full:
        t = torch.arange(37 * 44100) / 44100
        music = torch.stack([torch.sin(2 * math.pi * 110 * t), torch.sin(2 * math.pi * 165 * t)]) * 0.3
        args.update(narration=[narration(k, s) for k, s in enumerate(spoken)],
                    music={"waveform": music[None], "sample_rate": 44100}, captions="subtitle files and burned in",
                    caption_box=True)
    else:  # the same timing, without sound or captions
        args["scene_plan"] = models.ScenePlan(scenes=[models.Scene(number=k + 1, image_prompt="p", duration=each)
                                                      for k in range(SCENES)])
    return args, mod


def onsets(path: str, starts: list[float]) -> list[float]:
    """Each narration's onset in the decoded file minus its scene's start + 0.1 s, in seconds."""
    import av
    import numpy as np

    with av.open(path) as container:
        rate = container.streams.audio[0].rate
        samples = np.concatenate([f.to_ndarray() for f in container.decode(audio=0)], axis=1).mean(axis=0)
    window = rate // 200
    out = []
    for scene, start in enumerate(starts):
        lo = max(0, int((start - 0.5) * rate))
        part = samples[lo: lo + 2 * rate]
        t = np.arange(window) / rate
        probe = np.exp(-2j * np.pi * frequency(scene) * t)
        blocks = part[: len(part) // window * window].reshape(-1, window)
        energy = np.abs(blocks @ probe) / window
        first = int(np.argmax(energy > 0.5 * energy.max()))
        out.append(lo / rate + first * window / rate - (start + 0.1))
    return out


def child(mode: str, seconds: float, out: str) -> dict:
    import av

    args, mod = inputs(seconds, full=mode == "full")
    video_node = mod("nodes.storyboard.video_node")
    vid = video_node.ThreeDLabsStoryboardVideo().run(**args)["result"][0]
    total = vid.get_frame_count()
    memory = PeakRss()
    start = time.perf_counter()
    vid.save_to(out, format="auto", codec="auto", metadata={"prompt": {"benchmark": True}})
    elapsed = time.perf_counter() - start
    result = dict(mode=mode, frames=total, seconds=elapsed, extra_bytes=memory.extra(),
                  expected_seconds=str(Fraction(total) / Fraction(repr(FPS))))
    with av.open(out) as container:
        video = container.streams.video[0]
        result["file_frames"] = sum(1 for packet in container.demux(video) if packet.size)
        result["file_seconds"] = str(video.duration * video.time_base)
    if mode == "full":
        with av.open(out) as container:
            result["audio_samples"] = sum(f.samples for f in container.decode(audio=0))
            result["audio_rate"] = container.streams.audio[0].rate
        starts = [edge / FPS for edge in vid.plan.boundaries[:-1]]
        result["onset_errors"] = onsets(out, starts)
        result["srt"] = Path(out).with_suffix(".srt").is_file()
    return result


def run_child(mode: str, seconds: float, out_dir: Path) -> dict:
    out = out_dir / f"short-{mode}-{seconds:g}s.mp4"
    proc = subprocess.run([sys.executable, __file__, "--child", mode, "--seconds", str(seconds), "--out", str(out)],
                          capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{mode} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30 s instead of 5 minutes")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--out-dir", default="/tmp/3dlabs-benchmark-short", help="where the videos are written")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.seconds, args.out)))
        return 0
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = 1 / FPS
    seconds = 30.0 if args.quick else 300.0
    plain, r = run_child("plain", seconds, out_dir), run_child("full", seconds, out_dir)
    fits = r["extra_bytes"] <= TARGET_MEMORY
    exact = r["file_frames"] == r["frames"] == round(seconds * FPS) and r["file_seconds"] == r["expected_seconds"]
    audio_s = r["audio_samples"] / r["audio_rate"]
    audio_ok = abs(audio_s - seconds) <= 1024 / r["audio_rate"]  # to one AAC frame
    worst = max(abs(e) for e in r["onset_errors"])
    per = {x["mode"]: x["seconds"] / x["frames"] * 1000 for x in (plain, r)}
    ratio = per["full"] / per["plain"]
    ok = fits and exact and audio_ok and worst <= frame and r["srt"] and ratio <= TARGET_RATIO
    rows = [
        (f"(a) {seconds:g} s {WIDTH}x{HEIGHT}, 12 narrations, music, burned-in captions: peak extra",
         f"{r['extra_bytes'] / 2**20:,.0f} MiB", f"<= {TARGET_MEMORY / 2**20:,.0f} MiB", "ok" if fits else "OVER"),
        ("    frames / duration in the file", f"{r['file_frames']} / {r['file_seconds']} s",
         f"{r['frames']} / {r['expected_seconds']} s", "exact" if exact else "WRONG"),
        ("    audio stream", f"{audio_s:.3f} s", f"{seconds:g} s (one AAC frame)", "ok" if audio_ok else "WRONG"),
        ("    worst narration onset from its scene's start", f"{worst * 1000:.1f} ms",
         f"<= {frame * 1000:.1f} ms (one frame)", "ok" if worst <= frame else "LATE"),
        ("    time (render + encode + mix)", f"{per['full']:.1f} ms/frame", f"{r['seconds']:.0f} s", ""),
        ("(b) the same storyboard without captions and sound", f"{per['plain']:.1f} ms/frame",
         f"{plain['seconds']:.0f} s, peak extra {plain['extra_bytes'] / 2**20:,.0f} MiB", ""),
        ("    (a) over (b), time per frame", f"{ratio:.2f}x", f"<= {TARGET_RATIO}x",
         "ok" if ratio <= TARGET_RATIO else "SLOWER"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>20}  {'reference':<36}  verdict")
    for label, value, ref, verdict in rows:
        print(f"{label:<{width}}  {value:>20}  {ref:<36}  {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
