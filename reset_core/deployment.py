"""How this installation is deployed: who may log in, which secrets and hosts judges may
use, and which folders the UI may touch.

One researcher on a workstation needs none of it; a team sharing one server needs all
of it, and needs it safe by default. So the settings come from the environment (or the
app's Streamlit secrets, passed in by the page layer: ``reset_core`` never imports
streamlit) and the checks live here, where the app, the CLI and the workers all call
the same ones.

>>> d = Deployment()
>>> d.key_env_allowed("OPENAI_API_KEY"), d.key_env_allowed("RESET_STUDIO_JUDGE_KEY")
(True, True)
>>> d.key_env_allowed("AWS_SECRET_ACCESS_KEY"), d.key_env_allowed("RESET_STUDIO_USERS")
(False, False)
>>> redact("HTTP 401: bad key sk-abc123456 (Bearer sk-abc123456)", ["sk-abc123456"])
'HTTP 401: bad key [redacted] (Bearer [redacted])'
>>> safe_upload_name("../../etc/passwd")
'passwd'
>>> safe_upload_name("..\\\\..\\\\boot.ini")
'boot.ini'
>>> stored = hash_password("correct horse", n=2**10)
>>> verify_password("correct horse", stored), verify_password("wrong", stored)
(True, False)
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import hmac
import os
import re
import secrets
import time
import urllib.parse
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from reset_core import paths

#: The environment variables that configure a deployment. They are never secrets a judge
#: may send (RESET_STUDIO_PASSWORD would otherwise match the default ``RESET_STUDIO_*``).
ENV = {
    "data_root": "RESET_STUDIO_DATA_ROOT",
    "allowed_key_envs": "RESET_STUDIO_ALLOWED_KEY_ENVS",
    "allowed_base_urls": "RESET_STUDIO_ALLOWED_BASE_URLS",
    "login": "RESET_STUDIO_LOGIN",
    "users": "RESET_STUDIO_USERS",
    "oidc_provider": "RESET_STUDIO_OIDC_PROVIDER",
}
#: Names that configure the app rather than hold a judge's key.
SETTINGS_NAMES = frozenset(ENV.values()) | {"RESET_STUDIO_DB", "RESET_STUDIO_PASSWORD"}
#: Variables that may hold an endpoint's base URL (a judge's ``base_url_env``). Never a
#: key variable: a key read as a URL would be sent to DNS and written into errors and
#: the judge's identity.
BASE_URL_ENVS = ("OPENAI_BASE_URL", "RESET_STUDIO_*BASE_URL")

#: The app's Streamlit secrets, handed over by the page layer (:func:`use_app_secrets`);
#: empty in the CLI and in workers, which take keys from their environment.
_app_secrets: dict = {}


def use_app_secrets(secrets: Mapping | None) -> None:
    """Remember the app's secrets (``st.secrets``) for this process.

    The page layer calls it on every script run: ``reset_core`` never imports
    streamlit, and the settings (``[reset_studio]``) and keys kept there must reach the
    checks here and, for a job that names a key, the worker (:meth:`Deployment.worker_env`).
    """
    global _app_secrets
    _app_secrets = {k: secrets[k] for k in secrets} if secrets else {}


def _secret_strings() -> dict[str, str]:
    """The app's root-level secrets that are plain values (what could be an API key)."""
    return {k: str(v) for k, v in _app_secrets.items() if isinstance(v, str | int | float)}


