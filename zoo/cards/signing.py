"""ed25519 keys and signatures for registry indexes.

A signature is ed25519 over a file's exact bytes, base64 on one line, written beside it as FILE.sig.
A private key file is PKCS8 PEM (mode 0600; signing warns when a key file is readable by others); the public key is the base64 of its 32 raw bytes,
written beside it as KEYFILE.pub. cryptography is imported only to sign, verify or make keys, so
`zoo list` stays fast.
"""
from __future__ import annotations

import base64
import os
from pathlib import Path

from zoo.errors import SignatureError, UsageError
from zoo.files import read_limited, write_bytes_atomic

MAX_KEY_BYTES = 64 * 2**10  # an ed25519 key file is about 120 bytes


def _create_exclusive(path: Path, data: bytes, mode: int) -> None:
    """Write a new file, never through a link and never over an existing file (or a dangling link)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except FileExistsError:
        raise UsageError(f"{path} already exists (or is a link)",
                         "Choose another KEYFILE; zoo never overwrites a key or writes through a link") from None
    except OSError as exc:
        raise UsageError(f"cannot write {path} ({exc.strerror})", "Choose another KEYFILE") from None
    with os.fdopen(fd, "wb") as f:
        if mode == 0o600:
            os.fchmod(f.fileno(), mode)  # a private key is 0600 whatever the umask
        f.write(data)


def keygen(keyfile: Path) -> dict:
    """Write a new ed25519 private key (PEM, 0600) to keyfile and its public key (0644) to keyfile.pub."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    keyfile = Path(keyfile)
    try:
        is_dir = keyfile.is_dir()
    except OSError as exc:  # a name longer than the file system allows
        from zoo.errors import excerpt

        raise UsageError(f"KEYFILE {excerpt(str(keyfile))}: {exc.strerror}", "Give a shorter path") from None
    if not keyfile.name or keyfile.name in (".", "..") or is_dir:
        raise UsageError(f"KEYFILE {str(keyfile)!r} is a directory, not a file name",
                         "Give the private key's file name, e.g. `zoo registry keygen keys/registry.key`")
    public_file = keyfile.with_name(keyfile.name + ".pub")
    for path in (keyfile, public_file):
        if os.path.lexists(path):
            raise UsageError(f"{path} already exists (or is a link)",
                             "Choose another KEYFILE; zoo never overwrites a key or writes through a link")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    public = base64.b64encode(raw).decode()
    try:
        keyfile.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot make the folder {keyfile.parent} ({exc.strerror})",
                         "Choose another KEYFILE") from None
    _create_exclusive(keyfile, pem, 0o600)
    try:
        _create_exclusive(public_file, (public + "\n").encode(), 0o644)
    except BaseException:
        keyfile.unlink(missing_ok=True)
        raise
    return {"private_key": str(keyfile), "public_key_file": str(public_file), "public_key": public}


def key_warning(keyfile: Path) -> str | None:
    """A warning when a private key file can be read by the group or by others (None when it is private)."""
    try:
        mode = Path(keyfile).stat().st_mode & 0o777
    except OSError:
        return None  # sign_bytes reports the unreadable key
    if mode & 0o077:
        return (f"warning: the private key {keyfile} is readable by others (mode {mode:04o}); "
                f"restrict it with `chmod 600 {keyfile}`")
    return None


def sign_file(path: Path, keyfile: Path) -> Path:
    """Sign a file's exact bytes; writes path + '.sig' (atomically) and returns it."""
    sig = path.with_name(path.name + ".sig")
    write_bytes_atomic(sig, sign_bytes(path.read_bytes(), keyfile))
    return sig


def sign_bytes(data: bytes, keyfile: Path) -> bytes:
    """The signature line (base64 + newline) of `data` made with the private key in `keyfile`."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:  # a key file is a few hundred bytes: /dev/zero or a huge file is refused before reading
        key = serialization.load_pem_private_key(read_limited(keyfile, MAX_KEY_BYTES), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise UsageError(f"cannot read the private key {keyfile} ({exc})",
                         "Make one with `zoo registry keygen KEYFILE`") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise UsageError(f"{keyfile} is not an ed25519 private key", "Make one with `zoo registry keygen KEYFILE`")
    return (base64.b64encode(key.sign(data)).decode() + "\n").encode()


def public_key(value: str) -> str:
    """Normalise --key (base64 text, a .pub file, or a PEM public key file) to base64 of the raw 32 bytes."""
    text = value.strip()
    path = Path(text).expanduser()
    if len(text) < 4096 and path.is_file():
        try:
            text = read_limited(path, MAX_KEY_BYTES).decode("utf-8").strip()
        except (OSError, ValueError) as exc:
            raise UsageError(f"--key: cannot read {path} ({exc})",
                             "Pass the KEYFILE.pub that `zoo registry keygen` wrote, or its contents") from None
    if text.startswith("-----BEGIN"):
        from cryptography.hazmat.primitives import serialization

        try:
            key = serialization.load_pem_public_key(text.encode())
            raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        except (ValueError, TypeError) as exc:
            raise UsageError(f"--key: not an ed25519 public key ({exc})") from None
        return base64.b64encode(raw).decode()
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise UsageError(f"--key: {value!r} is neither a key file nor the base64 of a 32-byte ed25519 public key",
                         "Pass the KEYFILE.pub that `zoo registry keygen` wrote, or its contents")
    return text


def verify_signature(data: bytes, signature: bytes, key_b64: str, where: str) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        sig = base64.b64decode(signature.strip(), validate=True)
        Ed25519PublicKey.from_public_bytes(base64.b64decode(key_b64)).verify(sig, data)
    except (InvalidSignature, ValueError):
        raise SignatureError(f"registry index {where}: the ed25519 signature does not match its key") from None
