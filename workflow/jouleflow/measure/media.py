"""Images and videos of multimodal chat requests: data URLs the server decodes, and their sizes.

Media travel inside the request set as data URLs in OpenAI content parts (`image_url`,
`video_url`): the request set is self-contained and its sha256 covers the pixels (vLLM reads
`file://` URLs only under `--allowed-local-media-path`, and http URLs would make the load depend on
the network). Every item's size is recorded beside it (`media_json`: type, mime, bytes, width,
height, frames) and per request in requests.parquet.

A synthetic or frame-list video is `data:video/jpeg;base64,<frame>,<frame>,...`: vLLM's video
loader reads that as a JPEG frame sequence with Pillow alone, so encoding it needs no opencv or
PyAV. A dataset's mp4/webm file goes as `data:video/mp4;base64,...` (vLLM decodes it with its video
backend); its frame count and resolution are recorded only when PyAV is installed.

Synthetic images are smooth seeded colour fields, a different one per request: vLLM caches
preprocessed media by content hash, and identical images would measure the cache, not the encoder.
"""

from __future__ import annotations

import base64
import io
import mimetypes
import re
from pathlib import Path
from typing import Any

IMAGE_FORMATS = ("png", "jpeg")
SIZE = re.compile(r"^(\d+)x(\d+)$")
DATA_URL = re.compile(r"^data:([\w.+-]+/[\w.+-]+);base64,", re.I)


class MediaError(ValueError):
    """A media file or value that cannot be decoded, or a bad size; the message names it."""


def parse_size(text: str, what: str) -> tuple[int, int]:
    """'WIDTHxHEIGHT' -> (width, height)."""
    m = SIZE.match(str(text).strip().lower())
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise MediaError(f"{what}: {text!r} is not WIDTHxHEIGHT (e.g. 1024x768)")
    return int(m.group(1)), int(m.group(2))


def _pattern(width: int, height: int, seed: str):
    """A smooth seeded RGB field (bilinear upscale of 8x6 random colours)."""
    import random

    from PIL import Image

    rng = random.Random(seed)
    small = Image.frombytes("RGB", (8, 6), bytes(rng.randrange(256) for _ in range(8 * 6 * 3)))
    return small.resize((width, height), Image.BILINEAR)


