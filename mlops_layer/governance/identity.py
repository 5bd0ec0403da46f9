"""Who someone is, for governance: the principals an SSH key is trusted for in ``allowed_signers`` (git's
format).

Identity comes only from a key listed in ``allowed_signers``; roles come from ``policy.yaml``. The actor name
(``MLOPS_ACTOR``, git config) is recorded for context but never proves who approved anything.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from mlops_layer.errors import ApprovalError, ConfigError, InputError, NotFoundError

_KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ssh-dss",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)


@dataclass(frozen=True)
class SignerEntry:
    """One line of allowed_signers: the principals (patterns), options, and the public key (type + base64)."""

    principals: tuple[str, ...]
    options: tuple[str, ...]
    key_type: str
    key_data: str
    line: int


def parse_allowed_signers(path: Path) -> list[SignerEntry]:
    """Parse an allowed_signers file; a malformed line is a ConfigError naming file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFoundError(
            f"allowed signers file {path} does not exist",
            hint="list approvers' public keys there, one 'principal key-type key' per line (git's format)",
        ) from None
    entries: list[SignerEntry] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            tokens = shlex.split(line, comments=False, posix=True)
        except ValueError as exc:
            raise ConfigError(f"{path}:{number}: cannot read this allowed_signers line ({exc})") from None
        key_at = next((i for i, tok in enumerate(tokens) if tok in _KEY_TYPES), None)
        if key_at is None or key_at == 0 or key_at + 1 >= len(tokens):
            raise ConfigError(
                f"{path}:{number}: expected 'principals [options] key-type base64-key [comment]'",
                hint="e.g. alice@example.com ssh-ed25519 AAAAC3Nz...",
            )
        entries.append(
            SignerEntry(
                principals=tuple(p for p in tokens[0].split(",") if p),
                options=tuple(tokens[1:key_at]),
                key_type=tokens[key_at],
                key_data=tokens[key_at + 1],
                line=number,
            )
        )
    return entries


def public_key_of(key_path: Path) -> tuple[str, str]:
    """``(key_type, base64)`` of an SSH key's public half: from ``<key>.pub`` if present, else derived."""
    pub = Path(str(key_path) + ".pub") if not str(key_path).endswith(".pub") else key_path
    if pub.is_file():
        parts = pub.read_text(encoding="utf-8").split()
        if len(parts) >= 2 and parts[0] in _KEY_TYPES:
            return parts[0], parts[1]
        raise InputError(f"{pub} is not an OpenSSH public key")
    try:
        data = key_path.read_bytes()
    except FileNotFoundError:
        raise NotFoundError(
            f"SSH key {key_path} does not exist", hint="pass the private key with --key"
        ) from None
    from cryptography.hazmat.primitives import serialization

    try:
        private = serialization.load_ssh_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise InputError(
            f"cannot read the SSH key {key_path} ({exc})",
            hint=f"put its public half next to it as {pub.name}",
        ) from None
    line = private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    key_type, key_b64 = line.decode().split()[:2]
    return key_type, key_b64


def principals_for_key(allowed_signers: Path, key_path: Path) -> list[str]:
    """The exact (non-wildcard) principals ``allowed_signers`` trusts the key at ``key_path`` for."""
    key_type, key_b64 = public_key_of(key_path)
    found: list[str] = []
    for entry in parse_allowed_signers(allowed_signers):
        if entry.key_type == key_type and entry.key_data == key_b64 and "cert-authority" not in entry.options:
            found.extend(p for p in entry.principals if not any(c in p for c in "*?!"))
    return sorted(set(found))


def principal_for_key(allowed_signers: Path, key_path: Path, principal: str | None = None) -> str:
    """The one principal the key signs as; refuses a key allowed_signers does not trust."""
    principals = principals_for_key(allowed_signers, key_path)
    if not principals:
        raise ApprovalError(
            f"the key {key_path} is not listed in {allowed_signers}",
            hint="only a key trusted there can sign an approval; ask the policy owners to add yours",
        )
    if principal is not None:
        if principal not in principals:
            raise ApprovalError(
                f"the key {key_path} is not trusted for {principal!r} in {allowed_signers} "
                f"(it is for: {', '.join(principals)})"
            )
        return principal
    if len(principals) > 1:
        raise InputError(
            f"the key {key_path} is trusted for several principals: {', '.join(principals)}",
            hint="say which one with --as PRINCIPAL",
        )
    return principals[0]