def key_value(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """The value of key variable ``name``: the environment, else the app's secrets.

    Callers check the name first (:meth:`Deployment.check_key_env`).
    """
    env = os.environ if env is None else env
    return env.get(name) or _secret_strings().get(name) or None


def _encodings(secret: str) -> set[str]:
    """The forms a secret travels in: itself, URL-encoded, and base64 (as in Basic auth)."""
    b64 = base64.b64encode(secret.encode()).decode()
    return {secret, urllib.parse.quote(secret, safe=""), b64, b64.rstrip("=")}


def redact(text: str | None, secrets: Iterable[str | None] | None = None) -> str | None:
    """``text`` with every secret (and its URL-encoded and base64 forms) replaced.

    ``secrets`` default to every key this process could send (:func:`known_secrets`).
    Short values (under 8 characters) are left alone: they are not keys, and replacing
    them would mangle ordinary words.
    """
    if not text:
        return text
    values = known_secrets() if secrets is None else [s for s in secrets if s]
    for secret in sorted({f for s in values if len(s) >= 8 for f in _encodings(s)}, key=len)[::-1]:
        text = text.replace(secret, "[redacted]")
    return text


def known_secrets(env: Mapping[str, str] | None = None) -> list[str]:
    """Values of every variable that holds a key or password here (environment and secrets).

    What :func:`redact` removes by default from errors a worker records.
    """
    env = os.environ if env is None else env
    try:
        d = Deployment.current(env)
    except ValueError:  # malformed settings: still redact what the defaults call keys
        d = Deployment()
    names = {**_secret_strings(), **env}
    return [
        v for n, v in names.items() if v and (d.key_env_allowed(n) or n == "RESET_STUDIO_PASSWORD")
    ]


def key_envs_in(config) -> set[str]:
    """Every ``api_key_env`` named anywhere in a job's config: the keys its worker needs.

    >>> sorted(key_envs_in({"judges": [{"config": {"api_key_env": "OPENAI_API_KEY"}},
    ...                                {"type": "metric"}], "model": {"engine": "vllm"}}))
    ['OPENAI_API_KEY']
    """
    if isinstance(config, Mapping):
        found = {config["api_key_env"]} if isinstance(config.get("api_key_env"), str) else set()
        return found.union(*(key_envs_in(v) for v in config.values()))
    if isinstance(config, list | tuple):
        return set().union(*(key_envs_in(v) for v in config))
    return set()


class PathNotAllowed(ValueError):
    """A path typed into the UI lies outside the deployment's data root."""


class SecretNotAllowed(ValueError):
    """A judge or model names an environment variable (or host) the deployment does not allow."""


class Deployment(BaseModel):
    """The deployment's settings; each field's description is its help text."""

    data_root: Path = Field(
        default_factory=lambda: paths.default_db_path().resolve().parent,
        description="Folder that every path typed into the app must lie in (database, import "
        "file, export and training output folders, model folders, which may also lie in the "
        "bundled data/models). A relative path is taken from here. Default: the default "
        "database's folder. Set with $RESET_STUDIO_DATA_ROOT.",
    )
    allowed_key_envs: list[str] = Field(
        default_factory=lambda: ["OPENAI_API_KEY", "RESET_STUDIO_*"],
        description="Environment variable names (shell patterns) that may hold an API key the "
        "app sends to a judge or model endpoint. Comma list in $RESET_STUDIO_ALLOWED_KEY_ENVS.",
    )
    allowed_base_urls: list[str] | None = Field(
        None,
        description="Endpoint base URLs (shell patterns over the normalised URL) judges and "
        "models may be sent to. Empty = any URL, unless login is on: then only the OpenAI API "
        "and $OPENAI_BASE_URL. Comma list in $RESET_STUDIO_ALLOWED_BASE_URLS.",
    )
    login: Literal["none", "password", "oidc"] = Field(
        "none",
        description="Who may use the app: none (a personal workstation), password (users and "
        "password hashes in the app's secrets), or oidc (Streamlit's st.login). With login on, "
        "nothing is reachable anonymously. Set with $RESET_STUDIO_LOGIN.",
    )
    users: dict[str, str] = Field(
        default_factory=dict,
        repr=False,
        description="For password login: user name = password hash, as `reset-studio user "
        "hash` prints it, in [reset_studio.users] of the app's secrets (or 'name=hash "
        "name=hash' in $RESET_STUDIO_USERS). Only hashes are stored, never passwords.",
    )
    oidc_provider: str | None = Field(
        None,
        description="For oidc login: the provider's name under [auth] in the app's secrets "
        "(empty = the unnamed provider configured in [auth] itself). "
        "Set with $RESET_STUDIO_OIDC_PROVIDER.",
    )

    @field_validator("users")
    @classmethod
    def _hashes_parse(cls, users: dict[str, str]) -> dict[str, str]:
        # A typo in a hash would lock that user out with no hint why: refuse it at start.
        for name, stored in users.items():
            try:
                _parse_hash(stored)
            except ValueError as e:
                raise ValueError(f"user {name!r}: {e}") from None
        return users

    @classmethod
    def load(
        cls, env: Mapping[str, str] | None = None, secrets: Mapping | None = None
    ) -> Deployment:
        """The settings from ``[reset_studio]`` in the app's secrets, then the environment.

        The environment wins, so an operator can override a checked-in secrets file.
        Workers get the same settings through :meth:`to_env`.
        """
        env = os.environ if env is None else env
        raw: dict = dict((secrets or {}).get("reset_studio", {}) or {})
        for field, name in ENV.items():
            if env.get(name):
                raw[field] = env[name]
        for field in ("allowed_key_envs", "allowed_base_urls"):
            if isinstance(raw.get(field), str):
                raw[field] = [p.strip() for p in raw[field].split(",") if p.strip()]
        if isinstance(raw.get("users"), str):
            # "name=hash name=hash": spaces or semicolons, as a hash has commas but neither.
            pairs = [u.partition("=") for u in re.split(r"[\s;]+", raw["users"]) if u]
            raw["users"] = {name: stored for name, _, stored in pairs}
        elif raw.get("users") is not None:
            raw["users"] = {str(k): str(v) for k, v in dict(raw["users"]).items()}
        return cls.model_validate(raw)

    @classmethod
    def current(cls, env: Mapping[str, str] | None = None) -> Deployment:
        """These settings: those this script run set with :func:`use`, else the
        environment's (``env``), then the app's secrets if it has any."""
        if env is None and (chosen := _current.get()) is not None:
            return chosen
        return cls.load(env, _app_secrets)

    def to_env(self) -> dict[str, str]:
        """Environment variables that make a worker process load these same settings."""
        out = {
            ENV["data_root"]: str(self.data_root),
            ENV["allowed_key_envs"]: ",".join(self.allowed_key_envs),
            ENV["login"]: self.login,
        }
        if self.allowed_base_urls is not None:
            out[ENV["allowed_base_urls"]] = ",".join(self.allowed_base_urls)
        return out

    def authenticate(self, name: str, password: str) -> bool:
        """Whether ``password`` is ``name``'s, checked against the stored scrypt hash.

        An unknown name costs the same as a wrong password, so timing does not tell
        which user names exist.
        """
        stored = self.users.get(name.strip())
        if stored is None:
            verify_password(password, _dummy_hash())
            return False
        return verify_password(password, stored)

    @property
    def shared(self) -> bool:
        """Several people use this server (login is on): the narrow defaults apply."""
        return self.login != "none"

    # ------------------------------------------------------------------ secrets and hosts
    def key_env_allowed(self, name: str) -> bool:
        """Whether the app may send the variable ``name`` as an API key."""
        if not name or name in SETTINGS_NAMES:
            return False
        return any(fnmatch.fnmatchcase(name, p) for p in self.allowed_key_envs)

    def allowed_key_names(self, env: Mapping[str, str] | None = None) -> list[str]:
        """The allowed names, for the UI's choice: literal names plus set variables matching a pattern.

        ``env`` defaults to the environment and the app's secrets (a key may live in either).
        """
        env = {**_secret_strings(), **os.environ} if env is None else env
        literal = [p for p in self.allowed_key_envs if not any(c in p for c in "*?[")]
        matched = [n for n in env if self.key_env_allowed(n)]
        return sorted({n for n in [*literal, *matched] if self.key_env_allowed(n)})

    def check_key_env(self, name: str, *, field: str = "api_key_env") -> str:
        """``name`` if allowed, else :class:`SecretNotAllowed` naming the field and the rule."""
        if not self.key_env_allowed(name):
            raise SecretNotAllowed(
                f"{field}: the environment variable {name!r} is not one this deployment lets "
                f"the app send as an API key (allowed: {', '.join(self.allowed_key_envs)}; "
                f"set {ENV['allowed_key_envs']} to change)"
            )
        return name

    def check_base_url_env(self, name: str, *, field: str = "base_url_env") -> str:
        """``name`` if it is a variable meant to hold a base URL (:data:`BASE_URL_ENVS`)."""
        if name not in SETTINGS_NAMES and any(
            fnmatch.fnmatchcase(name or "", p) for p in BASE_URL_ENVS
        ):
            return name
        raise SecretNotAllowed(
            f"{field}: the environment variable {name!r} is not one that holds an endpoint's "
            f"base URL (allowed: {', '.join(BASE_URL_ENVS)})"
        )

    def worker_env(self, needed: Iterable[str], env: Mapping[str, str] | None = None) -> dict:
        """The environment a worker process starts with.

        The app's environment less every key and password it does not need (Streamlit
        also copies the app's root-level secrets into the environment: those go too),
        plus the allowed keys in ``needed`` (from the environment or the app's
        secrets) and these settings, so the worker checks what the app checked.
        """
        env = os.environ if env is None else env
        needed = {n for n in needed if self.key_env_allowed(n)}
        secret = set(_secret_strings()) | {"RESET_STUDIO_PASSWORD", ENV["users"]}
        out = {
            k: v
            for k, v in env.items()
            if k in needed or not (self.key_env_allowed(k) or k in secret)
        }
        for name in needed:
            if value := key_value(name, env):
                out[name] = value
        return {**out, **self.to_env()}

    def base_url_patterns(self, env: Mapping[str, str] | None = None) -> list[str]:
        if self.allowed_base_urls is not None:
            return self.allowed_base_urls
        if not self.shared:
            return ["*"]
        env = os.environ if env is None else env
        return [
            "https://api.openai.com/v1",
            *([env["OPENAI_BASE_URL"]] if env.get("OPENAI_BASE_URL") else []),
        ]

    def check_base_url(
        self, url: str | None, *, field: str = "base_url", env: Mapping[str, str] | None = None
    ) -> str | None:
        """``url`` if this deployment may send requests (and keys) there, else :class:`SecretNotAllowed`.

        ``None`` (the provider's default endpoint) is checked as the OpenAI API.
        """
        from reset_core.judging.engine import normalise_base_url

        try:
            target = normalise_base_url(url or "https://api.openai.com/v1")
        except ValueError as e:  # a port that is not a number, say
            raise SecretNotAllowed(f"{field}: {url!r} is not a URL ({e})") from e
        patterns = self.base_url_patterns(env)
        if any(url_matches(target, p) for p in patterns):
            return url
        raise SecretNotAllowed(
            f"{field}: {target} is not an endpoint this deployment allows "
            f"(allowed: {', '.join(patterns)}; set {ENV['allowed_base_urls']} to change)"
        )

    # ------------------------------------------------------------------ paths
    def confine(self, path: str | Path, *, field: str) -> Path:
        """``path`` resolved (``~`` and symlinks too), if it lies inside the data root.

        A relative path is taken relative to the data root, which is what a user of a
        shared server means by "exports/run1".
        """
        return confine(path, self.data_root, field=field)

    def confine_model(self, ref: str, *, field: str, local: bool = False) -> str:
        """A model reference typed into the UI: a hub id as it is, a local folder confined.

        A folder may lie in the data root (trained models) or in the bundled models
        folder (the embedded model); a relative one is taken from the data root.
        ``local``: ``ref`` names a folder (the "Local folder" field). Otherwise anything
        transformers would open from disk counts as one: an absolute, ``~`` or ``./``
        path, an existing relative path, or more parts than a hub id's ``org/name``.

        >>> Deployment().confine_model("Qwen/Qwen2.5-0.5B", field="model")
        'Qwen/Qwen2.5-0.5B'
        >>> Deployment().confine_model("/etc", field="model")
        Traceback (most recent call last):
        ...
        reset_core.deployment.PathNotAllowed: model: /etc is outside the data root ...
        """
        ref = ref.strip()
        if not (local or _looks_local(ref)):
            return ref
        try:
            return str(self.confine(ref, field=field))
        except PathNotAllowed:
            # Relative means relative to the data root, as everywhere; the models folder
            # is a second place a resolved path may lie in, never a second base.
            typed = Path(ref).expanduser()
            base = Path(self.data_root).expanduser().resolve()
            resolved = (typed if typed.is_absolute() else base / typed).resolve()
            models = paths.MODELS_DIR.resolve()
            if resolved == models or models in resolved.parents:
                return str(resolved)
        raise PathNotAllowed(
            f"{field}: {ref} is outside the data root {Path(self.data_root).resolve()} and "
            f"the bundled models folder {paths.MODELS_DIR} (set {ENV['data_root']} to change it)"
        )


def url_matches(target: str, pattern: str) -> bool:
    """Whether the normalised URL ``target`` is one ``pattern`` allows.

    A pattern's scheme, host[:port] and path are matched separately, so a ``*`` never
    reaches across a ``/``: ``https://*.example.com`` allows a subdomain, not
    ``https://evil.test/.example.com``. A pattern without a path allows every path on
    its host (the key goes to the host either way); ``*`` alone allows any URL.

    >>> url_matches("http://127.0.0.1:8000/v1", "http://127.0.0.1:*")
    True
    >>> url_matches("https://evil.test/x.example.com/v1", "https://*.example.com/v1")
    False
    >>> url_matches("https://api.openai.com/v1", "HTTPS://API.OPENAI.COM/v1/")
    True
    """
    from reset_core.judging.engine import normalise_base_url

    pattern = pattern.strip()
    if pattern == "*":
        return True
    if not any(c in pattern for c in "*?["):
        pattern = normalise_base_url(pattern)
    scheme, _, rest = pattern.partition("://") if "://" in pattern else ("http", "", pattern)
    netloc, slash, path = rest.partition("/")
    t_scheme, _, t_rest = target.partition("://")
    t_netloc, _, t_path = t_rest.partition("/")
    return (
        fnmatch.fnmatchcase(t_scheme, scheme.lower())
        and fnmatch.fnmatchcase(t_netloc, netloc.lower())
        and (not slash or not path.strip("/") or fnmatch.fnmatchcase(t_path, path.strip("/")))
    )


def confine(path: str | Path, root: str | Path, *, field: str) -> Path:
    """``path`` resolved inside ``root``, else :class:`PathNotAllowed` naming ``field``.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> confine("exports/run1", root, field="folder") == root.resolve() / "exports" / "run1"
    True
    >>> confine("../x", root, field="folder")
    Traceback (most recent call last):
    ...
    reset_core.deployment.PathNotAllowed: folder: ../x is outside the data root ...
    """
    root = Path(root).expanduser().resolve()
    p = Path(str(path).strip()).expanduser()
    resolved = (p if p.is_absolute() else root / p).resolve()
    if resolved != root and root not in resolved.parents:
        raise PathNotAllowed(
            f"{field}: {path} is outside the data root {root} (set {ENV['data_root']} to change it)"
        )
    return resolved


def _looks_local(ref: str) -> bool:
    """Whether transformers would read ``ref`` from disk rather than the Hugging Face hub.

    >>> [_looks_local(r) for r in ("Qwen/Qwen2.5-0.5B", "gpt2", "/models/x", "../x", "a/b/c")]
    [False, False, True, True, True]
    """
    if not ref:
        return False
    return (
        ref.startswith(("/", "~", ".", "\\"))
        or "\\" in ref
        or ref.count("/") > 1
        or Path(ref).exists()
    )


_UNSAFE = re.compile(r"[^A-Za-z0-9._ ()+-]+")
_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,10}$")


