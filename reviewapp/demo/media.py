"""The demo's media files: small images, sounds and a video drawn by this code, so their licence is the project's.

The demo corpus points its image, audio and video items at these files on the app's own static
host (`static/reviewapp/demo/`), which the media allowlist accepts (`reviewapp.content.media_for`),
so blurring, greyscale, reveal and exposure counting all run on media that really loads.

    python -m reviewapp.demo.media [--out static/reviewapp/demo]

rewrites them. Images (PNG, written with zlib and struct) and sounds (WAV, the `wave` module) are
plain Python and byte-for-byte reproducible; the video (WebM, VP8) needs OpenCV (`cv2`, which
ships its own FFmpeg) and is left as it is when OpenCV is missing. No Django: the corpus reads
the file names from here.
"""

from __future__ import annotations

import argparse
import io
import math
import struct
import wave
import zlib
from collections.abc import Callable
from pathlib import Path

STATIC_SUBDIR = "reviewapp/demo"  # under the static root, and so under STATIC_URL
IMAGES = ("sunset.png", "harbour.png", "tiles.png")
SOUNDS = ("chime.wav", "hum.wav")
VIDEOS = ("drift.webm",)
MEDIA_FILES = {"image": IMAGES, "audio": SOUNDS, "video": VIDEOS}

WIDTH, HEIGHT = 240, 160
SAMPLE_RATE = 8000
Pixel = tuple[int, int, int]


def png(width: int, height: int, pixel: Callable[[int, int], Pixel]) -> bytes:
    """An 8-bit RGB PNG of `pixel(x, y)` for every pixel (filter 0 on each row)."""
    rows = b"".join(b"\x00" + bytes(c for x in range(width) for c in pixel(x, y)) for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


def _mix(a: Pixel, b: Pixel, t: float) -> Pixel:
    t = min(1.0, max(0.0, t))
    return (round(a[0] + (b[0] - a[0]) * t), round(a[1] + (b[1] - a[1]) * t), round(a[2] + (b[2] - a[2]) * t))


def _sunset(x: int, y: int) -> Pixel:
    horizon = HEIGHT * 0.62
    if (x - WIDTH * 0.5) ** 2 + (y - horizon) ** 2 < 30**2 and y < horizon:
        return (255, 214, 102)
    if y < horizon:
        return _mix((52, 48, 120), (246, 138, 82), y / horizon)
    return _mix((38, 70, 120), (16, 30, 60), (y - horizon) / (HEIGHT - horizon))


def _harbour(x: int, y: int) -> Pixel:
    if y > HEIGHT * 0.55 + 4 * math.sin(x / 9):
        return (30, 90, 140)
    if 40 < x < 90 and y > HEIGHT * 0.35:
        return (200, 80, 60)  # a boathouse
    if 150 < x < 200 and y > HEIGHT * 0.25:
        return (235, 225, 200)
    return _mix((170, 210, 240), (120, 170, 220), y / HEIGHT)


def _tiles(x: int, y: int) -> Pixel:
    palette = ((46, 134, 171), (162, 59, 114), (241, 143, 1), (199, 62, 29), (59, 31, 43))
    return palette[((x // 40) + 2 * (y // 40)) % len(palette)]


def wav(frequencies: tuple[float, ...], seconds: float) -> bytes:
    """Mono 8-bit PCM at SAMPLE_RATE: the tones one after another, each faded in and out."""
    per_tone = int(SAMPLE_RATE * seconds / len(frequencies))
    samples = bytearray()
    for frequency in frequencies:
        for n in range(per_tone):
            envelope = min(1.0, n / 400, (per_tone - n) / 400)
            samples.append(128 + round(90 * envelope * math.sin(2 * math.pi * frequency * n / SAMPLE_RATE)))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(1)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(bytes(samples))
    return buffer.getvalue()


def generated_files() -> dict[str, bytes]:
    """The reproducible files (images and sounds) by name."""
    return {
        "sunset.png": png(WIDTH, HEIGHT, _sunset),
        "harbour.png": png(WIDTH, HEIGHT, _harbour),
        "tiles.png": png(WIDTH, HEIGHT, _tiles),
        "chime.wav": wav((523.25, 659.25, 783.99), 1.5),
        "hum.wav": wav((220.0, 246.94), 2.0),
    }


def write_video(path: Path) -> bool:
    """Two seconds of a coloured bar drifting across (160×90, 10 fps, VP8); False without OpenCV."""
    try:  # optional: only regenerating the video needs OpenCV, so it is imported here
        import cv2  # type: ignore[import-not-found]
        import numpy as np
    except ImportError:
        return False
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"VP80"), 10, (160, 90))
    if not writer.isOpened():
        return False
    for frame_number in range(20):
        frame = np.full((90, 160, 3), (60, 40, 30), dtype=np.uint8)
        left = frame_number * 7
        frame[20:70, left : left + 24] = (220, 160, 40)
        writer.write(frame)
    writer.release()
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("static") / STATIC_SUBDIR)
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    for name, data in generated_files().items():
        (out / name).write_bytes(data)
        print(f"wrote {out / name} ({len(data):,} bytes)")
    for name in VIDEOS:
        if write_video(out / name):
            print(f"wrote {out / name} ({(out / name).stat().st_size:,} bytes)")
        else:
            print(f"kept {out / name}: OpenCV with VP8 is not available here")


if __name__ == "__main__":
    main()
