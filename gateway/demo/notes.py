"""The demo legacy app: a notes app with no authentication of its own.

It trusts `X-Forwarded-User` (as legacy apps behind a gateway do) and stores exactly what it is
sent in a JSON file, so the demo can show that encrypted fields are stored as ciphertext.
"""

from __future__ import annotations

import html
import json
import sys
from pathlib import Path

from aiohttp import web

PAGE = """<!doctype html><html><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Notes</title></head>
<body><h1>Notes of {user}</h1>
<form method="post" action="/notes"><p><label>Title <input name="title"></label></p>
<p><label>Body <textarea name="body"></textarea></label></p><button>Save</button></form>
<ul>{items}</ul>
<form method="post" action="/.gateway/logout"><button>Log out</button></form>
</body></html>"""


def make_app(data_file: Path) -> web.Application:
    def load() -> list[dict]:
        return json.loads(data_file.read_text()) if data_file.exists() else []

    async def index(request: web.Request) -> web.Response:
        raise web.HTTPFound("/notes")

    async def notes(request: web.Request) -> web.Response:
        user = request.headers.get("X-Forwarded-User", "anonymous")
        items = "".join(
            f"<li><b>{n['title']}</b>: {n['body']}</li>" for n in load() if n["user"] == user
        )
        return web.Response(
            text=PAGE.format(user=html.escape(user), items=items), content_type="text/html"
        )

    async def create(request: web.Request) -> web.Response:
        form = await request.post()
        entries = load()
        entries.append(
            {
                "user": request.headers.get("X-Forwarded-User", "anonymous"),
                "title": str(form.get("title", "")),
                "body": str(form.get("body", "")),
            }
        )
        data_file.write_text(json.dumps(entries, indent=1))  # noqa: ASYNC240 - a naive legacy app
        raise web.HTTPSeeOther("/notes")

    async def whoami(request: web.Request) -> web.Response:
        return web.json_response(
            {k: v for k, v in request.headers.items() if k.lower().startswith("x-forwarded")}
        )

    async def admin(request: web.Request) -> web.Response:
        return web.Response(text="<h1>Admin area</h1>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/notes", notes)
    app.router.add_post("/notes", create)
    app.router.add_get("/whoami", whoami)
    app.router.add_get("/admin/", admin)
    app.router.add_get("/static/hello.txt", lambda r: web.Response(text="static hello"))
    return app


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
    data = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("var/demo-notes.json")
    data.parent.mkdir(parents=True, exist_ok=True)
    web.run_app(make_app(data), host="127.0.0.1", port=port, print=None)


if __name__ == "__main__":
    main()