def safe_upload_name(name: str) -> str:
    """An uploaded file's name, reduced to its last component and harmless characters.

    The suffix still picks the reader and the stem is still the default source; what
    is gone is every directory part (``../``, ``\\``, drive letters), control bytes,
    a leading dot, and length past 100 characters (a file system refuses names over
    255 bytes, which would fail the upload with an OS error).

    >>> safe_upload_name("my data (v2).jsonl"), safe_upload_name("C:\\\\x\\\\..\\\\ok.csv")
    ('my data (v2).jsonl', 'ok.csv')
    >>> safe_upload_name("\\x00.."), safe_upload_name(".jsonl"), len(safe_upload_name("x" * 999 + ".csv"))
    ('upload', 'upload.jsonl', 104)
    """
    last = _UNSAFE.sub("_", re.split(r"[\\/]", name)[-1])
    m = _SUFFIX.search(last)
    suffix = m.group() if m else ""
    stem = last[: m.start()] if m else last
    stem = stem.strip(" ._")[:100].strip(" ._")
    return (stem if any(c.isalnum() for c in stem) else "upload") + suffix


def session_upload_dir(root: str | Path, session_id: str, *, create: bool = True) -> Path:
    """A per-session folder for uploads under ``root/uploads``, created on first use.

    ``session_id`` comes from the Streamlit runtime; it is reduced to safe characters
    so it can never name a folder outside ``root``. ``create=False``: only its name.
    """
    folder = Path(root) / "uploads" / (re.sub(r"[^A-Za-z0-9_-]", "", session_id) or "session")
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    return folder


