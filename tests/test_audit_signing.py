"""signing.py against the real ssh-keygen: both key kinds, both directions, and every way a signature is refused."""

from __future__ import annotations

import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest

from mlops_layer import signing
from mlops_layer.errors import ConfigError, InputError

NS = "mlops-approval"
DATA = b'{"model":"churn","version":"3","to":"champion"}'


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("keys")
    out = {
        "alice": d / "alice",  # OpenSSH key via ssh-keygen
        "bob": d / "bob.pem",  # raw Ed25519 PEM via cryptography
        "eve": d / "eve",  # not trusted
    }
    signing.generate_key(out["alice"], "alice@example.com")
    signing.generate_key(out["bob"], "bob@example.com", kind="ed25519")
    signing.generate_key(out["eve"], "eve")
    allowed = d / "allowed_signers"
    allowed.write_text(
        "# trusted approvers\n"
        + signing.allowed_signers_line("alice@example.com", signing.public_key(out["alice"]))
        + "\n"
        + signing.allowed_signers_line("bob@example.com", signing.public_key(out["bob"]), namespaces=[NS])
        + "\n"
    )
    out["allowed"] = allowed
    return out


def _keygen_verify(allowed: Path, principal: str, sig: str, data: bytes, tmp: Path, ns: str = NS) -> int:
    (tmp / "s.sig").write_text(sig)
    proc = subprocess.run(
        ["ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", principal, "-n", ns, "-s", str(tmp / "s.sig")],
        input=data,
        capture_output=True,
        check=False,
    )
    return proc.returncode


@pytest.mark.parametrize(("who", "principal"), [("alice", "alice@example.com"), ("bob", "bob@example.com")])
def test_sign_and_verify_agree_with_ssh_keygen(keys: dict[str, Path], tmp_path: Path, who: str, principal: str) -> None:
    sig = signing.sign(DATA, keys[who], NS)
    assert sig.startswith("-----BEGIN SSH SIGNATURE-----")
    assert signing.verify(DATA, sig, keys["allowed"], NS) == principal
    assert signing.verify(DATA, sig, keys["allowed"], NS, principal=principal) == principal
    assert _keygen_verify(keys["allowed"], principal, sig, DATA, tmp_path) == 0  # interoperable both ways
    assert _keygen_verify(keys["allowed"], principal, sig, DATA + b" ", tmp_path) != 0


def test_ssh_keygen_signature_verifies_in_process(keys: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "msg").write_bytes(DATA)
    subprocess.run(
        ["ssh-keygen", "-Y", "sign", "-q", "-f", str(keys["alice"]), "-n", NS, str(tmp_path / "msg")], check=True
    )
    sig = (tmp_path / "msg.sig").read_text()
    assert signing.verify(DATA, sig, keys["allowed"], NS) == "alice@example.com"


@pytest.mark.parametrize("who", ["alice", "bob"])
def test_altered_data_is_a_bad_signature(keys: dict[str, Path], who: str) -> None:
    sig = signing.sign(DATA, keys[who], NS)
    with pytest.raises(signing.SignatureError, match="does not match the data") as info:
        signing.verify(DATA.replace(b"3", b"4"), sig, keys["allowed"], NS)
    assert not isinstance(info.value, signing.UnknownSignerError)
    assert info.value.exit_code == 1


def test_unknown_key_is_refused(keys: dict[str, Path]) -> None:
    sig = signing.sign(DATA, keys["eve"], NS)
    with pytest.raises(signing.UnknownSignerError, match=r"SHA256:\S+ is not in .*allowed_signers"):
        signing.verify(DATA, sig, keys["allowed"], NS)


def test_principal_must_own_the_key(keys: dict[str, Path]) -> None:
    sig = signing.sign(DATA, keys["alice"], NS)
    with pytest.raises(signing.UnknownSignerError, match="belongs to alice@example.com .* not to 'bob@example.com'"):
        signing.verify(DATA, sig, keys["allowed"], NS, principal="bob@example.com")


def test_namespace_binds_the_purpose(keys: dict[str, Path]) -> None:
    sig = signing.sign(DATA, keys["alice"], NS)
    with pytest.raises(
        signing.SignatureError, match="made for namespace 'mlops-approval', not 'mlops-audit-checkpoint'"
    ):
        signing.verify(DATA, sig, keys["allowed"], "mlops-audit-checkpoint")
    # bob's line only allows NS: his checkpoint signature is refused even though it verifies
    sig_bob = signing.sign(DATA, keys["bob"], "mlops-audit-checkpoint")
    with pytest.raises(signing.UnknownSignerError, match="not trusted for namespace"):
        signing.verify(DATA, sig_bob, keys["allowed"], "mlops-audit-checkpoint")


def test_validity_window(keys: dict[str, Path], tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    pub = signing.public_key(keys["bob"]).split()
    allowed.write_text(f'bob@example.com valid-after="20240101",valid-before="20250101Z" {pub[0]} {pub[1]}\n')
    sig = signing.sign(DATA, keys["bob"], NS)
    inside = datetime(2024, 6, 1, tzinfo=timezone.utc)
    assert signing.verify(DATA, sig, allowed, NS, at=inside) == "bob@example.com"
    with pytest.raises(signing.UnknownSignerError, match="not valid at"):
        signing.verify(DATA, sig, allowed, NS, at=datetime(2026, 1, 1, tzinfo=timezone.utc))


def test_rsa_keys_go_through_ssh_keygen(tmp_path: Path) -> None:
    key = tmp_path / "rsa"
    subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", str(key)], check=True)
    allowed = tmp_path / "allowed"
    allowed.write_text(signing.allowed_signers_line("carol", (tmp_path / "rsa.pub").read_text()) + "\n")
    sig = signing.sign(DATA, key, NS)
    assert signing.verify(DATA, sig, allowed, NS) == "carol"
    with pytest.raises(signing.SignatureError, match="does not match"):
        signing.verify(DATA + b"x", sig, allowed, NS)
    with pytest.raises(signing.UnknownSignerError, match="not trusted for 'dave'"):
        signing.verify(DATA, sig, allowed, NS, principal="dave")


@pytest.mark.parametrize(
    "garbage",
    [
        "not a signature",
        "-----BEGIN SSH SIGNATURE-----\n!!!!\n-----END SSH SIGNATURE-----\n",
        "-----BEGIN SSH SIGNATURE-----\nU1NIU0lHAAAAAQ==\n-----END SSH SIGNATURE-----\n",
    ],
)
def test_malformed_signatures(keys: dict[str, Path], garbage: str) -> None:
    with pytest.raises(signing.SignatureError):
        signing.verify(DATA, garbage, keys["allowed"], NS)


def test_allowed_signers_errors_name_file_and_line(tmp_path: Path, keys: dict[str, Path]) -> None:
    sig = signing.sign(DATA, keys["alice"], NS)
    with pytest.raises(ConfigError, match="does not exist"):
        signing.verify(DATA, sig, tmp_path / "missing", NS)
    bad = tmp_path / "bad"
    bad.write_text("# ok\nalice ssh-ed25519 !!notbase64\n")
    with pytest.raises(ConfigError, match=r"bad line 2: public key is not valid base64"):
        signing.parse_allowed_signers(bad)


def test_generate_key_never_overwrites(keys: dict[str, Path]) -> None:
    with pytest.raises(InputError, match="already exists"):
        signing.generate_key(keys["alice"], "again")
    assert oct(keys["bob"].stat().st_mode & 0o777) == "0o600"
    assert signing.fingerprint(signing.public_key(keys["bob"])).startswith("SHA256:")
