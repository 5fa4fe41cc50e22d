"""maintenance: answers 503 on chosen policy rules during a maintenance window, and tells
the upstream which deployment the request came through."""

from multidict import CIMultiDict
from pydantic import BaseModel, ConfigDict, Field

from gateway.http.errors import json_response
from gateway.http.exchange import Exchange


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")  # unknown keys are config errors

    rules: list[str] = Field(min_length=1)  # policy rule names to close
    deployment: str = "blue"


class Plugin:
    Options = Options

    def __init__(self, options: Options) -> None:
        self.closed = frozenset(options.rules)
        self.deployment = options.deployment

    async def on_request(self, ex: Exchange):
        if ex.rule_name in self.closed:
            return json_response({"error": "maintenance"}, 503, {"Retry-After": "600"})
        return None  # go on

    async def before_forward(self, ex: Exchange, headers: CIMultiDict[str]) -> None:
        headers["X-Deployment"] = self.deployment