#: A session's upload folder untouched this long belongs to a closed tab: Streamlit has
#: no hook for a session's end, so folders are swept by age when another session uploads.
UPLOAD_MAX_AGE_S = 24 * 3600


def sweep_uploads(root: str | Path, *, keep: Path, max_age_s: float = UPLOAD_MAX_AGE_S) -> int:
    """Remove the upload folders of other sessions idle for ``max_age_s``; return how many.

    A live session whose folder was swept just writes its upload again from memory.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> old, mine = session_upload_dir(root, "old"), session_upload_dir(root, "mine")
    >>> _ = (old / "a.csv").write_text("x"); os.utime(old, (0, 0))
    >>> sweep_uploads(root, keep=mine), old.exists(), mine.exists()
    (1, False, True)
    """
    import shutil

    now, n = time.time(), 0
    for folder in (Path(root) / "uploads").glob("*"):
        if folder.is_dir() and folder != keep and now - folder.stat().st_mtime > max_age_s:
            shutil.rmtree(folder, ignore_errors=True)
            n += 1
    return n


# ---------------------------------------------------------------------- password hashes
#: scrypt's cost: OWASP's recommended minimum (N=2^17, r=8, p=1: 128 MiB, a fraction of a
#: second per check). Each hash carries its own parameters, so raising them later keeps
#: old hashes valid.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**17, 8, 1
_HASH_PREFIX = "$scrypt$"


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """A salted scrypt hash of ``password`` in PHC string form, for ``[reset_studio.users]``.

    ``$scrypt$ln=17,r=8,p=1$<salt>$<key>`` (base64, no padding): the format passlib and
    other PHC tools read, so hashes are not tied to this app.
    """
    if not password:
        raise ValueError("password: empty")
    if n < 2 or n & (n - 1):
        raise ValueError(f"n: {n} is not a power of two")
    salt = secrets.token_bytes(16)
    key = _scrypt(password, salt, n, r, p)
    return f"{_HASH_PREFIX}ln={n.bit_length() - 1},r={r},p={p}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (a :func:`hash_password` string); constant time."""
    n, r, p, salt, key = _parse_hash(stored)
    return hmac.compare_digest(_scrypt(password, salt, n, r, p), key)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    # maxmem: scrypt needs 128 * n * r bytes; OpenSSL's default cap (32 MiB) is below N=2^17.
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r + 2**20, dklen=32
    )


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode().rstrip("=")


