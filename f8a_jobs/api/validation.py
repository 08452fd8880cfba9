"""Connexion's request validators, with messages that name the offending field.

Connexion says "'bogus' is not one of ['running', 'paused']" and dumps the schema; a user
needs "state: 'bogus' is not one of …". Validation itself stays Connexion's.
"""

from __future__ import annotations

import json
import re
from typing import Any

from connexion.datastructures import MediaTypeDict
from connexion.exceptions import BadRequestProblem
from connexion.validators import VALIDATOR_MAP, JSONRequestBodyValidator, ParameterValidator
from jsonschema import ValidationError
from starlette.responses import JSONResponse

from f8a_jobs.core.json_values import MAX_DEPTH, depth_exceeds, lone_surrogate_at

NAMED_IN_MESSAGE = re.compile(r"'([^']+)' (?:is a required property|was unexpected)")


def field_of(error: ValidationError, root: str) -> str:
    """The dotted path of the value a JSON-schema error is about."""
    path = [root, *(str(part) for part in error.absolute_path)]
    named = NAMED_IN_MESSAGE.search(error.message)
    if named and error.validator in ("required", "additionalProperties"):
        path.append(named.group(1))
    return ".".join(part for part in path if part) or "body"


class NamedParameterValidator(ParameterValidator):
    @staticmethod
    def validate_parameter(
        parameter_type: str, value: Any, param: dict[str, Any], param_name: str | None = None
    ) -> str | None:
        message = ParameterValidator.validate_parameter(parameter_type, value, param, param_name)
        return f"{param['name']}: {message.splitlines()[0]}" if message else None


class NamedJSONBodyValidator(JSONRequestBodyValidator):
    async def _parse(self, stream: Any, scope: Any) -> Any:
        raw = b"".join([message async for message in stream])
        if not raw:
            return None
        try:
            body = json.loads(raw.decode(self._encoding))
        except UnicodeDecodeError:
            raise BadRequestProblem(detail=f"body: not valid {self._encoding} text") from None
        except json.JSONDecodeError as error:
            raise BadRequestProblem(detail=f"body: not valid JSON: {error}") from None
        except RecursionError:
            raise BadRequestProblem(
                detail=f"body: nested more than {MAX_DEPTH} levels deep"
            ) from None
        if depth_exceeds(body):
            raise BadRequestProblem(detail=f"body: nested more than {MAX_DEPTH} levels deep")
        surrogate_at = lone_surrogate_at(raw, body)
        if surrogate_at:
            raise BadRequestProblem(
                detail=f"{surrogate_at}: holds a lone UTF-16 surrogate (a \\ud800-\\udfff escape "
                "that is not half of a pair), which is not text; send the character itself"
            )
        return body

    def _validate(self, body: Any) -> dict[str, Any] | None:
        if not self._nullable and body is None:
            raise BadRequestProblem(detail="body: required, and must not be empty")
        try:
            return self._validator.validate(body)  # type: ignore[no-any-return]
        except ValidationError as error:
            raise BadRequestProblem(detail=f"{field_of(error, 'body')}: {error.message}") from None


VALIDATORS = {
    **VALIDATOR_MAP,
    "parameter": NamedParameterValidator,
    "body": MediaTypeDict({**VALIDATOR_MAP["body"], "*/*json": NamedJSONBodyValidator}),
}


CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


class RejectControlCharacters:
    """ASGI middleware: a path with control characters names nothing here; say so (400).

    Connexion's router does not match such paths and would fail with a 500 instead.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and CONTROL_CHARACTERS.search(scope["path"]):
            detail = "path: control characters are not allowed in a URL path"
            body = {
                "type": "about:blank",
                "title": "Bad Request",
                "status": 400,
                "detail": detail,
                "error": detail,
            }
            response = JSONResponse(body, status_code=400, media_type="application/problem+json")
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
