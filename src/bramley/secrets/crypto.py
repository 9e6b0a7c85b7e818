"""Keys and AES-GCM for secrets at rest: the master key, tenant data keys, sealing values. No DB access.

Envelope encryption: the master key (setting BRAMLEY_SECRET_KEY, else `<data_dir>/master.key`, mode 0600)
wraps one random data key per tenant; the data key encrypts that tenant's values. Every AES-GCM call binds
associated data naming where the bytes belong, so a wrapped key or a ciphertext copied elsewhere fails to open.
Nothing in this module logs, and no key material appears in a repr or an error message.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import os
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bramley.config import Settings
from bramley.errors import BramleyError

KEY_BYTES = 32
NONCE_BYTES = 12
KEY_FILE = "master.key"
STAGED_KEY_FILE = "master.key.new"  # written by rotate-key before its transaction commits
ENV_SOURCE = "BRAMLEY_SECRET_KEY"


class MasterKeyError(BramleyError):
    """The master key is missing, malformed, unsafely stored or not the one the data was wrapped with."""


class SecretUnreadable(BramleyError):
    """A stored value or data key failed authentication: wrong key, or bytes moved to another row."""


@dataclass(frozen=True)
class MasterKey:
    material: bytes = field(repr=False)
    source: str  # where an admin finds it: ENV_SOURCE, a file path, a CLI option
    path: Path | None = None  # set when the key lives in a file Bramley manages

    @property
    def id(self) -> str:
        """Public fingerprint stored next to each wrapped data key (first 8 bytes of a hash, hex)."""
        return hashlib.sha256(b"bramley master key id\0" + self.material).hexdigest()[:16]

    @property
    def file_based(self) -> bool:
        return self.path is not None


def generate_key() -> bytes:
    return os.urandom(KEY_BYTES)


def encode_key(material: bytes) -> str:
    return base64.b64encode(material).decode("ascii")


def parse_master_key(text: str, *, source: str) -> MasterKey:
    """Base64 (standard or URL-safe) of exactly 32 bytes."""
    cleaned = text.strip()
    try:
        material = base64.b64decode(cleaned.replace("-", "+").replace("_", "/") + "=" * (-len(cleaned) % 4),
                                    validate=True)
    except (binascii.Error, ValueError):
        material = b""
    if len(material) != KEY_BYTES:
        raise MasterKeyError(f"{source} must be base64 of {KEY_BYTES} random bytes "
                             "(make one with `bramley secrets generate-key`).")
    return MasterKey(material, source)


# -- the key file ---------------------------------------------------------------------------------------------

def key_path(settings: Settings) -> Path:
    return Path(settings.data_dir) / KEY_FILE


def staged_path(settings: Settings) -> Path:
    return Path(settings.data_dir) / STAGED_KEY_FILE


def _check_private(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if os.name == "posix" and mode & 0o077:
        raise MasterKeyError(
            f"master key file {path} has mode {mode:04o}: group or others can read it. "
            f"Bramley refuses to use it; restrict it with `chmod 600 {path}` (and consider rotating the key "
            "with `bramley secrets rotate-key`, since others may have read it).")


def read_key_file(path: Path) -> MasterKey:
    _check_private(path)
    try:
        text = path.read_text("ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise MasterKeyError(f"cannot read master key file {path}: {exc.__class__.__name__}") from None
    key = parse_master_key(text, source=str(path))
    return MasterKey(key.material, key.source, path)


def _write_private(path: Path, material: bytes, *, replace: bool) -> None:
    """Write via a 0600 temp file in the same directory, then link (create-if-absent) or rename (replace).

    Either way readers see no file or a whole file, and two processes creating at once agree on one key.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(encode_key(material) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)  # in case a umask or ACL widened it
        if replace:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            finally:
                os.unlink(tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_master_key(settings: Settings) -> MasterKey:
    """The configured master key: the setting, else the key file (created on first use, mode 0600)."""
    if settings.secret_key is not None:
        return parse_master_key(settings.secret_key.get_secret_value(), source=ENV_SOURCE)
    path = key_path(settings)
    if not path.exists():
        try:
            _write_private(path, generate_key(), replace=False)
        except FileExistsError:
            pass  # another process created it first: use theirs
        except OSError as exc:
            raise MasterKeyError(f"cannot create master key file {path}: {exc.strerror or exc}") from None
    return read_key_file(path)


def stage_master_key(settings: Settings) -> MasterKey:
    """A fresh key written to master.key.new (0600); promote it once the re-wrapping transaction commits."""
    path = staged_path(settings)
    _write_private(path, generate_key(), replace=True)
    return read_key_file(path)


def staged_master_key(settings: Settings) -> MasterKey | None:
    path = staged_path(settings)
    return read_key_file(path) if path.exists() else None


def promote_staged_key(settings: Settings) -> None:
    os.replace(staged_path(settings), key_path(settings))
    _fsync_dir(Path(settings.data_dir))


def discard_staged_key(settings: Settings) -> None:
    staged_path(settings).unlink(missing_ok=True)


# -- AES-GCM --------------------------------------------------------------------------------------------------

def value_aad(tenant_id: str, owner_type: str, owner_id: str, kind: str) -> bytes:
    # owner_type and kind are [a-z0-9_] (checked by the service), so the one free field cannot shift the others.
    return f"{tenant_id}|{owner_type}|{owner_id}|{kind}".encode()


def _wrap_aad(tenant_id: str, version: int) -> bytes:
    return f"bramley tenant data key|{tenant_id}|{version}".encode()


def seal(aead: AESGCM, plaintext: bytes, aad: bytes) -> tuple[bytes, bytes]:
    nonce = os.urandom(NONCE_BYTES)
    return nonce, aead.encrypt(nonce, plaintext, aad)


def open_sealed(aead: AESGCM, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    try:
        return aead.decrypt(nonce, ciphertext, aad)
    except InvalidTag:
        raise SecretUnreadable("stored value failed authentication (wrong key, or not stored for this row)") from None


def wrap_data_key(master: MasterKey, tenant_id: str, version: int, data_key: bytes) -> bytes:
    nonce, sealed = seal(AESGCM(master.material), data_key, _wrap_aad(tenant_id, version))
    return nonce + sealed


def unwrap_data_key(master: MasterKey, tenant_id: str, version: int, wrapped: bytes) -> bytes:
    try:
        return AESGCM(master.material).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:],
                                               _wrap_aad(tenant_id, version))
    except InvalidTag:
        raise SecretUnreadable(f"data key of tenant {tenant_id} does not open with master key {master.id}") from None