def _parse_hash(stored: str) -> tuple[int, int, int, bytes, bytes]:
    what = "is not a password hash from `reset-studio user hash` ($scrypt$ln=..,r=..,p=..$salt$key)"
    try:
        prefix, params, salt, key = str(stored).strip().rsplit("$", 3)
        if prefix + "$" != _HASH_PREFIX:
            raise ValueError
        opts = dict(kv.split("=", 1) for kv in params.split(","))
        ln, r, p = int(opts["ln"]), int(opts["r"]), int(opts["p"])
        if not (1 <= ln <= 24 and 1 <= r <= 64 and 1 <= p <= 16):
            raise ValueError
        pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
        raw_salt = base64.b64decode(pad(salt), validate=True)
        raw_key = base64.b64decode(pad(key), validate=True)
    except (ValueError, KeyError, TypeError):
        raise ValueError(what) from None
    if len(raw_salt) < 8 or len(raw_key) != 32:
        raise ValueError(what)
    return 1 << ln, r, p, raw_salt, raw_key


_DUMMY: str | None = None


def _dummy_hash() -> str:
    """A hash nobody's password matches, made once, for the unknown-user path."""
    global _DUMMY
    if _DUMMY is None:
        _DUMMY = hash_password(secrets.token_urlsafe(16))
    return _DUMMY


# ---------------------------------------------------------------------- this process
#: The settings of the running script (the app sets them on each run). A context
#: variable, not a global: each Streamlit script run has its own thread, so the settings
#: one app test made never leak into the next test's workers.
_current: ContextVar[Deployment | None] = ContextVar("reset_studio_deployment", default=None)


def use(deployment: Deployment) -> Deployment:
    """Make ``deployment`` the settings of this script run (the app calls it on each run,
    with the settings it read from its Streamlit secrets); return it."""
    _current.set(deployment)
    return deployment


def current() -> Deployment:
    """These settings: those the app set with :func:`use`, else the environment's.

    :func:`reset_core.jobs.launch` hands them to the workers it starts, so a setting made
    only in the app's secrets still reaches them.
    """
    return Deployment.current()
