"""The master key: from BRAMLEY_SECRET_KEY, or a key file Bramley creates 0600 and refuses when others can read it."""
from __future__ import annotations

import base64
import stat
import uuid

import pytest

from bramley.config import Settings
from bramley.secrets import crypto
from bramley.secrets import service as secrets
from tests.conftest import free_port, run_cli


def _settings(tmp_path, **kw) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'b.db'}", **kw)


def _flat(text: str) -> str:
    """CLI output with Rich's line wrapping undone."""
    return " ".join(text.split())


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_key_file_is_created_0600_and_reused(tmp_path):
    s = _settings(tmp_path)
    first = crypto.load_master_key(s)
    path = tmp_path / "data" / "master.key"
    assert _mode(path) == 0o600
    assert len(base64.b64decode(path.read_text())) == 32
    assert crypto.load_master_key(s).material == first.material
    assert first.material.hex() not in repr(first) and str(first.material) not in repr(first)


def test_shared_app_key_file_is_private(settings, make_tenant):
    t = make_tenant()
    with t.db.unit_of_work() as s:
        secrets.put(s, t.ctx(s), owner_type="device", owner_id=str(uuid.uuid4()), kind="unlock_pin", value="1")
    assert _mode(settings.data_dir / "master.key") == 0o600


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_key_file_readable_by_others_is_refused(tmp_path, mode):
    s = _settings(tmp_path)
    crypto.load_master_key(s)
    path = tmp_path / "data" / "master.key"
    path.chmod(mode)
    with pytest.raises(crypto.MasterKeyError) as caught:
        crypto.load_master_key(s)
    assert str(path) in str(caught.value) and "chmod 600" in str(caught.value)


def test_serve_refuses_to_start_with_a_world_readable_key_file(tmp_path):
    s = _settings(tmp_path)
    crypto.load_master_key(s)
    (tmp_path / "data" / "master.key").chmod(0o644)
    proc = run_cli(s, "serve", "--port", str(free_port()), check=False)
    assert proc.returncode == 1
    assert "master key file" in _flat(proc.stderr) and "chmod 600" in _flat(proc.stderr)
    assert "Traceback" not in proc.stderr


def test_secret_key_setting_is_used_and_no_file_is_written(tmp_path):
    material = crypto.generate_key()
    s = _settings(tmp_path, secret_key=base64.b64encode(material).decode())
    key = crypto.load_master_key(s)
    assert key.material == material and not key.file_based
    assert not (tmp_path / "data" / "master.key").exists()
    assert base64.b64encode(material).decode() not in repr(s)


def test_malformed_secret_key_is_refused_without_echoing_it(tmp_path):
    s = _settings(tmp_path, secret_key="c2hvcnQta2V5LXZhbHVl")
    with pytest.raises(crypto.MasterKeyError) as caught:
        crypto.load_master_key(s)
    assert "BRAMLEY_SECRET_KEY" in str(caught.value) and "c2hvcnQta2V5LXZhbHVl" not in str(caught.value)
    proc = run_cli(_settings(tmp_path), "serve", "--port", str(free_port()), check=False,
                   BRAMLEY_SECRET_KEY="c2hvcnQta2V5LXZhbHVl")
    assert proc.returncode == 1 and "BRAMLEY_SECRET_KEY must be base64" in _flat(proc.stderr)
    assert "c2hvcnQta2V5LXZhbHVl" not in proc.stderr + proc.stdout


def test_generate_key_prints_a_usable_key(tmp_path):
    proc = run_cli(_settings(tmp_path), "secrets", "generate-key")
    key = crypto.parse_master_key(proc.stdout, source="output")
    assert len(key.material) == 32
