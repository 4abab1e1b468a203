"""Benchmark of 3DLabs Storyboard Video: memory of a long save, and speed against ComfyUI's own path.

    .venv/bin/python scripts/benchmark_video.py [--quick] [--only long|speed]

(a) long: a 5-minute 1920x1080 24 fps storyboard of 12 scenes (slow zoom in, crossfades; 7,200 frames,
    180 GB as one float32 batch) saved through the node's VIDEO ``save_to`` as SaveVideo calls it, in a
    child process whose resident memory is sampled every 5 ms: peak extra memory over what the process
    held before the save, and the file's frame count and duration.
(b) speed: time per frame, render + encode, of a 20-second piece of the same storyboard three ways, each
    in its own child process: ComfyUI's in-memory path (Storyboard Timeline's whole batch, then encoded
    frame by frame as core CreateVideo + SaveVideo do: our own code doing the same steps), our
    streaming ``save_to``, and our ``save_to`` with rendering and encoding taking turns (no overlap).
--quick shortens (a) to 30 s and (b) to 5 s. Prints one table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_MEMORY = 1024**3
TARGET_RATIO = 1.2
SCENES, FPS, WIDTH, HEIGHT = 12, 24.0, 1920, 1080
SOURCE = (768, 1344)  # (height, width) of a 16:9 Flux image, as 3DLabs Image Generate returns


def scene_images(count: int):
    import torch

    h, w = SOURCE
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    return torch.stack([torch.stack([(x * 3 + k / count) % 1, y, ((x + y) * 5 + k) % 1 * 0.8], -1)
                        for k in range(count)]).contiguous()


def node_inputs(seconds: float) -> dict:
    return dict(images=scene_images(SCENES), fps=FPS, motion="slow zoom in", transition="crossfade",
                crossfade_seconds=0.5, width=WIDTH, height=HEIGHT, seconds_per_scene=seconds / SCENES)


class PeakRss:
    """Resident memory sampled on a thread, for the peak over a baseline taken at start."""

    def __init__(self) -> None:
        import resource
        import threading

        self.page = resource.getpagesize()
        # Reset the kernel's high-water mark, so that a peak before this point does not count.
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        self.before = self.rss()
        self.peak = self.before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.rss())

    def extra(self) -> int:
        self._stop.set()
        self._thread.join()
        with open("/proc/self/status") as f:
            high_water = next(int(ln.split()[1]) * 1024 for ln in f if ln.startswith("VmHWM:"))
        return max(self.peak, high_water) - self.before


def probe(path: str) -> dict:
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.demux(stream) if _.size)
        return {"file_frames": frames, "file_seconds": str(stream.duration * stream.time_base)}


def child(mode: str, seconds: float, out: str) -> dict:
    import torch

    sys.path.insert(0, str(ROOT / "scripts"))
    from demo import load_pack

    _, mod = load_pack()
    video_node = mod("nodes.storyboard.video_node")
    import av  # noqa: F401  loaded before the baseline, as it is in ComfyUI

    inputs = node_inputs(seconds)
    vid = video_node.ThreeDLabsStoryboardVideo().run(**inputs)["result"][0]
    total = vid.get_frame_count()
    memory = PeakRss()
    start = time.perf_counter()
    if mode == "comfyui":
        timeline = mod("nodes.storyboard.timeline")
        plan = dict(inputs)
        frames, _ = timeline.render_timeline(plan.pop("images"), [seconds / SCENES] * SCENES, FPS, "slow zoom in",
                                             "crossfade", 0.5, WIDTH, HEIGHT, max_bytes=1 << 62)
        rendered = time.perf_counter()
        encode_like_comfyui(frames, Fraction(repr(FPS)), out)
        result = {"render_s": rendered - start}
    else:
        vid.overlap = mode == "stream"
        vid.save_to(out, format="auto", codec="auto", metadata={"prompt": {"benchmark": True}})
        result = {}
    elapsed = time.perf_counter() - start
    result.update(mode=mode, frames=total, seconds=elapsed, extra_bytes=memory.extra(),
                  expected_seconds=str(Fraction(total) / Fraction(repr(FPS))), threads=torch.get_num_threads())
    result.update(probe(out))
    return result


def encode_like_comfyui(frames, rate: Fraction, path: str) -> None:
    """The steps core VideoFromComponents.save_to takes for a CreateVideo (our code, same steps)."""
    import av

    with av.open(path, mode="w", options={"movflags": "use_metadata_tags"}) as output:
        output.metadata["prompt"] = json.dumps({"benchmark": True})
        stream = output.add_stream("h264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for frame in frames:
            rgb = (frame * 255).clamp(0, 255).byte().numpy()
            output.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")))
        output.mux(stream.encode(None))


def run_child(mode: str, seconds: float, out_dir: Path) -> dict:
    out = out_dir / f"{mode}-{seconds:g}s.mp4"
    proc = subprocess.run([sys.executable, __file__, "--child", mode, "--seconds", str(seconds), "--out", str(out)],
                          capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{mode} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 30 s long video and a 5 s speed piece")
    parser.add_argument("--only", choices=("long", "speed"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--out-dir", default="/tmp/3dlabs-benchmark-video", help="where the videos are written")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.seconds, args.out)))
        return 0

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, ok = [], True
    if args.only in (None, "long"):
        seconds = 30.0 if args.quick else 300.0
        r = run_child("stream", seconds, out_dir)
        exact = r["file_frames"] == r["frames"] == round(seconds * FPS) and r["file_seconds"] == r["expected_seconds"]
        fits = r["extra_bytes"] <= TARGET_MEMORY
        ok &= exact and fits
        rows.append((f"(a) {seconds:g} s {WIDTH}x{HEIGHT} {FPS:g} fps, {SCENES} scenes: peak extra memory",
                     f"{r['extra_bytes'] / 2**20:,.0f} MiB", f"<= {TARGET_MEMORY / 2**20:,.0f} MiB",
                     "ok" if fits else "OVER"))
        rows.append(("    frames / duration in the file", f"{r['file_frames']} / {r['file_seconds']} s",
                     f"{r['frames']} / {r['expected_seconds']} s", "exact" if exact else "WRONG"))
        batch = r["frames"] * WIDTH * HEIGHT * 12
        rows.append(("    the same frames as one IMAGE batch", f"{batch / 2**30:,.1f} GiB", "", ""))
        rows.append(("    time (render + encode)", f"{r['seconds']:.0f} s",
                     f"{r['seconds'] / r['frames'] * 1000:.1f} ms/frame", ""))
    if args.only in (None, "speed"):
        seconds = 5.0 if args.quick else 20.0
        base, ours, inline = (run_child(mode, seconds, out_dir) for mode in ("comfyui", "stream", "inline"))
        per = {r["mode"]: r["seconds"] / r["frames"] * 1000 for r in (base, ours, inline)}
        ratio = per["stream"] / per["comfyui"]
        ok &= ratio <= TARGET_RATIO and ours["file_frames"] == base["file_frames"] == base["frames"]
        rows.append((f"(b) {seconds:g} s piece, ComfyUI path: whole batch + CreateVideo/SaveVideo encode",
                     f"{per['comfyui']:.1f} ms/frame",
                     f"render {base['render_s']:.0f} s, peak extra {base['extra_bytes'] / 2**30:.1f} GiB", ""))
        rows.append(("    streaming save_to (render thread + encoder, overlapped)", f"{per['stream']:.1f} ms/frame",
                     f"peak extra {ours['extra_bytes'] / 2**20:,.0f} MiB", ""))
        rows.append(("    streaming save_to, render and encode taking turns", f"{per['inline']:.1f} ms/frame",
                     f"peak extra {inline['extra_bytes'] / 2**20:,.0f} MiB", ""))
        rows.append(("    ratio streaming / ComfyUI path", f"{ratio:.2f}x", f"<= {TARGET_RATIO}x",
                     "ok" if ratio <= TARGET_RATIO else "SLOWER"))
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>20}  {'reference':<36}  verdict")
    for label, value, ref, verdict in rows:
        print(f"{label:<{width}}  {value:>20}  {ref:<36}  {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
