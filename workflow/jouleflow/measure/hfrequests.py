"""Dataset rows -> requests (jouleflow.measure.requestset.RequestSpec) by a field mapping.

Sampling: the rows are shuffled with the seed and taken in that order (a row with a missing value
is skipped, a multi-turn chat with `turns: expand` gives one request per user turn); when the split
holds fewer than N requests they are reused in the same order, as ML.ENERGY repeats its gpqa set for
large batches. Output lengths: a histogram (ML.ENERGY's published lengths, ignore_eos, as for
synthetic sets) or a fixed length, capped by `max_tokens`; with `max_tokens` alone the model stops
at EOS or the cap, as ML.ENERGY runs real weights. Input tokens are counted with the model's
tokenizer.json when there is one (the text of every message, no chat template: as ML.ENERGY counts).
Media (`images`, `video` columns, chat only): each sampled row's images/video are decoded once (a
value that does not decode is an error naming the key, the row and the file) and attached to the
last user message as data-URL content parts, their sizes in the request's `media`.
Everything is seeded: the same rows and arguments give the same request set.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from jouleflow import requestsource
from jouleflow.measure import hfsource, media
from jouleflow.measure.hfsource import HFSource, HFSourceError
from jouleflow.measure.requestset import RequestSpec
from jouleflow.measure.synthetic import Histogram

Message = dict[str, Any]
# A request before its media are encoded: (prompt, messages, [(kind, dataset value, where)]).
Body = tuple[str | None, list[Message] | None, list[tuple[str, Any, str]]]


def from_hub(
    source: HFSource,
    *,
    endpoint: str,
    num_requests: int,
    where: str,
    histogram: Histogram | None = None,
    tokenizer_json: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> tuple[list[RequestSpec], dict[str, Any]]:
    """Fetch (or read from the cache) the pinned revision, map and sample: the requests and their
    provenance (repo, revision, the commit it resolved to, the files read and their sha256)."""
    snap = hfsource.fetch(source, where, cache_dir)
    rows = hfsource.read_rows(snap, requestsource.columns(source.fields), where, source.repo)
    specs, sampled = build(
        rows,
        source,
        endpoint=endpoint,
        num_requests=num_requests,
        where=where,
        histogram=histogram,
        tokenizer_json=tokenizer_json,
        root=snap.root,
    )
    provenance = {
        **source.to_dict(),
        "commit": snap.commit,
        "files": snap.file_hashes(),
        "num_rows": len(rows),
        **sampled,
        "histogram": histogram.source if histogram else None,
        "histogram_fallback": histogram.fallback if histogram else None,
    }
    return specs, provenance


def metadata(provenance: dict[str, Any]) -> dict[str, str]:
    """The request-set Parquet's key-value metadata for an hf set (requestset.request_set_metadata)."""
    return {
        "generator": "jouleflow.hf",
        "hf_repo": provenance["repo"],
        "hf_revision": provenance["revision"],
        "hf_commit": provenance["commit"],
        "hf": json.dumps(provenance, sort_keys=True),
    }


def build(
    rows: list[dict[str, Any]],
    source: HFSource,
    *,
    endpoint: str,
    num_requests: int,
    where: str,
    histogram: Histogram | None = None,
    tokenizer_json: str | Path | None = None,
    root: Path | None = None,
) -> tuple[list[RequestSpec], dict[str, Any]]:
    """`num_requests` requests and what the sampling did (for provenance); media paths are read
    under `root` (the dataset snapshot)."""
    if num_requests <= 0:
        raise HFSourceError(f"num_requests must be > 0, got {num_requests}")
    if source.output_lengths and histogram is None:
        raise HFSourceError(f"{where}.output_lengths: the histogram was not loaded")
    order = list(range(len(rows)))
    random.Random(f"{source.seed}-rows").shuffle(order)
    choice_rng = random.Random(f"{source.seed}-choices")
    bodies: list[Body] = []
    skipped = 0
    for i in order:
        made = _requests_of(rows[i], source.fields, endpoint, choice_rng, f"{where}.fields", i)
        skipped += not made
        for body in made:
            if len(bodies) < num_requests:
                bodies.append(body)
        if len(bodies) >= num_requests:
            break
    if not bodies:
        raise HFSourceError(f"{where}.fields: no row of {source.repo} split {source.split!r} gives a request")
    unique = len(bodies)
    encoded = [_with_media(body, root) for body in bodies]
    bodies_mm = [encoded[i % unique] for i in range(num_requests)]
    tok = None
    if tokenizer_json is not None:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(tokenizer_json))
    out_rng = random.Random(f"{source.seed}-output")
    specs = []
    for rid, (prompt, messages, items) in enumerate(bodies_mm):
        max_tokens, ignore_eos = _output_len(source, histogram, out_rng)
        specs.append(
            RequestSpec(
                request_id=rid,
                prompt=prompt,
                messages=messages,
                input_tokens=_count(tok, prompt, messages) if tok is not None else None,
                max_tokens=max_tokens,
                ignore_eos=ignore_eos,
                media=items,
            )
        )
    info = {"num_unique": unique, "rows_skipped": skipped, "repeated": unique < num_requests}
    return specs, info


