"""Frames on a byte stream, as `rlhf-tui` reads and writes them: a 4-byte
big-endian length, then that many bytes of JSON. The first frame each way
is the handshake: the workbench's hello (protocol version, name and, over
TCP, the run's token), the trainer's welcome or refusal with a reason."""

import hmac
import json
import secrets
import struct

# Bumped with rlhf-tui's `PROTOCOL_VERSION` whenever a message changes shape.
PROTOCOL_VERSION = 2
# The largest frame either side accepts (rlhf-tui's `MAX_FRAME`).
MAX_FRAME = 1 << 20


class FrameError(Exception):
    """A frame refused, with the reason the server logs."""


class Closed(FrameError):
    """The stream ended cleanly between frames."""


def encode(message):
    body = json.dumps(message, separators=(",", ":")).encode()
    if len(body) > MAX_FRAME:
        raise FrameError(f"a frame of {len(body)} bytes is over the {MAX_FRAME}-byte limit")
    return struct.pack(">I", len(body)) + body


def _read_exact(sock, n):
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(n - got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read(sock):
    """One frame's message; `Closed` at a clean end, `FrameError` otherwise."""
    head = _read_exact(sock, 4)
    if not head:
        raise Closed("the connection closed")
    if len(head) < 4:
        raise FrameError("the stream ended inside a frame")
    (length,) = struct.unpack(">I", head)
    if length > MAX_FRAME:
        raise FrameError(f"a frame of {length} bytes is over the {MAX_FRAME}-byte limit")
    body = _read_exact(sock, length)
    if len(body) < length:
        raise FrameError("the stream ended inside a frame")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FrameError(f"a frame that is not a message: {e}") from None


def check_hello(hello, token):
    """None when the hello is taken, else the reason it is not (the same
    checks, in the same words, as rlhf-tui's own server)."""
    if not isinstance(hello, dict) or not isinstance(hello.get("version"), int):
        return "a frame that is not a message: a hello with a version, a name and a token is expected"
    if hello["version"] != PROTOCOL_VERSION:
        return (
            f"protocol version {hello['version']} where this trainer speaks {PROTOCOL_VERSION}: "
            "attach with the same rlhf-tui version"
        )
    name = hello.get("name")
    if not isinstance(name, str) or not name.strip() or len(name.encode()) > 64:
        return "a name of 1 to 64 characters is needed"
    if token is not None:
        given = hello.get("token") or ""
        if not isinstance(given, str) or not hmac.compare_digest(given.encode(), token.encode()):
            return "wrong or missing token: give the run's trainer.token"
    return None


def new_token():
    """32 hex digits from the operating system's randomness."""
    return secrets.token_hex(16)
