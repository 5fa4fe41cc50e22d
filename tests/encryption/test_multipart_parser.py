"""The streaming multipart rewrite on its own: the output does not depend on how the input is
chunked (boundaries, CRLFs and headers split at every offset), and sealed parts open again."""

from __future__ import annotations

import pytest

from gateway.crypto import FieldError
from gateway.crypto.envelope import EnvelopeEncryptor, decrypt_envelope
from gateway.crypto.token import open_field, seal_field
from gateway.edge.transform.multipart import MultipartSealer, boundary_of, rewrite_multipart

KEY = bytes(range(32))
SCOPE = "user:alice"
BODY = (
    b"--XyZ\r\n"
    b'Content-Disposition: form-data; name="title"\r\n\r\n'
    b"secret \xc3\xa9 title --XyZ\r\n-XyZ\r\n--XyZ\r\n"
    b'content-disposition: form-data; name="keep"\r\n'
    b"Content-Type: text/plain\r\n\r\n"
    b"\r\n--XyZ\r\n"
    b'Content-Disposition: form-data; name="doc"; filename="r\xc3\xa9sum\xc3\xa9.bin"\r\n'
    b"Content-Type: application/pdf\r\n\r\n" + bytes(range(256)) * 5 + b"\r\n"
    b"--XyZ\r\n"
    b'Content-Disposition: form-data; name="empty"; filename=""\r\n\r\n'
    b"\r\n--XyZ--\r\nepilogue is dropped"
)


def sealer(counted: list[int]) -> MultipartSealer:
    return MultipartSealer(
        names={"title", "doc"},
        # A fixed nonce and salt make the output deterministic for the comparison.
        seal=lambda v: seal_field(KEY, SCOPE, 1, v, _nonce=b"\x01" * 12),
        encryptor=lambda ct: EnvelopeEncryptor(
            KEY, SCOPE, 1, ct, segment_size=64, _salt=b"\x02" * 32, _nonce_prefix=b"\x03" * 7
        ),
        counted=counted.append,
    )


async def rewrite(body: bytes, size: int, counted: list[int] | None = None) -> bytes:
    async def chunks():
        for i in range(0, len(body), size):
            yield body[i : i + size]

    out = rewrite_multipart(chunks(), b"XyZ", "OUT", sealer([] if counted is None else counted))
    return b"".join([c async for c in out])


async def test_output_independent_of_chunking() -> None:
    counted: list[int] = []
    whole = await rewrite(BODY, len(BODY), counted)
    for size in (1, 2, 3, 5, 7, 64, 100):
        assert await rewrite(BODY, size) == whole, size
    assert sum(counted) == len("secret \u00e9 title --XyZ\r\n-XyZ".encode()) + 1280
    parts = whole.split(b"\r\n--OUT")
    assert parts[0].startswith(b"--OUT\r\n") and parts[-1] == b"--\r\n"
    head, _, token = parts[0][len(b"--OUT\r\n") :].partition(b"\r\n\r\n")
    assert head == b'Content-Disposition: form-data; name="title"'
    # Look-alikes (no CRLF before, one dash only) are part of the value, not a delimiter.
    assert open_field(KEY, SCOPE, 1, token) == "secret \u00e9 title --XyZ\r\n-XyZ".encode()
    head, _, value = parts[1].partition(b"\r\n\r\n")
    assert head == b'\r\nContent-Disposition: form-data; name="keep"\r\nContent-Type: text/plain'
    assert value == b""
    head, _, envelope = parts[2].partition(b"\r\n\r\n")
    assert "r\u00e9sum\u00e9.bin".encode() in head
    assert head.endswith(b"Content-Type: application/vnd.portcullis.envelope")
    assert decrypt_envelope(KEY, SCOPE, envelope) == ("application/pdf", bytes(range(256)) * 5)
    assert parts[3].endswith(b'name="empty"; filename=""\r\n\r\n')
    assert b"epilogue" not in whole


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/form-data",
        "multipart/form-data; boundary=",
        "multipart/form-data; boundary=a; boundary=b",
        "multipart/form-data; boundary=" + "a" * 71,
        'multipart/form-data; boundary="ends with space "',
        "multipart/mixed; boundary=a",
    ],
)
def test_bad_boundaries(content_type: str) -> None:
    with pytest.raises(FieldError):
        boundary_of(content_type)


def test_good_boundaries() -> None:
    assert boundary_of("multipart/form-data; boundary=----WebKitFormBoundaryX") == (
        b"----WebKitFormBoundaryX"
    )
    assert boundary_of('Multipart/Form-Data; charset=utf-8; BOUNDARY="a b:c"') == b"a b:c"


async def test_empty_form() -> None:
    assert await rewrite(b"--XyZ--\r\n", 3) == b"--OUT--\r\n"


async def test_boundary_followed_by_garbage_is_refused() -> None:
    body = b'--XyZ\r\nContent-Disposition: form-data; name="a"\r\n\r\nv\r\n--XyZZ\r\n--XyZ--'
    for size in (1, 4, len(body)):
        with pytest.raises(FieldError):
            await rewrite(body, size)
