"""The gateway's HTTP errors: one small hierarchy, each class says its status and error code.

Clients get one uniform, opaque JSON answer per failure class (`{"error": "<code>"}`); details
go to the log, never to the client. `answer()` is the single place an error becomes a response.
"""

from __future__ import annotations

import json
from typing import ClassVar

from aiohttp import web

__all__ = [
    "GatewayError",
    "BadRequest",
    "Unauthorized",
    "MfaRequired",
    "MfaEnrollmentRequired",
    "Forbidden",
    "CrossSiteRequest",
    "NotFound",
    "MethodNotAllowed",
    "PayloadTooLarge",
    "UnsupportedMediaType",
    "TooManyRequests",
    "InvalidCredentials",
    "BadGateway",
    "ServiceUnavailable",
    "GatewayTimeout",
    "answer",
    "json_response",
]


class GatewayError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    # Fixed hints sent beside the code (never request data).
    hints: ClassVar[dict[str, object]] = {}

    def __init__(self, reason: str = "", *, headers: dict[str, str] | None = None) -> None:
        # `reason` is for logs and audit (machine-readable), never sent to the client.
        super().__init__(reason or self.code)
        self.reason = reason or self.code
        self.headers = headers or {}


class BadRequest(GatewayError):
    status, code = 400, "bad_request"


class Unauthorized(GatewayError):
    status, code = 401, "authentication_required"


class InvalidCredentials(GatewayError):
    status, code = 401, "invalid_credentials"


class MfaRequired(GatewayError):
    status, code = 401, "mfa_required"


class MfaEnrollmentRequired(MfaRequired):
    # The contract's code (DESIGN 5, 11) for any missing second factor; the hint tells an API
    # client this user must enroll first (/.gateway/mfa/setup) rather than answer a challenge.
    hints = {"enrollment_required": True}


class Forbidden(GatewayError):
    status, code = 403, "forbidden"


class CrossSiteRequest(GatewayError):
    status, code = 403, "cross_site_request"


class NotFound(GatewayError):
    status, code = 404, "not_found"


class MethodNotAllowed(GatewayError):
    status, code = 405, "method_not_allowed"


class PayloadTooLarge(GatewayError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(GatewayError):
    status, code = 415, "unsupported_media_type"


class TooManyRequests(GatewayError):
    status, code = 429, "too_many_attempts"

    def __init__(self, reason: str = "", *, retry_after: float) -> None:
        super().__init__(reason, headers={"Retry-After": str(max(1, int(retry_after + 0.999)))})
        self.retry_after = retry_after


class BadGateway(GatewayError):
    status, code = 502, "bad_gateway"


class ServiceUnavailable(GatewayError):
    status, code = 503, "service_unavailable"


class GatewayTimeout(GatewayError):
    status, code = 504, "gateway_timeout"


def json_response(
    body: object, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    resp = web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
        headers=headers,
    )
    resp.headers["Cache-Control"] = "no-store"
    return resp


def answer(error: GatewayError) -> web.Response:
    return json_response({"error": error.code, **error.hints}, error.status, error.headers)