def _output_len(source: HFSource, hist: Histogram | None, rng: random.Random) -> tuple[int | None, bool]:
    cap = source.max_tokens
    if hist is not None:
        n = hist.sample(rng)
    elif source.fixed_output_len is not None:
        n = source.fixed_output_len
    else:
        return cap, False
    return (min(n, cap) if cap else n), True


def _with_media(
    body: Body, root: Path | None
) -> tuple[str | None, list[Message] | None, list[dict[str, Any]] | None]:
    """Encode a body's media as data URLs into its last user message: (prompt, messages, infos)."""
    prompt, messages, raw = body
    if not raw or messages is None:
        return prompt, messages, None
    urls, infos = [], []
    for kind, value, where in raw:
        try:
            if kind == "video":
                url, meta = media.video_from_value(value, where, root)
            else:
                url, meta = media.image_from_value(value, where, root)
        except media.MediaError as exc:
            raise HFSourceError(str(exc)) from exc
        urls.append((kind, url))
        infos.append(meta)
    last = max(i for i, m in enumerate(messages) if m["role"] == "user")
    out = [dict(m) for m in messages]
    out[last]["content"] = media.content(media.text_of(out[last]["content"]), urls)
    return prompt, out, infos


def _count(tok: Any, prompt: str | None, messages: list[Message] | None) -> int:
    texts = [prompt or ""] if messages is None else [media.text_of(m["content"]) for m in messages]
    return sum(len(tok.encode(t, add_special_tokens=False).ids) for t in texts)


def _media_of(
    row: dict[str, Any], fields: dict[str, Any], where: str, i: int
) -> list[tuple[str, Any, str]] | None:
    """The row's (kind, value, where) media; None when a mapped media value is missing."""
    out: list[tuple[str, Any, str]] = []
    if fields.get("images"):
        value = row.get(fields["images"])
        values = value if isinstance(value, list) else [value]
        if not values or any(v is None for v in values):
            return None
        out += [("image", v, f"{where}.images (row {i}, column {fields['images']!r})") for v in values]
    if fields.get("video"):
        value = row.get(fields["video"])
        if value is None or value == []:
            return None
        out.append(("video", value, f"{where}.video (row {i}, column {fields['video']!r})"))
    return out


def _requests_of(
    row: dict[str, Any],
    fields: dict[str, Any],
    endpoint: str,
    rng: random.Random,
    where: str = "fields",
    i: int = 0,
) -> list[Body]:
    """The requests one row gives (media not yet encoded); none when a mapped value is missing."""
    system = fields.get("system")
    mm = _media_of(row, fields, where, i)
    if mm is None:
        return []
    if fields.get("messages"):
        chat = _chat(row.get(fields["messages"]))
        if chat is None:
            return []
        users = [i for i, m in enumerate(chat) if m["role"] == "user"]
        ends = users if fields.get("turns") == "expand" else users[-1:]
        head = [{"role": "system", "content": system}] if system else []
        return [(None, head + chat[: end + 1], mm) for end in ends]
    text = _text(row, fields, rng)
    if text is None:
        return []
    if endpoint != "chat":
        return [(text, None, [])]
    head = [{"role": "system", "content": system}] if system else []
    return [(None, [*head, {"role": "user", "content": text}], mm)]


def _text(row: dict[str, Any], fields: dict[str, Any], rng: random.Random) -> str | None:
    if fields.get("prompt"):
        value = row.get(fields["prompt"])
        return value if isinstance(value, str) and value else None
    if fields.get("prefix"):
        prefix, suffix = row.get(fields["prefix"]), row.get(fields["suffix"])
        if not isinstance(prefix, str) or not isinstance(suffix, str):
            return None
        fim = fields.get("fim_template") or requestsource.DEFAULT_FIM_TEMPLATE
        return fim.replace("{prefix}", prefix).replace("{suffix}", suffix)
    template = fields["template"]
    values = {c: row.get(c) for c in requestsource.template_columns(template)}
    choices = [row.get(c) for c in fields.get("choices") or []]
    if any(v is None for v in (*values.values(), *choices)):
        return None
    values = {c: str(v).strip() for c, v in values.items()}
    if choices:
        picked = [str(c).strip() for c in choices]
        rng.shuffle(picked)
        values["choices"] = "".join(f"\n({chr(65 + i)}) {c}" for i, c in enumerate(picked))
    return template.format_map(values)


def _chat(value: Any) -> list[Message] | None:
    """A conversation as [{role, content}] (text parts of list contents joined), or None."""
    if not isinstance(value, list) or not value:
        return None
    chat = []
    for m in value:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            return None
        content = m.get("content")
        if isinstance(content, list):  # OpenAI-style parts: keep the text ones
            content = "".join(
                p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
            )
        if not isinstance(content, str):
            return None
        chat.append({"role": m["role"], "content": content})
    return chat if any(m["role"] == "user" for m in chat) else None
