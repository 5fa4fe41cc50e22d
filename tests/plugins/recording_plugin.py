"""A test plugin that implements every hook and records what each one was given.

`with: {fail: HOOK}` makes that hook raise an exception whose text holds a fake secret, so
tests can check that failures are contained, counted and never echoed."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from gateway.http.headers import Identity

CALLS: list[tuple] = []
LEAK = "hunter2-secret-in-exception-text"


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tag: str = "rec"
    fail: str = ""
    refuse_password: str = ""


class Plugin:
    Options = Options

    def __init__(self, options: Options) -> None:
        self.o = options

    def _maybe_fail(self, hook: str) -> None:
        if self.o.fail == hook:
            raise RuntimeError(LEAK)

    async def on_startup(self, ctx) -> None:
        CALLS.append(("on_startup", ctx.name, "store" in ctx.services, "auth" in ctx.services))
        self._maybe_fail("on_startup")

    async def on_shutdown(self) -> None:
        CALLS.append(("on_shutdown", self.o.tag))

    async def on_request(self, ex):
        CALLS.append(("on_request", ex.rule_name, ex.target.path, ex.identity))
        self._maybe_fail("on_request")
        return None

    async def authenticate(self, ex):
        CALLS.append(("authenticate", ex.rule_name, ex.session is not None))
        self._maybe_fail("authenticate")
        user = ex.request.headers.get("X-Test-User")
        return Identity(user=user, roles=("tester",)) if user else None

    async def check_password(self, username: str, password: str):
        CALLS.append(("check_password", username, len(password)))
        self._maybe_fail("check_password")
        return "recorder_refuses" if password == self.o.refuse_password else None

    async def before_forward(self, ex, headers):
        user = ex.identity.user if ex.identity else None
        CALLS.append(("before_forward", ex.rule_name, user, headers.get("X-Forwarded-User")))
        self._maybe_fail("before_forward")
        headers["X-Plugin-Tag"] = self.o.tag
        return None

    async def after_response(self, ex, headers):
        CALLS.append(("after_response", ex.rule_name, headers.get("Content-Type")))
        self._maybe_fail("after_response")
        headers["X-Plugin-After"] = self.o.tag

    async def on_audit(self, event):
        CALLS.append(("on_audit", event["event"], event["user"], event["outcome"]))
        self._maybe_fail("on_audit")
