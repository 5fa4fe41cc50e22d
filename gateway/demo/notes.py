"""The demo legacy app: a notes app with no authentication of its own.

It trusts `X-Forwarded-User` (as legacy apps behind a gateway do) and stores exactly what it is
sent in a JSON file, so the demo can show that encrypted fields are stored as ciphertext: behind
the gateway's demo policy the `title` and `body` of a note arrive as `gwe1.` tokens (form fields
on /notes, JSON fields on /api/notes), and the gateway opens them again in the pages it returns.
"""

from __future__ import annotations

import html
import json
import sys
from pathlib import Path

from aiohttp import web

STYLE = """body{font-family:system-ui,sans-serif;margin:0 auto;padding:1rem;max-width:40rem}
label{display:block;margin:.6rem 0 .2rem}input,textarea{width:100%;box-sizing:border-box;
padding:.5rem;font-size:1rem}textarea{min-height:5rem}button{margin-top:.8rem;padding:.6rem 1.2rem;
font-size:1rem}li{margin:.4rem 0;overflow-wrap:anywhere}nav{margin-bottom:1rem}"""

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Notes</title>
<style>{style}</style></head>
<body><nav><a href="/.gateway/account">Your account · sign out</a></nav>
<h1>Notes of {user}</h1>
<form method="post" action="/notes"><label for="title">Title</label>
<input id="title" name="title" required><label for="body">Body</label>
<textarea id="body" name="body"></textarea><button type="submit">Save</button></form>
<h2>Saved notes</h2><ul id="notes">{items}</ul>
</body></html>"""


def make_app(data_file: Path) -> web.Application:
    def load() -> list[dict]:
        return json.loads(data_file.read_text()) if data_file.exists() else []

    def save(user: str, title: object, body: object) -> None:
        entries = load()
        entries.append({"user": user, "title": str(title), "body": str(body)})
        data_file.write_text(json.dumps(entries, indent=1))  # a naive legacy app: blocking I/O

    def user_of(request: web.Request) -> str:
        return request.headers.get("X-Forwarded-User", "anonymous")

    async def index(request: web.Request) -> web.Response:
        raise web.HTTPFound("/notes")

    async def notes(request: web.Request) -> web.Response:
        user = user_of(request)
        items = "".join(
            f"<li><b>{html.escape(n['title'])}</b>: {html.escape(n['body'])}</li>"
            for n in load()
            if n["user"] == user
        )
        page = PAGE.format(style=STYLE, user=html.escape(user), items=items)
        return web.Response(text=page, content_type="text/html")

    async def create(request: web.Request) -> web.Response:
        form = await request.post()
        save(user_of(request), form.get("title", ""), form.get("body", ""))
        raise web.HTTPSeeOther("/notes")

    async def api_list(request: web.Request) -> web.Response:
        user = user_of(request)
        mine = [{"title": n["title"], "body": n["body"]} for n in load() if n["user"] == user]
        return web.json_response({"notes": mine})

    async def api_create(request: web.Request) -> web.Response:
        try:
            data = await request.json()
        except ValueError:
            return web.json_response({"error": "bad_request"}, status=400)
        if not isinstance(data, dict):
            return web.json_response({"error": "bad_request"}, status=400)
        save(user_of(request), data.get("title", ""), data.get("body", ""))
        return web.json_response({"status": "created"}, status=201)

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
    app.router.add_get("/api/notes", api_list)
    app.router.add_post("/api/notes", api_create)
    app.router.add_get("/whoami", whoami)
    app.router.add_get("/admin/", admin)
    app.router.add_get("/static/hello.txt", lambda r: web.Response(text="static hello"))
    return app


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
    data = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("var/demo-notes.json")
    host = sys.argv[3] if len(sys.argv) > 3 else "127.0.0.1"  # 0.0.0.0 in the compose example
    data.parent.mkdir(parents=True, exist_ok=True)
    web.run_app(make_app(data), host=host, port=port, print=None)


if __name__ == "__main__":
    main()
