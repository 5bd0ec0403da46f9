"""SSH signatures (the mechanism git uses for signed commits) over bytes, checked against an ``allowed_signers`` file.

Signatures are armored SSHSIG blobs, the output of ``ssh-keygen -Y sign``. OpenSSH key files are signed by
``ssh-keygen`` itself (so agents, RSA/ECDSA and hardware keys work); raw Ed25519 keys (PKCS#8 PEM, made with
:func:`generate_key` ``kind="ed25519"``) are signed in-process with ``cryptography`` in the very same format, so
``ssh-keygen -Y verify`` accepts them too. Verification of Ed25519 signatures runs in-process (it is on the path of
``mlops audit verify``, which may check thousands of checkpoints); any other key type, or a certificate authority
line in ``allowed_signers``, is handed to ``ssh-keygen -Y find-principals`` / ``-Y verify``.

The ``namespace`` keeps a signature made for one purpose (an approval) from being replayed for another (a
checkpoint): it is part of the signed data.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import os
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from mlops_layer.errors import ConfigError, GovernanceRefusal, InputError

__all__ = [
    "AllowedSigner",
    "SignatureError",
    "UnknownSignerError",
    "allowed_signers_line",
    "fingerprint",
    "generate_key",
    "parse_allowed_signers",
    "public_key",
    "sign",
    "signature_public_key",
    "verify",
]

_MAGIC = b"SSHSIG"
_SIG_VERSION = 1
_ARMOR_BEGIN = "-----BEGIN SSH SIGNATURE-----"
_ARMOR_END = "-----END SSH SIGNATURE-----"
_ED25519 = "ssh-ed25519"
_KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "ssh-ed25519-cert-v01@openssh.com",
    "ssh-rsa-cert-v01@openssh.com",
)
_TIMEOUT = 30


class SignatureError(GovernanceRefusal):
    """A signature is malformed, does not verify, or was made for another purpose (namespace)."""


class UnknownSignerError(SignatureError):
    """A signature verifies but its key is not trusted by ``allowed_signers`` (for that principal/namespace/time)."""


# ------------------------------------------------------------------------------------------------ SSH wire format


def _ssh_string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError("truncated")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def uint32(self) -> int:
        value: int = struct.unpack(">I", self.take(4))[0]
        return value

    def string(self) -> bytes:
        return self.take(self.uint32())

    def done(self) -> bool:
        return self.pos == len(self.data)


@dataclass(frozen=True)
class _Sshsig:
    public_key: bytes  # the SSH wire blob of the signer's public key
    namespace: str
    hash_algorithm: str
    signature: bytes  # the SSH wire blob of the signature (algorithm name + raw signature)

    @property
    def key_type(self) -> str:
        return _Reader(self.public_key).string().decode("ascii", "replace")


def _armor(blob: bytes) -> str:
    text = base64.b64encode(blob).decode("ascii")
    lines = [text[i : i + 70] for i in range(0, len(text), 70)]
    return "\n".join([_ARMOR_BEGIN, *lines, _ARMOR_END]) + "\n"


def _parse_signature(signature: str) -> _Sshsig:
    text = signature.strip()
    if not text.startswith(_ARMOR_BEGIN) or not text.endswith(_ARMOR_END):
        raise SignatureError(
            "the signature is not an armored SSH signature (-----BEGIN SSH SIGNATURE-----)",
            hint="sign with `ssh-keygen -Y sign` or mlops_layer.signing.sign",
        )
    body = "".join(text[len(_ARMOR_BEGIN) : -len(_ARMOR_END)].split())
    try:
        blob = base64.b64decode(body, validate=True)
        r = _Reader(blob)
        if r.take(6) != _MAGIC:
            raise ValueError("bad magic")
        if r.uint32() != _SIG_VERSION:
            raise ValueError("unsupported version")
        sig = _Sshsig(
            public_key=r.string(),
            namespace=r.string().decode("utf-8"),
            hash_algorithm=(r.string(), r.string().decode("ascii"))[1],
            signature=r.string(),
        )
        if not r.done():
            raise ValueError("trailing bytes")
    except (ValueError, UnicodeDecodeError, struct.error) as exc:
        raise SignatureError(f"the SSH signature is corrupt ({exc})", hint="re-sign the data") from None
    return sig


def _signed_data(data: bytes, namespace: str, hash_algorithm: str) -> bytes:
    digest = hashlib.new(hash_algorithm, data).digest()
    return (
        _MAGIC
        + _ssh_string(namespace.encode("utf-8"))
        + _ssh_string(b"")
        + _ssh_string(hash_algorithm.encode("ascii"))
        + _ssh_string(digest)
    )


def _key_blob_from_line(key_type: str, b64: str) -> bytes:
    try:
        blob = base64.b64decode(b64, validate=True)
    except ValueError as exc:
        raise ValueError(f"public key is not valid base64 ({exc})") from None
    if _Reader(blob).string().decode("ascii", "replace") != key_type:
        raise ValueError(f"public key blob does not match its type {key_type}")
    return blob


def fingerprint(public_key_blob: bytes | str) -> str:
    """The ``SHA256:...`` fingerprint OpenSSH shows for a key (blob, or an ``ssh-ed25519 AAAA...`` line)."""
    if isinstance(public_key_blob, str):
        parts = public_key_blob.split()
        public_key_blob = base64.b64decode(parts[1] if len(parts) > 1 else parts[0])
    digest = base64.b64encode(hashlib.sha256(public_key_blob).digest()).decode("ascii").rstrip("=")
    return f"SHA256:{digest}"


def signature_public_key(signature: str) -> str:
    """The public key (``type base64``) that made an armored signature; says nothing about whether it verifies."""
    sig = _parse_signature(signature)
    return f"{sig.key_type} {base64.b64encode(sig.public_key).decode('ascii')}"


# ------------------------------------------------------------------------------------------------ allowed_signers


@dataclass(frozen=True)
class AllowedSigner:
    """One line of an ``allowed_signers`` file (format of ssh-keygen(1) ALLOWED SIGNERS, as git uses it)."""

    principals: tuple[str, ...]
    key_type: str
    key_blob: bytes
    options: dict[str, str | None] = field(default_factory=dict)
    line: int = 0
    comment: str = ""

    def principal_matches(self, principal: str) -> bool:
        return _match_pattern_list(principal, self.principals)

    def allows_namespace(self, namespace: str) -> bool:
        spec = self.options.get("namespaces")
        if "namespaces" not in self.options or spec is None:
            return True
        return _match_pattern_list(namespace, tuple(p.strip() for p in spec.split(",")))

    def valid_at(self, at: datetime) -> bool:
        after = self.options.get("valid-after")
        before = self.options.get("valid-before")
        if after and at < _parse_ssh_time(after):
            return False
        return not (before and at > _parse_ssh_time(before))

    @property
    def first_literal_principal(self) -> str | None:
        for p in self.principals:
            if not p.startswith("!") and not any(c in p for c in "*?"):
                return p
        return None


def _match_pattern_list(value: str, patterns: Sequence[str]) -> bool:
    """OpenSSH pattern lists: ``*``/``?`` wildcards, a ``!``-negated match refuses outright."""
    matched = False
    for pattern in patterns:
        if pattern.startswith("!"):
            if fnmatch.fnmatchcase(value, pattern[1:]):
                return False
        elif fnmatch.fnmatchcase(value, pattern):
            matched = True
    return matched


def _parse_ssh_time(text: str) -> datetime:
    raw = text.strip('"')
    utc = raw.endswith(("Z", "z"))
    raw = raw.rstrip("Zz")
    for fmt in ("%Y%m%d%H%M%S", "%Y%m%d%H%M", "%Y%m%d"):
        try:
            parsed = datetime.strptime(raw, fmt)
        except ValueError:
            continue
        if utc:
            return parsed.replace(tzinfo=timezone.utc)
        return parsed.astimezone(timezone.utc)  # OpenSSH reads a bare time as local time
    raise ValueError(f"bad time {text!r} (expected YYYYMMDD[HHMM[SS]][Z])")


def _split_fields(line: str) -> list[str]:
    """Whitespace-separated fields where double quotes protect spaces (options like namespaces="a, b")."""
    out: list[str] = []
    cur: list[str] = []
    quoted = False
    for ch in line:
        if ch == '"':
            quoted = not quoted
            cur.append(ch)
        elif ch.isspace() and not quoted:
            if cur:
                out.append("".join(cur))
                cur = []
        else:
            cur.append(ch)
    if quoted:
        raise ValueError("unbalanced double quote")
    if cur:
        out.append("".join(cur))
    return out


def _split_options(text: str) -> dict[str, str | None]:
    opts: dict[str, str | None] = {}
    cur: list[str] = []
    quoted = False
    parts: list[str] = []
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    for part in parts:
        name, eq, value = part.partition("=")
        opts[name.strip().lower()] = value.strip().strip('"') if eq else None
    return opts


def parse_allowed_signers(path: Path) -> list[AllowedSigner]:
    """Parse an ``allowed_signers`` file; errors name the file and the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"allowed signers file {path} does not exist",
            hint="create it (one `principal ssh-ed25519 AAAA...` line per trusted key), as git does",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read allowed signers file {path}: {exc}") from None
    signers: list[AllowedSigner] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            fields = _split_fields(line)
            if len(fields) < 3:
                raise ValueError("expected `principals [options] key-type base64-key [comment]`")
            principals = tuple(p.strip() for p in fields[0].strip('"').split(",") if p.strip())
            idx = 1
            options: dict[str, str | None] = {}
            if fields[1] not in _KEY_TYPES:
                options = _split_options(fields[1])
                idx = 2
            if len(fields) < idx + 2:
                raise ValueError("missing key type or key")
            key_type = fields[idx]
            if key_type not in _KEY_TYPES:
                raise ValueError(f"unknown key type {key_type!r}")
            blob = _key_blob_from_line(key_type, fields[idx + 1])
            for name in ("valid-after", "valid-before"):
                if options.get(name):
                    _parse_ssh_time(str(options[name]))
        except ValueError as exc:
            raise ConfigError(f"{path} line {number}: {exc}", hint="see `man ssh-keygen`, ALLOWED SIGNERS") from None
        signers.append(
            AllowedSigner(
                principals=principals,
                key_type=key_type,
                key_blob=blob,
                options=options,
                line=number,
                comment=" ".join(fields[idx + 2 :]),
            )
        )
    return signers


