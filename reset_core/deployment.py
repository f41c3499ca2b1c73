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
>>> d.key_env_allowed("AWS_SECRET_ACCESS_KEY"), d.key_env_allowed("RESET_STUDIO_PASSWORD")
(False, False)
>>> safe_upload_name("../../etc/passwd")
'passwd'
>>> safe_upload_name("..\\\\..\\\\boot.ini")
'boot.ini'
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from reset_core import paths

#: The environment variables that configure a deployment. They are never secrets a judge
#: may send (RESET_STUDIO_PASSWORD would otherwise match the default ``RESET_STUDIO_*``).
ENV = {
    "data_root": "RESET_STUDIO_DATA_ROOT",
    "allowed_key_envs": "RESET_STUDIO_ALLOWED_KEY_ENVS",
    "allowed_base_urls": "RESET_STUDIO_ALLOWED_BASE_URLS",
    "login": "RESET_STUDIO_LOGIN",
    "password_env": "RESET_STUDIO_PASSWORD_ENV",
}
#: Names that configure the app rather than hold a judge's key.
SETTINGS_NAMES = frozenset(ENV.values()) | {"RESET_STUDIO_DB", "RESET_STUDIO_PASSWORD"}


class PathNotAllowed(ValueError):
    """A path typed into the UI lies outside the deployment's data root."""


class SecretNotAllowed(ValueError):
    """A judge or model names an environment variable (or host) the deployment does not allow."""


class Deployment(BaseModel):
    """The deployment's settings; each field's description is its help text."""

    data_root: Path = Field(
        default_factory=lambda: paths.default_db_path().resolve().parent,
        description="Folder that every path typed into the app must lie in (database, import "
        "file, export and training output folders). Default: the default database's folder. "
        "Set with $RESET_STUDIO_DATA_ROOT.",
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
        raw.pop("password_env", None)
        return cls.model_validate(raw)

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
        """The allowed names, for the UI's choice: literal names plus set variables matching a pattern."""
        env = os.environ if env is None else env
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

        target = normalise_base_url(url or "https://api.openai.com/v1")
        patterns = self.base_url_patterns(env)
        if any(
            fnmatch.fnmatchcase(target, normalise_base_url(p) if "*" not in p else p)
            for p in patterns
        ):
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


def session_upload_dir(root: str | Path, session_id: str) -> Path:
    """A per-session folder for uploads under ``root/uploads``, created on first use.

    ``session_id`` comes from the Streamlit runtime; it is reduced to safe characters
    so it can never name a folder outside ``root``.
    """
    folder = Path(root) / "uploads" / (re.sub(r"[^A-Za-z0-9_-]", "", session_id) or "session")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