def _encode(img: Any, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG" if fmt == "jpeg" else "PNG", **({"quality": 90} if fmt == "jpeg" else {}))
    return buf.getvalue()


def data_url(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def synthetic_image(width: int, height: int, seed: str, fmt: str = "png") -> tuple[str, dict[str, Any]]:
    """(data URL, info) of one synthetic image."""
    if fmt not in IMAGE_FORMATS:
        raise MediaError(f"image format {fmt!r}: one of {', '.join(IMAGE_FORMATS)}")
    data = _encode(_pattern(width, height, seed), fmt)
    mime = f"image/{fmt}"
    return data_url(mime, data), info("image", mime, len(data), width, height)


def synthetic_video(width: int, height: int, frames: int, seed: str) -> tuple[str, dict[str, Any]]:
    """(data URL, info) of a synthetic video: `frames` JPEG frames drifting from one field to the next."""
    if frames < 1:
        raise MediaError(f"video frames must be >= 1, got {frames}")
    from PIL import Image

    a, b = _pattern(width, height, f"{seed}-a"), _pattern(width, height, f"{seed}-b")
    encoded = [_encode(Image.blend(a, b, i / max(1, frames - 1)), "jpeg") for i in range(frames)]
    return frames_url(encoded), info("video", "video/jpeg", sum(map(len, encoded)), width, height, frames)


def frames_url(jpegs: list[bytes]) -> str:
    return "data:video/jpeg;base64," + ",".join(base64.b64encode(f).decode() for f in jpegs)


def info(
    kind: str, mime: str, nbytes: int, width: int | None, height: int | None, frames: int | None = None
) -> dict[str, Any]:
    return {"type": kind, "mime": mime, "bytes": nbytes, "width": width, "height": height, "frames": frames}


def probe_image(data: bytes, where: str) -> tuple[Any, dict[str, Any]]:
    """(the decoded PIL image, info); MediaError naming `where` when it does not decode."""
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise MediaError(f"{where}: not a decodable image ({exc})") from exc
    mime = Image.MIME.get(img.format or "", "image/png")
    return img, info("image", mime, len(data), img.width, img.height)


def image_from_value(value: Any, where: str, root: Path | None = None) -> tuple[str, dict[str, Any]]:
    """A dataset value as an image data URL: `datasets`' Image struct ({bytes, path}), raw bytes, a
    path (relative to the dataset snapshot `root`) or a data URL; decoded once to check and size it."""
    data = _bytes_of(value, where, root)
    _, meta = probe_image(data, where)
    return data_url(meta["mime"], data), meta


def video_from_value(value: Any, where: str, root: Path | None = None) -> tuple[str, dict[str, Any]]:
    """A dataset value as a video data URL: a list of frames (each as an image value) becomes a
    JPEG frame sequence; a file ({bytes, path}, bytes, path) goes as its own container."""
    if isinstance(value, list):
        if not value:
            raise MediaError(f"{where}: empty frame list")
        jpegs, size = [], None
        for i, frame in enumerate(value):
            img, meta = probe_image(_bytes_of(frame, f"{where}[{i}]", root), f"{where}[{i}]")
            size = size or (meta["width"], meta["height"])
            jpegs.append(_encode(img.convert("RGB"), "jpeg"))
        return frames_url(jpegs), info("video", "video/jpeg", sum(map(len, jpegs)), *size, len(jpegs))
    data = _bytes_of(value, where, root)
    name = value.get("path") if isinstance(value, dict) else value if isinstance(value, str) else None
    mime = (mimetypes.guess_type(str(name))[0] if name else None) or _sniff_video(data, where)
    return data_url(mime, data), {**info("video", mime, len(data), None, None), **_probe_video(data, where)}


def _sniff_video(data: bytes, where: str) -> str:
    if data[4:8] == b"ftyp":
        return "video/mp4"
    if data[:4] == b"\x1a\x45\xdf\xa3":
        return "video/webm"
    raise MediaError(f"{where}: not a video container jouleflow recognises (mp4, webm) nor a frame list")


def _probe_video(data: bytes, where: str) -> dict[str, Any]:
    """width, height, frames of a container when PyAV is installed; {} otherwise (bytes only)."""
    try:
        import av
    except ImportError:
        return {}
    try:
        with av.open(io.BytesIO(data)) as c:
            s = c.streams.video[0]
            n = s.frames or sum(1 for _ in c.decode(s))
            return {"width": s.codec_context.width, "height": s.codec_context.height, "frames": n}
    except Exception as exc:  # PyAV raises its own error types for corrupt input
        raise MediaError(f"{where}: not a decodable video ({exc})") from exc


def _bytes_of(value: Any, where: str, root: Path | None) -> bytes:
    if isinstance(value, dict):  # datasets' Image/Video feature in Parquet: {bytes, path}
        if value.get("bytes"):
            return bytes(value["bytes"])
        value = value.get("path")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str) and value:
        m = DATA_URL.match(value)
        if m:
            try:
                return base64.b64decode(value[m.end() :], validate=True)
            except ValueError as exc:
                raise MediaError(f"{where}: data URL is not valid base64") from exc
        if value.startswith(("http://", "https://")):
            raise MediaError(f"{where}: {value[:80]} is a URL; request sets carry media inline (give files)")
        path = Path(value)
        if not path.is_absolute() and root is not None:
            path = root / path
        if not path.is_file():
            raise MediaError(f"{where}: media file {value} not found{f' under {root}' if root else ''}")
        return path.read_bytes()
    raise MediaError(
        f"{where}: expected image bytes, a {{bytes, path}} struct or a path, got {type(value).__name__}"
    )


def content(text: str, media: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """OpenAI content parts: the media (kind, url) first, then the text (Qwen-VL's convention)."""
    parts = [
        {"type": f"{kind}_url", f"{kind}_url": {"url": url}} if kind in ("image", "video") else {}
        for kind, url in media
    ]
    return [*parts, {"type": "text", "text": text}]


def text_of(content_value: Any) -> str:
    """The text of a message content (a string, or the text parts of a part list)."""
    if isinstance(content_value, list):
        return "".join(
            p.get("text", "") for p in content_value if isinstance(p, dict) and p.get("type") == "text"
        )
    return str(content_value or "")


def totals(items: list[dict[str, Any]] | None) -> dict[str, int | None]:
    """Per-request sums for requests.parquet: counts, bytes, pixels (frames x w x h), video frames."""
    if not items:
        return {k: None for k in TOTAL_KEYS}
    images = [m for m in items if m["type"] == "image"]
    videos = [m for m in items if m["type"] == "video"]
    pixels = [
        (m.get("frames") or 1) * m["width"] * m["height"] for m in items if m.get("width") and m.get("height")
    ]
    return {
        "num_images": len(images),
        "num_videos": len(videos),
        "media_bytes": sum(int(m["bytes"]) for m in items),
        "media_pixels": sum(pixels) if len(pixels) == len(items) else None,
        "video_frames": sum(int(m["frames"]) for m in videos if m.get("frames")) if videos else None,
    }


TOTAL_KEYS = ("num_images", "num_videos", "media_bytes", "media_pixels", "video_frames")
