"""A test plugin without an Options model: it takes no `with:` keys."""


class Plugin:
    async def on_request(self, ex):
        return None


class Exploding:
    """Raises in its constructor: start-up must stop with the plugin's name, not a traceback."""

    def __init__(self) -> None:
        raise RuntimeError("constructor failed with a secret-ish text")