def allowed_signers_line(principal: str, public_key_line: str, namespaces: Sequence[str] | None = None) -> str:
    """One ``allowed_signers`` line trusting ``public_key_line`` (``ssh-ed25519 AAAA... [comment]``) for a principal."""
    parts = public_key_line.split()
    if len(parts) < 2 or parts[0] not in _KEY_TYPES:
        raise InputError(f"not an OpenSSH public key line: {public_key_line[:40]!r}")
    opts = f' namespaces="{",".join(namespaces)}"' if namespaces else ""
    return f"{principal}{opts} {parts[0]} {parts[1]}"


# ------------------------------------------------------------------------------------------------ keys


def _ssh_keygen() -> str:
    exe = shutil.which("ssh-keygen")
    if exe is None:
        raise ConfigError("ssh-keygen was not found on PATH", hint="install OpenSSH (8.2 or later) client tools")
    return exe


def _run_keygen(args: Sequence[str], *, input_bytes: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            [_ssh_keygen(), *args],
            input=input_bytes,
            capture_output=True,
            timeout=_TIMEOUT,
            check=False,
            stdin=None if input_bytes is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise SignatureError(
            f"ssh-keygen {' '.join(args[:2])} did not finish in {_TIMEOUT} s",
            hint="is the key protected by a passphrase? use an agent or an unencrypted key",
        ) from None


def generate_key(path: Path, comment: str = "", *, kind: Literal["ssh", "ed25519"] = "ssh") -> str:
    """Create a new Ed25519 key at ``path`` (private, mode 0600) and ``path.pub``; return the public key line.

    ``kind="ssh"`` runs ``ssh-keygen -t ed25519`` (an OpenSSH key file, no passphrase: for tests and demos);
    ``kind="ed25519"`` writes a raw PKCS#8 PEM key with ``cryptography``. Refuses to overwrite an existing key.
    """
    path = Path(path)
    pub = path.with_name(path.name + ".pub")
    if path.exists() or pub.exists():
        raise InputError(f"key file {path} already exists", hint="choose another path; keys are never overwritten")
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "ssh":
        proc = _run_keygen(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])
        if proc.returncode != 0:
            raise ConfigError(f"ssh-keygen could not create {path}: {proc.stderr.decode(errors='replace').strip()}")
        return pub.read_text(encoding="utf-8").strip()
    if kind != "ed25519":
        raise InputError(f"unknown key kind {kind!r}", hint="use 'ssh' or 'ed25519'")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    line = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    line = f"{line} {comment}".strip()
    pub.write_text(line + "\n", encoding="utf-8")
    return line


