"""Saved connections for `bramley connect --profile NAME`, in one TOML file:

    default = "prod"

    [profiles.prod]
    url = "acme.api.kandji.io"
    token_file = "/home/me/.config/bramley/acme.token"   # read when used

    [profiles.lab]
    url = "http://127.0.0.1:8080"
    token_env = "LAB_TOKEN"                                # read from the environment when used

    [profiles.eu]
    url = "acme.api.eu.kandji.io"
    token = "…"                                            # kept in the file itself: only if the file is private

The file is `$BRAMLEY_CONNECT_PROFILES`, else `$XDG_CONFIG_HOME/bramley/connections.toml`
(`~/.config/bramley/connections.toml`). It is written with mode 0600, and a file holding a token that others can
read is refused, as ssh refuses a readable private key.
"""
from __future__ import annotations

import json
import os
import re
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path

from bramley.connector.errors import InvalidInput

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass
class Profile:
    name: str
    url: str
    token: str | None = None
    token_file: str | None = None
    token_env: str | None = None
    region: str | None = None
    ca_file: str | None = None

    @property
    def token_source(self) -> str:
        if self.token_file:
            return f"file {self.token_file}"
        if self.token_env:
            return f"environment ${self.token_env}"
        if self.token:
            return "stored in the profile file"
        return "none"

    def read_token(self) -> str | None:
        if self.token_file:
            return read_token_file(self.token_file, where=f"profile {self.name}")
        if self.token_env:
            value = os.environ.get(self.token_env)
            if not value:
                raise InvalidInput("Connection", f"profile {self.name} reads its token from ${self.token_env}, "
                                                 "which is not set")
            return value
        return self.token


def default_path() -> Path:
    explicit = os.environ.get("BRAMLEY_CONNECT_PROFILES")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "bramley" / "connections.toml"


def read_token_file(path: str, *, where: str = "--token-file") -> str:
    import sys

    if path == "-":
        return sys.stdin.readline().strip()
    try:
        return Path(path).expanduser().read_text().strip()
    except OSError as exc:
        raise InvalidInput("Connection", f"cannot read the token file of {where}: {exc.strerror}") from None


class ProfileFile:
    def __init__(self, path: Path | None = None):
        self.path = path or default_path()

    def _load(self) -> dict:
        if not self.path.exists():
            return {"profiles": {}}
        try:
            data = tomllib.loads(self.path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise InvalidInput("Connection", f"cannot read the profile file {self.path}: {exc}") from None
        data.setdefault("profiles", {})
        if any(p.get("token") for p in data["profiles"].values()) and _readable_by_others(self.path):
            raise InvalidInput("Connection", f"{self.path} holds a token and others can read it; "
                                             f"run: chmod 600 {self.path}")
        return data

    def all(self) -> tuple[list[Profile], str | None]:
        data = self._load()
        profiles = [Profile(name=name, **{k: v for k, v in values.items() if k in _FIELDS})
                    for name, values in sorted(data["profiles"].items())]
        return profiles, data.get("default")

    def get(self, name: str | None) -> Profile | None:
        profiles, default = self.all()
        wanted = name or default
        if wanted is None:
            return None
        for profile in profiles:
            if profile.name == wanted:
                return profile
        if name is None:
            raise InvalidInput("Connection", f"the default profile {wanted!r} is not in {self.path}")
        raise InvalidInput("Connection", f"no profile {name!r} in {self.path} (bramley connect profile list)")

    def save(self, profile: Profile, *, make_default: bool = False) -> None:
        if not NAME.match(profile.name):
            raise InvalidInput("Connection", "a profile name is letters, digits, '.', '_' or '-' (64 at most)")
        data = self._load()
        values = {k: getattr(profile, k) for k in _FIELDS if getattr(profile, k)}
        data["profiles"][profile.name] = values
        if make_default or not data.get("default"):
            data["default"] = profile.name
        self._write(data)

    def remove(self, name: str) -> None:
        data = self._load()
        if name not in data["profiles"]:
            raise InvalidInput("Connection", f"no profile {name!r} in {self.path}")
        del data["profiles"][name]
        if data.get("default") == name:
            data.pop("default")
        self._write(data)

    def set_default(self, name: str) -> None:
        data = self._load()
        if name not in data["profiles"]:
            raise InvalidInput("Connection", f"no profile {name!r} in {self.path}")
        data["default"] = name
        self._write(data)

    def _write(self, data: dict) -> None:
        lines = ["# bramley connect profiles (bramley connect profile --help)"]
        if data.get("default"):
            lines.append(f"default = {_toml_str(data['default'])}")
        for name, values in sorted(data["profiles"].items()):
            lines += ["", f"[profiles.{_toml_str(name)}]"]
            lines += [f"{k} = {_toml_str(str(v))}" for k, v in values.items() if k in _FIELDS]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        os.chmod(temp, 0o600)
        os.replace(temp, self.path)


_FIELDS = ("url", "token", "token_file", "token_env", "region", "ca_file")


def _toml_str(value: str) -> str:
    # A TOML basic string: JSON's escapes are a subset of TOML's (\" \\ \n \t \uXXXX).
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def _readable_by_others(path: Path) -> bool:
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return bool(mode & (stat.S_IRGRP | stat.S_IROTH))