# -- per-process key ring -------------------------------------------------------------------------------------

class KeyRing:
    """The master key of one configuration plus a cache of unwrapped tenant data keys (never logged).

    The cache is keyed by tenant, version, master key id and the wrapped bytes, so a rotation (even one rolled
    back and redone) can never serve a stale key. A file-based ring re-reads the key file when it meets a
    data key wrapped by another master key: after `bramley secrets rotate-key`, running servers follow along.
    """

    MAX_CACHED = 10_000

    def __init__(self, settings: Settings):
        self.settings = settings
        self.master = load_master_key(settings)
        self._data_keys: dict[tuple, AESGCM] = {}
        self._lock = threading.Lock()

    def find_master(self, key_id: str) -> MasterKey | None:
        if key_id == self.master.id:
            return self.master
        if self.master.file_based:
            current = read_key_file(key_path(self.settings))
            if current.id == key_id:
                self.master = current
                return current
            staged = staged_master_key(self.settings)  # rotate-key committed but has not renamed the file yet
            if staged is not None and staged.id == key_id:
                return staged
        return None

    def master_for(self, key_id: str) -> MasterKey:
        found = self.find_master(key_id)
        if found is not None:
            return found
        where = ("the key file " + str(key_path(self.settings)) if self.master.file_based else ENV_SOURCE)
        raise MasterKeyError(
            f"secrets were wrapped by master key {key_id}, but {where} holds key {self.master.id}. "
            "Configure the master key that was current when they were written (after a rotation with "
            "--new-master-key, set BRAMLEY_SECRET_KEY to the new key and restart).")

    def data_key(self, tenant_id: str, version: int, master_key_id: str, wrapped: bytes) -> AESGCM:
        cache_key = (tenant_id, version, master_key_id, wrapped)
        aead = self._data_keys.get(cache_key)
        if aead is None:
            aead = AESGCM(unwrap_data_key(self.master_for(master_key_id), tenant_id, version, wrapped))
            with self._lock:
                if len(self._data_keys) >= self.MAX_CACHED:
                    self._data_keys.clear()
                self._data_keys[cache_key] = aead
        return aead


_rings: dict[tuple[str, str], KeyRing] = {}
_rings_lock = threading.Lock()


def keyring(settings: Settings) -> KeyRing:
    """The process-wide ring for these settings; raises MasterKeyError if the master key is unusable."""
    if settings.secret_key is not None:
        ident = ("setting", hashlib.sha256(settings.secret_key.get_secret_value().encode()).hexdigest())
    else:
        ident = ("file", str(key_path(settings).resolve()))
    with _rings_lock:
        ring = _rings.get(ident)
        if ring is None:
            ring = _rings[ident] = KeyRing(settings)
        return ring