def _load_raw_ed25519(key_path: Path) -> object | None:
    """The Ed25519 private key in a PEM/PKCS#8 file, or None when the file is something ssh-keygen should handle."""
    try:
        head = key_path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read signing key {key_path}: {exc.strerror}") from None
    if b"-----BEGIN PRIVATE KEY-----" not in head:
        return None
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(head, password=None)
    except (ValueError, TypeError) as exc:
        raise InputError(f"signing key {key_path} is not a usable private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InputError(f"signing key {key_path} is a PEM key but not Ed25519", hint="use an Ed25519 or SSH key")
    return key


def public_key(key_path: Path) -> str:
    """The ``ssh-ed25519 AAAA...`` public key line of a private key (raw Ed25519 PEM or OpenSSH key file)."""
    key_path = Path(key_path)
    raw = _load_raw_ed25519(key_path)
    if raw is not None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        assert isinstance(raw, Ed25519PrivateKey)
        return (
            raw.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
        )
    proc = _run_keygen(["-y", "-f", str(key_path)])
    if proc.returncode != 0:
        raise InputError(f"cannot read the public key of {key_path}: {proc.stderr.decode(errors='replace').strip()}")
    return " ".join(proc.stdout.decode().split()[:2])


# ------------------------------------------------------------------------------------------------ sign / verify


def sign(data: bytes, key_path: Path, namespace: str) -> str:
    """Sign ``data`` for ``namespace`` with the key at ``key_path``; return the armored SSH signature.

    A raw Ed25519 PEM key is used in-process; anything else (an OpenSSH private key, or a ``.pub`` whose private half
    is in ssh-agent) goes through ``ssh-keygen -Y sign``.
    """
    if not namespace:
        raise InputError("a signature namespace is required", hint="e.g. 'mlops-approval' or 'mlops-audit-checkpoint'")
    key_path = Path(key_path)
    if not key_path.exists():
        raise InputError(f"signing key {key_path} does not exist", hint="pass --key PATH to an SSH or Ed25519 key")
    raw = _load_raw_ed25519(key_path)
    if raw is not None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        assert isinstance(raw, Ed25519PrivateKey)
        pub = raw.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        pub_blob = _ssh_string(_ED25519.encode()) + _ssh_string(pub)
        sig = raw.sign(_signed_data(data, namespace, "sha512"))
        blob = (
            _MAGIC
            + struct.pack(">I", _SIG_VERSION)
            + _ssh_string(pub_blob)
            + _ssh_string(namespace.encode("utf-8"))
            + _ssh_string(b"")
            + _ssh_string(b"sha512")
            + _ssh_string(_ssh_string(_ED25519.encode()) + _ssh_string(sig))
        )
        return _armor(blob)
    with tempfile.TemporaryDirectory(prefix="mlops-sign-") as tmp:
        msg = Path(tmp) / "data"
        msg.write_bytes(data)
        proc = _run_keygen(["-Y", "sign", "-q", "-f", str(key_path), "-n", namespace, str(msg)])
        out = Path(tmp) / "data.sig"
        if proc.returncode != 0 or not out.exists():
            raise SignatureError(
                f"ssh-keygen could not sign with {key_path}: {proc.stderr.decode(errors='replace').strip()}",
                hint="check the key path; passphrase-protected keys need ssh-agent (pass the .pub file)",
            )
        return out.read_text(encoding="ascii")


def verify(
    data: bytes,
    signature: str,
    allowed_signers: Path,
    namespace: str,
    principal: str | None = None,
    *,
    at: datetime | None = None,
) -> str:
    """Check that ``signature`` signs ``data`` for ``namespace`` with a key ``allowed_signers`` trusts.

    With ``principal``, that principal must be the one trusted for the key. Key validity windows
    (``valid-after``/``valid-before``) are checked at ``at`` (default: now). Returns the verified principal.
    Raises :class:`SignatureError` (forged, altered, wrong namespace) or :class:`UnknownSignerError` (key not trusted).
    """
    allowed_signers = Path(allowed_signers)
    sig = _parse_signature(signature)
    if sig.namespace != namespace:
        raise SignatureError(
            f"the signature was made for namespace {sig.namespace!r}, not {namespace!r}",
            hint="a signature made for one purpose cannot be reused for another",
        )
    signers = parse_allowed_signers(allowed_signers)
    when = (at or datetime.now(timezone.utc)).astimezone(timezone.utc)
    same_key = [s for s in signers if s.key_blob == sig.public_key]
    if sig.key_type != _ED25519 or any("cert-authority" in s.options for s in signers):
        return _verify_with_keygen(data, signature, allowed_signers, namespace, principal, sig, when)
    _check_ed25519(data, sig)
    fp = fingerprint(sig.public_key)
    if not same_key:
        raise UnknownSignerError(
            f"the signing key {fp} is not in {allowed_signers}",
            hint="only keys listed in allowed_signers (reviewed in git) are trusted",
        )
    # A named principal must be listed literally: a wildcard line ("*" or "*@example.com") never vouches for a
    # named approver, or anyone holding that key could sign as everyone the pattern covers.
    candidates = [
        s for s in same_key if principal is None or (principal in s.principals and s.principal_matches(principal))
    ]
    if not candidates:
        trusted = ", ".join(",".join(s.principals) for s in same_key)
        raise UnknownSignerError(
            f"the signing key {fp} belongs to {trusted} in {allowed_signers}, not to {principal!r}",
            hint="a signature only counts for the principal its key is registered to",
        )
    candidates = [s for s in candidates if s.allows_namespace(namespace)]
    if not candidates:
        raise UnknownSignerError(
            f"the signing key {fp} is not trusted for namespace {namespace!r} in {allowed_signers}",
            hint="see the namespaces= option of that line",
        )
    candidates = [s for s in candidates if s.valid_at(when)]
    if not candidates:
        raise UnknownSignerError(
            f"the signing key {fp} is not valid at {when.isoformat(timespec='seconds')} in {allowed_signers}",
            hint="see the valid-after/valid-before options of that line",
        )
    if principal is not None:
        return principal
    found = candidates[0].first_literal_principal
    if found is None:
        raise UnknownSignerError(
            f"the signing key {fp} is trusted only for principal patterns {candidates[0].principals}",
            hint="pass the expected principal explicitly",
        )
    return found


def signed_with(data: bytes, signature: str, namespace: str, public_key_line: str) -> bool:
    """Whether ``signature`` is a valid signature of ``data`` for ``namespace`` by exactly this public key.

    No allowed_signers is involved: this answers "did I make it?" (e.g. the layer recognising its own checkpoints).
    """
    try:
        sig = _parse_signature(signature)
        parts = public_key_line.split()
        if sig.namespace != namespace or sig.public_key != _key_blob_from_line(parts[0], parts[1]):
            return False
        if sig.key_type == _ED25519:
            _check_ed25519(data, sig)
            return True
        with tempfile.TemporaryDirectory(prefix="mlops-check-") as tmp:
            sig_file = Path(tmp) / "data.sig"
            sig_file.write_text(signature, encoding="ascii")
            check = _run_keygen(["-Y", "check-novalidate", "-n", namespace, "-s", str(sig_file)], input_bytes=data)
        return check.returncode == 0
    except (SignatureError, ValueError, IndexError):
        return False


def _check_ed25519(data: bytes, sig: _Sshsig) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    bad = SignatureError(
        "the signature does not match the data (altered or forged)",
        hint="the signed content changed after signing, or the signature was made for something else",
    )
    if sig.hash_algorithm not in ("sha256", "sha512"):
        raise SignatureError(f"unsupported signature hash algorithm {sig.hash_algorithm!r}")
    try:
        kr = _Reader(sig.public_key)
        kr.string()
        pub = kr.string()
        sr = _Reader(sig.signature)
        alg = sr.string().decode("ascii")
        raw = sr.string()
        if alg != _ED25519 or len(pub) != 32 or len(raw) != 64:
            raise ValueError("malformed ed25519 signature")
        Ed25519PublicKey.from_public_bytes(pub).verify(raw, _signed_data(data, sig.namespace, sig.hash_algorithm))
    except (ValueError, UnicodeDecodeError, InvalidSignature):
        raise bad from None


def _verify_with_keygen(
    data: bytes,
    signature: str,
    allowed_signers: Path,
    namespace: str,
    principal: str | None,
    sig: _Sshsig,
    when: datetime,
) -> str:
    stamp = when.strftime("%Y%m%d%H%M%SZ")
    fp = fingerprint(sig.public_key)
    with tempfile.TemporaryDirectory(prefix="mlops-verify-") as tmp:
        sig_file = Path(tmp) / "data.sig"
        sig_file.write_text(signature, encoding="ascii")
        if principal is None:
            found = _run_keygen(
                ["-Y", "find-principals", "-s", str(sig_file), "-f", str(allowed_signers), f"-Overify-time={stamp}"]
            )
            names = found.stdout.decode().split()
            if found.returncode != 0 or not names:
                check = _run_keygen(["-Y", "check-novalidate", "-n", namespace, "-s", str(sig_file)], input_bytes=data)
                if check.returncode != 0:
                    raise SignatureError("the signature does not match the data (altered or forged)")
                raise UnknownSignerError(
                    f"the signing key {fp} is not in {allowed_signers}",
                    hint="only keys listed in allowed_signers (reviewed in git) are trusted",
                )
            principal_to_check = names[0]
        else:
            literal = [s for s in parse_allowed_signers(allowed_signers) if s.key_blob == sig.public_key]
            if literal and not any(principal in s.principals for s in literal):
                raise UnknownSignerError(
                    f"the signing key {fp} is not trusted for {principal!r} by name in {allowed_signers} "
                    "(a wildcard principal never satisfies a named one)"
                )
            principal_to_check = principal
        proc = _run_keygen(
            [
                "-Y",
                "verify",
                "-f",
                str(allowed_signers),
                "-I",
                principal_to_check,
                "-n",
                namespace,
                "-s",
                str(sig_file),
                f"-Overify-time={stamp}",
            ],
            input_bytes=data,
        )
        if proc.returncode == 0:
            return principal_to_check
        check = _run_keygen(["-Y", "check-novalidate", "-n", namespace, "-s", str(sig_file)], input_bytes=data)
        if check.returncode != 0:
            raise SignatureError("the signature does not match the data (altered or forged)")
        raise UnknownSignerError(
            f"the signing key {fp} is not trusted for {principal_to_check!r} (namespace {namespace!r}) "
            f"in {allowed_signers}",
            hint="only keys listed in allowed_signers (reviewed in git) are trusted",
        )
