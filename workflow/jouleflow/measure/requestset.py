"""Request sets: Parquet files (traces.REQUEST_SET) the load generator replays.

A row carries either `prompt` (completions) or `messages_json` (chat: a JSON list of
{role, content}, multi-turn allowed; a multimodal request's content is a list of OpenAI parts with
image/video data URLs, and `media_json` lists their sizes: measure/media.py), `max_tokens` and
`ignore_eos`. A chat request set is sent
to the completions endpoint as its last user turn, and a prompt to the chat endpoint as one user
message, so that either endpoint can replay either form. Real datasets are converted into this
format by whatever prepares them; the synthetic generator is `jouleflow.measure.synthetic`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from jouleflow import traces
from jouleflow.files import sha256_file  # noqa: F401 (re-exported: the request set's hash)
from jouleflow.measure import media
from jouleflow.measure.load import LoadRequest


class RequestSetError(ValueError):
    """An empty or malformed request set; the message names the file (and row)."""


@dataclass
class RequestSpec:
    request_id: int
    prompt: str | None
    messages: list[dict[str, Any]] | None
    input_tokens: int | None
    max_tokens: int | None
    ignore_eos: bool
    media: list[dict[str, Any]] | None = None  # media.info of each image/video, in message order

    def to_row(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "prompt": self.prompt,
            "messages_json": json.dumps(self.messages) if self.messages is not None else None,
            "input_tokens": self.input_tokens,
            "max_tokens": self.max_tokens,
            "ignore_eos": self.ignore_eos,
            "media_json": json.dumps(self.media) if self.media else None,
        }

    def to_load_request(self, endpoint: str) -> LoadRequest:
        prompt, messages = self.prompt, self.messages
        if endpoint == "chat" and messages is None:
            messages = [{"role": "user", "content": prompt or ""}]
        if endpoint == "completions" and self.media:
            raise RequestSetError(
                f"request {self.request_id}: has images/video; the completions endpoint takes text only "
                "(use endpoint: chat)"
            )
        if endpoint == "completions" and prompt is None and messages:
            prompt = str(messages[-1].get("content", ""))
        return LoadRequest(
            request_id=self.request_id,
            prompt=prompt,
            messages=messages,
            max_tokens=self.max_tokens,
            ignore_eos=self.ignore_eos,
            input_tokens=self.input_tokens,
            media=media.totals(self.media) if self.media else None,
        )


def write_request_set(
    specs: list[RequestSpec], path: str | Path, metadata: dict[str, str] | None = None
) -> Path:
    """Write atomically; `metadata` (e.g. how it was generated) goes into the Parquet key-value metadata."""
    if not specs:
        raise RequestSetError(f"{path}: refusing to write an empty request set")
    table = traces.table_from_rows([s.to_row() for s in specs], traces.REQUEST_SET)
    if metadata:
        merged = dict(table.schema.metadata or {})
        merged.update({b"jouleflow_" + k.encode(): v.encode() for k, v in metadata.items()})
        table = table.replace_schema_metadata(merged)
    traces.write_table(table, path)
    return Path(path)


def read_request_set(path: str | Path) -> list[RequestSpec]:
    """Read and validate; every error names the file and, where it applies, the row."""
    path = Path(path)
    try:
        table = traces.read_table(path, traces.REQUEST_SET)
    except traces.TraceError as exc:
        raise RequestSetError(f"request set {exc}") from exc
    if table.num_rows == 0:
        raise RequestSetError(f"{path}: request set is empty")
    cols = {name: table.column(name).to_pylist() for name in traces.REQUEST_SET.names}
    specs: list[RequestSpec] = []
    seen: set[int] = set()
    for i in range(table.num_rows):
        rid = cols["request_id"][i]
        where = f"{path}: row {i} (request_id {rid})"
        if rid is None:
            raise RequestSetError(f"{path}: row {i}: request_id is null")
        if rid in seen:
            raise RequestSetError(f"{where}: duplicate request_id")
        seen.add(rid)
        prompt, mjson = cols["prompt"][i], cols["messages_json"][i]
        if (prompt is None) == (mjson is None):
            raise RequestSetError(f"{where}: exactly one of prompt and messages_json must be set")
        messages = None
        if mjson is not None:
            try:
                messages = json.loads(mjson)
            except json.JSONDecodeError as exc:
                raise RequestSetError(f"{where}: messages_json is not JSON ({exc})") from exc
            if not (
                isinstance(messages, list)
                and messages
                and all(isinstance(m, dict) and "role" in m and "content" in m for m in messages)
            ):
                raise RequestSetError(f"{where}: messages_json must be a non-empty list of {{role, content}}")
        max_tokens = cols["max_tokens"][i]
        if max_tokens is not None and max_tokens <= 0:
            raise RequestSetError(f"{where}: max_tokens must be > 0, got {max_tokens}")
        items = _media(cols["media_json"][i], where)
        specs.append(
            RequestSpec(
                request_id=int(rid),
                prompt=prompt,
                messages=messages,
                input_tokens=cols["input_tokens"][i],
                max_tokens=max_tokens,
                ignore_eos=bool(cols["ignore_eos"][i]),
                media=items,
            )
        )
    return specs


def _media(value: str | None, where: str) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    try:
        items = json.loads(value)
    except json.JSONDecodeError as exc:
        raise RequestSetError(f"{where}: media_json is not JSON ({exc})") from exc
    if not isinstance(items, list) or not all(
        isinstance(m, dict) and m.get("type") in ("image", "video") and isinstance(m.get("bytes"), int)
        for m in items
    ):
        raise RequestSetError(f"{where}: media_json must be a list of {{type: image|video, bytes, ...}}")
    return items or None


def request_set_metadata(path: str | Path) -> dict[str, str]:
    meta = pq.read_schema(path).metadata or {}
    return {
        k.decode()[len("jouleflow_") :]: v.decode() for k, v in meta.items() if k.startswith(b"jouleflow_")
    }
