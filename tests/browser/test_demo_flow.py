"""The demo as a person meets it, in real headless Chromium at a phone's width: the protected
notes page sends them to the login form, a wrong password is refused with a clear message, they
sign in and are sent to enrol a second factor (the demo policy says `access: mfa`): they read
the secret from the setup page, answer with the code an authenticator app would show, and get
their backup codes. Then they write a note through the form, see it in plaintext while the app
has stored only `gwe1.` tokens, sign out, and the notes page is closed to them again.

Each step is a function in FLOW and leaves a screenshot.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyotp

from tests.browser.conftest import PASSWORD, USER, DemoStack

PHONE = {"width": 390, "height": 844}
TITLE = "Launch plan & <budget>"
BODY = "Meet Ada at the old mill, 10:00 — bring the keys"


@dataclass
class Flow:
    page: object
    stack: DemoStack
    artifacts: Path
    shots: list[Path] = field(default_factory=list)
    enrolled_secret: str = ""

    def shot(self, name: str) -> None:
        path = self.artifacts / f"{len(self.shots) + 1:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.shots.append(path)

    def path(self) -> str:
        return self.page.url.removeprefix(self.stack.base)


def protected_page_redirects_to_login(f: Flow) -> None:
    f.page.goto(f"{f.stack.base}/notes")
    assert f.path() == "/.gateway/login?next=/notes"
    assert f.page.locator("h1").inner_text().strip() != ""
    assert f.page.locator("input#password").is_visible()


def wrong_password_shows_an_error(f: Flow) -> None:
    f.page.fill("#username", USER)
    f.page.fill("#password", "not the password at all")
    f.page.click("button[type=submit]")
    error = f.page.locator("[role=alert]")
    assert error.inner_text() == "Wrong username or password."
    assert f.path().startswith("/.gateway/login")
    # The form keeps the name, never the password.
    assert f.page.input_value("#username") == USER
    assert f.page.input_value("#password") == ""


def log_in(f: Flow) -> None:
    f.page.fill("#password", PASSWORD)
    f.page.click("button[type=submit]")
    # The notes need MFA and alice has none yet: straight to enrollment, keeping `next`.
    f.page.wait_for_url(re.compile(r".*/\.gateway/mfa/setup\?next=/notes$"))
    assert f.page.locator(".qr svg").count() == 1
    shown = f.page.locator(".secret code").inner_text().strip()
    assert re.fullmatch(r"[A-Z2-7]{4}( [A-Z2-7]{1,4})+", shown)  # groups of four on the page
    f.enrolled_secret = shown.replace(" ", "")
    assert re.fullmatch(r"[A-Z2-7]{16,}", f.enrolled_secret)


def a_wrong_code_is_refused(f: Flow) -> None:
    right = pyotp.TOTP(f.enrolled_secret).now()
    wrong = f"{(int(right) + 500000) % 1000000:06d}"
    f.page.fill("#code", wrong)
    f.page.click("button[type=submit]")
    assert f.page.locator("[role=alert]").inner_text().strip() != ""
    assert "/.gateway/mfa/setup" in f.path()


def enrol_mfa(f: Flow) -> None:
    # the page may show a new one
    secret = f.page.locator(".secret code").inner_text().replace(" ", "")
    f.page.fill("#code", pyotp.TOTP(secret).now())
    f.page.click("button[type=submit]")
    codes = [c.strip() for c in f.page.locator(".codes code").all_inner_texts()]
    assert len(codes) == 10
    assert all(re.fullmatch(r"[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}", c) for c in codes), codes


def continue_to_the_notes(f: Flow) -> None:
    f.page.click("text=I have saved them")
    f.page.wait_for_url(re.compile(r".*/notes$"))


def notes_page_is_reached(f: Flow) -> None:
    assert f.path() == "/notes"
    assert f.page.locator("h1").inner_text() == f"Notes of {USER}"
    assert f.page.locator("#notes li").count() == 0


def create_a_note(f: Flow) -> None:
    f.page.fill("#title", TITLE)
    f.page.fill("#body", BODY)
    f.page.click("button[type=submit]")
    f.page.wait_for_url(re.compile(r".*/notes$"))
    item = f.page.locator("#notes li")
    assert item.count() == 1
    assert item.inner_text() == f"{TITLE}: {BODY}"
    assert "gwe1." not in f.page.content()


def the_app_stored_only_tokens(f: Flow) -> None:
    stored = json.loads(f.stack.notes_file.read_text())
    assert [n["user"] for n in stored] == [USER]
    for name in ("title", "body"):
        assert re.fullmatch(r"gwe1\.[A-Za-z0-9_-]+", stored[0][name]), stored[0][name]
    raw = f.stack.notes_file.read_bytes()
    for plain in (TITLE, BODY, "Launch plan", "old mill"):
        assert plain.encode() not in raw
    # Straight to the app, bypassing the gateway: the same tokens, no plaintext.
    direct = urllib.request.Request(  # noqa: S310 - a loopback http URL
        f"{f.stack.upstream}/api/notes", headers={"X-Forwarded-User": USER}
    )
    with urllib.request.urlopen(direct, timeout=5) as response:  # noqa: S310 - http only
        notes = json.load(response)["notes"]
    assert notes == [{"title": stored[0]["title"], "body": stored[0]["body"]}]
    # The app's own page, as the app would show it without the gateway: tokens only.
    f.page.set_extra_http_headers({"X-Forwarded-User": USER})
    f.page.goto(f"{f.stack.upstream}/notes")
    f.page.set_extra_http_headers({})
    assert f.page.locator("#notes li").inner_text().count("gwe1.") == 2
    assert TITLE not in f.page.content()


def open_the_account_page(f: Flow) -> None:
    f.page.goto(f"{f.stack.base}/notes")
    f.page.click("text=Your account")
    f.page.wait_for_url(re.compile(r".*/\.gateway/account$"))
    assert f.page.locator("tr.current").count() == 1


def log_out(f: Flow) -> None:
    f.page.locator("tr.current button").click()
    f.page.wait_for_url(re.compile(r".*/\.gateway/login.*"))
    cookies = {c["name"] for c in f.page.context.cookies(f.stack.base)}
    assert not any("session" in name for name in cookies), cookies


def protected_page_is_closed_again(f: Flow) -> None:
    f.page.goto(f"{f.stack.base}/notes")
    assert f.path() == "/.gateway/login?next=/notes"
    assert TITLE not in f.page.content()


FLOW: list[Callable[[Flow], None]] = [
    protected_page_redirects_to_login,
    wrong_password_shows_an_error,
    log_in,
    a_wrong_code_is_refused,
    enrol_mfa,
    continue_to_the_notes,
    notes_page_is_reached,
    create_a_note,
    the_app_stored_only_tokens,
    open_the_account_page,
    log_out,
    protected_page_is_closed_again,
]


def test_demo_flow_login_note_encrypted_at_rest_logout(
    demo_stack: DemoStack, chromium, artifacts: Path
) -> None:
    context = chromium.new_context(viewport=PHONE, device_scale_factor=1)
    try:
        flow = Flow(context.new_page(), demo_stack, artifacts)
        for step in FLOW:
            step(flow)
            flow.shot(step.__name__)
    finally:
        context.close()
    assert len(flow.shots) == len(FLOW)
    for path in flow.shots:
        assert path.stat().st_size > 1000, path
