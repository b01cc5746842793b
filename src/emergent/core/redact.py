"""Credentials never reach a file or a message: redaction of URLs and secret-named values.

A judge endpoint or a download mirror may carry credentials in its URL
(``http://user:password@host/v1``, ``https://host/v1?api_key=...``). Every writer of provenance
(config.yaml, manifest.json, judgment rows' `judge`, error and log messages) writes
`redact_url(url)` / `redact(obj)` instead; only the request itself uses the real URL.

* `redact_url(url)`: the user name and password become ``***``, and so does the value of every
  query parameter whose name looks secret (contains key, token, secret, sig, pass, pwd, auth,
  credential, session or cookie: ``key``, ``api_key``, ``access_token``, ``sig``...). Anything
  else, and any string that is not a URL, is returned unchanged (so a URL without credentials
  keeps its exact spelling, and so its cache key).
* `redact_text(text)`: `redact_url` applied to every URL inside free text (messages).
* `redact(obj)`: a copy of a dict/list tree with every URL-looking string redacted and the
  string values of secret-named keys (`SECRET_KEYS`: api_key, token, password, ...) replaced.
* `split_credentials(url)`: (url without user info and query, user info or None, query pairs),
  for a client that must send the credentials as a header and query parameters.
* `redact_command(cmd)`: a command line (a string or an argv list: a judge server's) with the
  value of every flag whose name is secret (`secret_name`: ``--api-key X``, ``--hf-token=X``)
  as ``***``; `redact` applies it to the value of every `command` key and masks the values of
  an `env` mapping whose names are secret (``HF_TOKEN``, ``VLLM_API_KEY``).
"""
from __future__ import annotations

import re
import shlex
from typing import Any, Optional
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

MASK = "***"

# query parameter names holding secrets: any name containing one of these (case-insensitive)
_SECRET_QUERY = ("key", "token", "secret", "sig", "pass", "pwd", "auth", "credential",
                 "session", "cookie")
# dict keys whose string values are secrets (exact names after lowercasing, "-" -> "_"); names
# like api_key_env (the NAME of an environment variable) or pad_token are not secrets
SECRET_KEYS = frozenset({
    "api_key", "apikey", "token", "access_token", "auth_token", "bearer_token",
    "refresh_token", "id_token", "hf_token", "password", "passwd", "pwd", "secret",
    "client_secret", "authorization", "private_key", "x_api_key", "cookie"})

_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>()\[\]{}]+")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _secret_param(name: str) -> bool:
    name = unquote(name).lower()
    return any(s in name for s in _SECRET_QUERY)


def _redact_query(query: str) -> str:
    parts = []
    for part in query.split("&"):
        name, eq, value = part.partition("=")
        parts.append(f"{name}={MASK}" if eq and value and _secret_param(name) else part)
    return "&".join(parts)


def redact_url(url: str) -> str:
    """`url` with its user info and secret query values as ``***`` (see the module docstring);
    a string that is not a URL (no ``scheme://``), or a URL with nothing secret, unchanged. The
    rest keeps its exact spelling (parsed by hand, as RFC 3986 splits it: the user info ends at
    the last "@" before the first "/", "?" or "#")."""
    m = _SCHEME.match(url) if isinstance(url, str) else None
    if m is None:
        return url
    head, rest = url[:m.end()], url[m.end():]
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    netloc, tail = rest[:cut], rest[cut:]
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        netloc = (f"{MASK}:{MASK}" if ":" in userinfo else MASK) + "@" + hostport
    before, q, after = tail.partition("?")
    if q:
        query, hash_, fragment = after.partition("#")
        tail = before + q + _redact_query(query) + hash_ + fragment
    return head + netloc + tail


def redact_text(text: str) -> str:
    """Every URL inside `text` redacted (`redact_url`)."""
    if not isinstance(text, str) or "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)


def _secret_key(key: Any) -> bool:
    return isinstance(key, str) and key.lower().replace("-", "_") in SECRET_KEYS


