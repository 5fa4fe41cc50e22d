"""KEK keyring loading and key wrapping: operator mistakes are named precisely (never with the
secret), and a wrapped key only unwraps for the scope, version and KEK it was made for."""

from __future__ import annotations

import base64
import os
import stat

import pytest

from gateway.crypto.errors import DecryptError, KeyMaterialError
from gateway.crypto.keyring import Keyring, dev_keyfile, generate_kek
from gateway.crypto.wrap import WrappedKey, rewrap, unwrap_key, wrap_key

SECRET = generate_kek()
OTHER = generate_kek()


def test_generated_kek_is_32_random_bytes_in_base64():
    assert len(base64.b64decode(SECRET, validate=True)) == 32
    assert generate_kek() != generate_kek()


def test_env_and_file_references_resolve(tmp_path):
    (tmp_path / "old.key").write_text(OTHER + "\n")
    ring = Keyring.from_refs(
        "new",
        {"new": "env:GATEWAY_KEK", "old": "file:old.key"},
        environ={"GATEWAY_KEK": SECRET},
        base_dir=tmp_path,
    )
    assert ring.active_id == "new"
    assert ring.active_key == base64.b64decode(SECRET)
    assert ring.get("old") == base64.b64decode(OTHER)
    assert "old" in ring and list(ring) == ["new", "old"]
    assert SECRET not in repr(ring)


BAD_VALUES = [
    ("not base64", "%%%not-base64%%%", "not valid base64"),
    ("16 bytes", base64.b64encode(b"k" * 16).decode(), "must decode to 32 bytes"),
    ("33 bytes", base64.b64encode(b"k" * 33).decode(), "must decode to 32 bytes"),
    ("urlsafe alphabet", base64.urlsafe_b64encode(b"\xfb" * 32).decode(), "not valid base64"),
]


@pytest.mark.parametrize(("case", "value", "reason"), BAD_VALUES, ids=[c[0] for c in BAD_VALUES])
def test_malformed_env_kek_names_the_variable_never_the_value(case, value, reason):
    with pytest.raises(KeyMaterialError) as info:
        Keyring.from_refs("main", {"main": "env:MY_KEK"}, environ={"MY_KEK": value})
    message = str(info.value)
    assert "MY_KEK" in message and "'main'" in message and reason in message
    assert value not in message


@pytest.mark.parametrize(("case", "value", "reason"), BAD_VALUES, ids=[c[0] for c in BAD_VALUES])
def test_malformed_file_kek_names_the_file_never_the_value(tmp_path, case, value, reason):
    (tmp_path / "kek.b64").write_text(value)
    with pytest.raises(KeyMaterialError) as info:
        Keyring.from_refs("main", {"main": "file:kek.b64"}, environ={}, base_dir=tmp_path)
    message = str(info.value)
    assert str(tmp_path / "kek.b64") in message and reason in message
    assert value not in message


def test_missing_env_var_and_missing_file_are_named(tmp_path):
    with pytest.raises(KeyMaterialError, match="GATEWAY_KEK is not set"):
        Keyring.from_refs("d", {"d": "env:GATEWAY_KEK"}, environ={})
    with pytest.raises(KeyMaterialError, match="nope.key does not exist"):
        Keyring.from_refs("d", {"d": "file:nope.key"}, environ={}, base_dir=tmp_path)


def test_a_raw_key_pasted_instead_of_a_reference_is_not_echoed():
    with pytest.raises(KeyMaterialError) as info:
        Keyring.from_refs("d", {"d": SECRET}, environ={})
    assert SECRET not in str(info.value) and "env:NAME or file:PATH" in str(info.value)


def test_active_id_must_be_in_the_keyring():
    with pytest.raises(KeyMaterialError, match="'gone' is not in the keyring"):
        Keyring.from_refs("gone", {"d": "env:K"}, environ={"K": SECRET})


def test_the_same_key_under_two_ids_is_a_duplicate():
    with pytest.raises(KeyMaterialError) as info:
        Keyring.from_refs("a", {"a": "env:A", "b": "env:B"}, environ={"A": SECRET, "B": SECRET})
    assert "duplicate" in str(info.value) and SECRET not in str(info.value)


def test_dev_keyfile_is_created_private_and_reused(tmp_path):
    path = tmp_path / "dev.kek"
    ref = dev_keyfile(path)
    assert ref == f"file:{path.resolve()}"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    first = path.read_text()
    assert dev_keyfile(path) == ref and path.read_text() == first
    ring = Keyring.from_refs("dev", {"dev": ref}, environ={})
    assert ring.active_key == base64.b64decode(first)


def test_dev_keyfile_readable_by_others_is_refused(tmp_path):
    path = tmp_path / "dev.kek"
    dev_keyfile(path)
    path.chmod(0o644)
    with pytest.raises(KeyMaterialError, match="readable by others"):
        dev_keyfile(path)


# -- wrapping -------------------------------------------------------------------------------

RING = Keyring({"k1": os.urandom(32)}, "k1")
DATA_KEY = os.urandom(32)


def test_wrap_round_trip_stamps_the_kek_id():
    record = wrap_key(DATA_KEY, RING, "user:alice", 3)
    assert WrappedKey.from_bytes(record).kek_id == "k1"
    assert unwrap_key(record, RING, "user:alice", 3) == DATA_KEY
    assert DATA_KEY not in record


@pytest.mark.parametrize(
    ("scope", "version"), [("user:bob", 3), ("role:admin", 3), ("user:alice", 4)]
)
def test_wrapped_key_copied_to_another_scope_or_version_fails(scope, version):
    record = wrap_key(DATA_KEY, RING, "user:alice", 3)
    with pytest.raises(DecryptError):
        unwrap_key(record, RING, scope, version)


def test_relabelled_kek_id_fails():
    both = Keyring({"k1": RING.active_key, "k2": os.urandom(32)}, "k1")
    record = wrap_key(DATA_KEY, both, "user:alice", 1)
    wrapped = WrappedKey.from_bytes(record)
    relabelled = WrappedKey("k2", wrapped.nonce, wrapped.ciphertext).to_bytes()
    with pytest.raises(DecryptError):
        unwrap_key(relabelled, both, "user:alice", 1)


def test_every_bit_flip_of_a_wrapped_key_fails():
    record = wrap_key(DATA_KEY, RING, "user:alice", 1)
    for i in range(len(record)):
        forged = bytearray(record)
        forged[i] ^= 0x04
        with pytest.raises((DecryptError, KeyMaterialError)):
            unwrap_key(bytes(forged), RING, "user:alice", 1)


def test_rewrap_moves_to_the_active_kek_and_old_kek_can_then_be_removed():
    old = Keyring({"old": os.urandom(32)}, "old")
    record = wrap_key(DATA_KEY, old, "user:alice", 1)
    both = Keyring({"old": old.active_key, "new": os.urandom(32)}, "new")
    moved = rewrap(record, both, "user:alice", 1)
    assert WrappedKey.from_bytes(moved).kek_id == "new"
    assert rewrap(moved, both, "user:alice", 1) is moved  # idempotent
    only_new = Keyring({"new": both.active_key}, "new")
    assert unwrap_key(moved, only_new, "user:alice", 1) == DATA_KEY
    with pytest.raises(KeyMaterialError, match="'old' is not in the keyring"):
        unwrap_key(record, only_new, "user:alice", 1)
