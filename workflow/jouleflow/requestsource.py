"""The `hf` request-set source's keys and field mapping: the checks both the planner and the
measurement make (stdlib only, no I/O), so that a bad mapping fails at plan time with the same words
as at run time.

A source maps dataset columns to requests in exactly one of four ways (`fields:`):
  prompt: COLUMN           a text prompt (chat: one user message)
  messages: COLUMN         a chat, a list of {role, content} (multi-turn; `turns: expand` makes one
                           request per user turn, as ML.ENERGY's lm-arena-chat does)
  template: TEXT           a prompt built from columns, `{Column Name}` placeholders; `choices:` lists
                           columns shuffled per request into `{choices}` as "(A) ..." lines (gpqa)
  prefix + suffix: COLUMN  fill-in-the-middle code completion, rendered by `fim_template`
`system` is a system prompt's text (chat only). `images: COLUMN` and `video: COLUMN` add media to
the (last) user message (chat only): an image column holds one image or a list of them (`datasets`'
Image struct {bytes, path}, bytes, or a path in the dataset repo); a video column a video file (the
same forms) or a list of frames. They travel as data URLs (measure/media.py).
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from typing import Any

# The modes: a mapping must use exactly one.
MODES = ("prompt", "messages", "template", "prefix")
FIELD_KEYS = (*MODES, "suffix", "choices", "system", "turns", "fim_template", "images", "video")
MEDIA_KEYS = ("images", "video")
TURNS = ("last", "expand")
# Qwen2.5/3-Coder and CodeGemma's tokens, ML.ENERGY's rendering for those models; others override it.
DEFAULT_FIM_TEMPLATE = "<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>"
# Branch names move: a request set pinned to one is not reproducible.
MOVING_REVISIONS = ("main", "master")
REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


def template_columns(template: str) -> list[str]:
    """The `{Column}` names a template uses (`{choices}` excluded); ValueError when malformed."""
    names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    if any(name == "" or name.isdigit() for name in names):
        raise ValueError("placeholders must name a column, e.g. {Question}")
    return [n for n in dict.fromkeys(names) if n != "choices"]


def columns(fields: Mapping[str, Any]) -> dict[str, str]:
    """The dataset columns a mapping reads, by the key that names each (`fields.template` for a
    template's placeholders, `fields.choices[i]`)."""
    out: dict[str, str] = {}
    for key in ("prompt", "messages", "prefix", "suffix", *MEDIA_KEYS):
        if fields.get(key):
            out[fields[key]] = f"fields.{key}"
    if fields.get("template"):
        for name in template_columns(fields["template"]):
            out.setdefault(name, "fields.template")
    for i, name in enumerate(fields.get("choices") or []):
        out.setdefault(name, f"fields.choices[{i}]")
    return out


def hf_problems(rs: Mapping[str, Any], endpoint: str) -> list[tuple[str, str]]:
    """(key under the request set, what is wrong) for an `hf` source; empty when it is usable."""
    out: list[tuple[str, str]] = []
    repo = rs.get("repo")
    if not isinstance(repo, str) or not REPO_ID.match(repo):
        out.append(("repo", f"a dataset repo id owner/name is required, got {repo!r}"))
    rev = rs.get("revision")
    if not isinstance(rev, str) or not rev:
        out.append(("revision", "required: pin the dataset to a commit sha or a tag"))
    elif rev in MOVING_REVISIONS:
        out.append(("revision", f"{rev!r} is a branch and moves; pin a commit sha or a tag"))
    fields = rs.get("fields")
    if not isinstance(fields, Mapping):
        return [*out, ("fields", "required: map dataset columns to the request (prompt, messages, ...)")]
    out.extend(_field_problems(fields, endpoint))
    if rs.get("output_lengths") and rs.get("fixed_output_len"):
        out.append(("fixed_output_len", "give output_lengths (a histogram) or fixed_output_len, not both"))
    if not (rs.get("max_tokens") or rs.get("output_lengths") or rs.get("fixed_output_len")):
        out.append(("max_tokens", "required: cap the output (or set output_lengths / fixed_output_len)"))
    return out


def _field_problems(fields: Mapping[str, Any], endpoint: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    unknown = sorted(set(fields) - set(FIELD_KEYS))
    if unknown:
        out.append((f"fields.{unknown[0]}", f"unknown key (known: {', '.join(FIELD_KEYS)})"))
    for key in MEDIA_KEYS:
        if fields.get(key) is not None and not (isinstance(fields[key], str) and fields[key]):
            out.append((f"fields.{key}", f"a column name, got {fields[key]!r}"))
    modes = [m for m in MODES if fields.get(m)]
    if len(modes) != 1:
        got = ", ".join(modes) or "none"
        out.append(("fields", f"give exactly one of prompt, messages, template, prefix+suffix (got {got})"))
    if bool(fields.get("prefix")) != bool(fields.get("suffix")):
        out.append(
            ("fields.suffix" if fields.get("prefix") else "fields.prefix", "prefix and suffix go together")
        )
    if fields.get("choices") and not fields.get("template"):
        out.append(("fields.choices", "needs a template with a {choices} placeholder"))
    if fields.get("template"):
        try:
            template_columns(fields["template"])
        except ValueError as exc:
            out.append(("fields.template", str(exc)))
        if fields.get("choices") and "{choices}" not in fields["template"]:
            out.append(("fields.template", "has no {choices} placeholder for fields.choices"))
    if fields.get("fim_template") is not None:
        fim = fields["fim_template"]
        if "{prefix}" not in fim or "{suffix}" not in fim:
            out.append(("fields.fim_template", "must contain {prefix} and {suffix}"))
    if fields.get("turns") is not None and fields.get("turns") not in TURNS:
        out.append(("fields.turns", f"one of {', '.join(TURNS)}, got {fields.get('turns')!r}"))
    if fields.get("turns") is not None and not fields.get("messages"):
        out.append(("fields.turns", "only with fields.messages"))
    if endpoint != "chat":
        if fields.get("messages"):
            out.append(("fields.messages", f"a chat needs endpoint chat, not {endpoint!r}"))
        for key in MEDIA_KEYS:
            if fields.get(key):
                out.append((f"fields.{key}", f"images and video need endpoint chat, not {endpoint!r}"))
        if fields.get("system"):
            out.append(("fields.system", f"a system prompt needs endpoint chat, not {endpoint!r}"))
    return out


def media_problems(rs: Mapping[str, Any], endpoint: str) -> list[tuple[str, str]]:
    """(key, what is wrong) for a request set's synthetic `media:`; empty when usable or absent."""
    if not rs.get("media"):
        return []
    if rs.get("kind", "synthetic") != "synthetic":
        return [
            ("media", f"synthetic media go with kind synthetic, not {rs.get('kind')!r} (hf: fields.images)")
        ]
    if endpoint != "chat":
        return [("media", f"images and video need endpoint chat, not {endpoint!r}")]
    return []
