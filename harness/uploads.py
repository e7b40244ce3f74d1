"""Upload scenarios' bodies: deterministic bytes of a given size, and the answer the app
contract gives for them (``POST /upload``: the body's length and SHA-256, apps/README.md).

The harness computes the answer itself, so the generator checks every measured answer against
it (LoadSpec.expect_body): an upload the server truncated, or hashed wrong, is an error.
"""

from __future__ import annotations

import hashlib

from apps.raw import common

# The contract's limit: a larger body is refused with 413 before it is read.
MAX_UPLOAD_BYTES = common.UPLOAD_MAX_BYTES
# Every byte value in turn: not compressible to nothing, and the same on every run.
UPLOAD_PATTERN = bytes(range(256))


def upload_body(size: int) -> bytes:
    """``size`` bytes of UPLOAD_PATTERN repeated: built once per trial, then written as-is
    for every request."""
    if not 0 <= size <= MAX_UPLOAD_BYTES:
        raise ValueError(f"upload size {size}: expected 0..{MAX_UPLOAD_BYTES} bytes")
    repeats, rest = divmod(size, len(UPLOAD_PATTERN))
    return UPLOAD_PATTERN * repeats + UPLOAD_PATTERN[:rest]


def upload_answer(body: bytes) -> bytes:
    """The app's exact answer to ``POST /upload`` with ``body``."""
    return common.upload_body(len(body), hashlib.sha256(body).hexdigest())


def upload_request(size: int) -> tuple[bytes, bytes]:
    """The body of ``size`` bytes and the answer every upload of it must get."""
    body = upload_body(size)
    return body, upload_answer(body)
