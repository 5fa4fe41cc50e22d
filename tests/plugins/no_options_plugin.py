"""A test plugin without an Options model: it takes no `with:` keys."""


class Plugin:
    async def on_request(self, ex):
        return None