# a flag or environment variable name is secret when, lowercased with "-" as "_" and leading
# dashes dropped, it is a SECRET_KEYS name or ends with one of these (api_key, hf_token,
# VLLM_API_KEY, AWS_SECRET_ACCESS_KEY; not tokenizer, ssl_keyfile, max_lora_rank)
_SECRET_SUFFIXES = ("key", "token", "secret", "password", "passwd", "pwd", "credential",
                    "credentials", "cookie", "auth")


def secret_name(name: Any) -> bool:
    """A flag (``--api-key``) or environment variable (``HF_TOKEN``) name that holds a secret."""
    if not isinstance(name, str):
        return False
    n = name.lstrip("-").lower().replace("-", "_")
    return bool(n) and (n in SECRET_KEYS or n.endswith(_SECRET_SUFFIXES))


def _redact_argv(argv: list) -> list:
    out, mask_next = [], False
    for a in argv:
        a = str(a)
        if mask_next:
            out.append(MASK)
            mask_next = False
            continue
        flag, eq, value = a.partition("=")
        if a.startswith("-") and secret_name(flag):
            if eq:
                out.append(f"{flag}={MASK}" if value else a)
            else:
                out.append(a)
                mask_next = True
            continue
        out.append(redact_text(a))
    return out


def redact_command(cmd: Any) -> Any:
    """`cmd` (an argv list, or a command string split as a shell would) with the values of
    secret-named flags as ``***`` and URLs redacted; a string with nothing secret unchanged."""
    if isinstance(cmd, (list, tuple)):
        return type(cmd)(_redact_argv(list(cmd)))
    if not isinstance(cmd, str):
        return cmd
    try:
        argv = shlex.split(cmd)
    except ValueError:  # unbalanced quotes: mask everything after the first secret flag
        return redact_text(cmd)
    red = _redact_argv(argv)
    return cmd if red == argv else shlex.join(red)


def secret_values_of_command(cmd: Any) -> list[str]:
    """The values of `cmd`'s secret-named flags (what `redact_command` masks)."""
    argv = shlex.split(cmd) if isinstance(cmd, str) else [str(a) for a in (cmd or [])]
    out = []
    for i, a in enumerate(argv):
        flag, eq, value = a.partition("=")
        if a.startswith("-") and secret_name(flag):
            v = value if eq else (argv[i + 1] if i + 1 < len(argv) else "")
            if v:
                out.append(v)
    return out


def redact(obj: Any) -> Any:
    """A copy of `obj` (dicts, lists, tuples; other values as they are) with URL-looking
    strings redacted and the non-empty string values of secret-named keys replaced by ``***``;
    a `command` value through `redact_command`, an `env` mapping's secret-named values masked."""
    if isinstance(obj, dict):
        return {k: (MASK if _secret_key(k) and isinstance(v, str) and v
                    else redact_command(v) if k == "command"
                    else {n: (MASK if secret_name(n) and x else redact(x)) for n, x in v.items()}
                    if k == "env" and isinstance(v, dict) else redact(v))
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(redact(v) for v in obj)
    if isinstance(obj, str):
        return redact_text(obj)
    return obj


def split_credentials(url: str) -> tuple[str, Optional[str], list[tuple[str, str]]]:
    """(`url` without user info, query and fragment; "user:password" decoded, or None; the query's
    (name, value) pairs). A client sends the user info as an HTTP Basic Authorization header and
    the pairs as query parameters, so the URL it is given holds no credentials."""
    p = urlsplit(url)
    userinfo = None
    netloc = p.netloc
    if "@" in netloc:
        raw, _, netloc = netloc.rpartition("@")
        user, colon, password = raw.partition(":")
        userinfo = unquote(user) + (":" + unquote(password) if colon else ":")
    pairs = parse_qsl(p.query, keep_blank_values=True)
    return urlunsplit((p.scheme, netloc, p.path, "", "")), userinfo, pairs
