"""Connexion's request validators, with messages that name the offending field.

Connexion says "'bogus' is not one of ['running', 'paused']" and dumps the schema, or "0.001 is
not valid under any of the given schemas"; a user needs "state: 'bogus' is not one of …" with
the field in the problem's ``field`` and ``error`` keys, as the service's own errors have, and
what a field takes. Validation itself stays Connexion's.
"""

from __future__ import annotations

import json
import re
import reprlib
from typing import Any

from connexion.datastructures import MediaTypeDict
from connexion.exceptions import BadRequestProblem
from connexion.validators import VALIDATOR_MAP, JSONRequestBodyValidator, ParameterValidator
from jsonschema import ValidationError
from jsonschema.exceptions import best_match

from f8a_jobs.api.errors import problem_response
from f8a_jobs.core.json_values import MAX_DEPTH, depth_exceeds, lone_surrogate_at

NAMED_IN_MESSAGE = re.compile(r"'([^']+)' (?:is a required property|was unexpected)")
KINDS = {
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "an object",
}
EMPTY = "required, and must not be empty"


class FieldProblem(BadRequestProblem):
    """A 400 whose problem+json names the field in ``field`` and ``error`` too."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(detail=f"{field}: {message}")
        self.ext = {"error": self.detail, "field": field}


def field_of(error: ValidationError, root: str) -> str:
    """The dotted path of the value a JSON-schema error is about."""
    path = [root, *(str(part) for part in error.absolute_path)]
    named = NAMED_IN_MESSAGE.search(error.message)
    if named and error.validator in ("required", "additionalProperties"):
        path.append(named.group(1))
    return ".".join(part for part in path if part) or "body"


def explained(error: ValidationError) -> str:
    """The error's message, but a value that fits none of a ``oneOf``'s forms is told which
    forms there are (and the field's description), not "not valid under any of the given
    schemas"; a pattern, a regular expression, is followed by the field's description.
    ``error`` is ``best_match``'s: a form of the value's own type has said already what is
    wrong with it."""
    described = error.schema.get("description")
    if error.validator in ("oneOf", "anyOf"):
        kinds = " or ".join(
            KINDS.get(form.get("type"), "another form") for form in error.validator_value
        )
        got = reprlib.repr(error.instance)  # a long string is cut short
        return f"expected {kinds}{f' ({described})' if described else ''}, got {got}"
    if error.validator == "pattern" and described:
        return f"{error.message} ({described})"
    return error.message


class NamedParameterValidator(ParameterValidator):
    @staticmethod
    def validate_parameter(
        parameter_type: str, value: Any, param: dict[str, Any], param_name: str | None = None
    ) -> str | None:
        """The first line of Connexion's message (the others dump the schema)."""
        if value is None and param.get("required"):
            return f"a required {parameter_type} parameter"
        message = ParameterValidator.validate_parameter(parameter_type, value, param, param_name)
        return message.splitlines()[0] if message else None

    def validate_request(self, request: Any) -> None:
        """Connexion's checks, in its order, each naming its parameter; with strict validation
        a query parameter the operation does not take is refused, not ignored (a misspelt
        filter would otherwise list everything)."""
        if self.strict_validation:
            unknown = self.validate_query_parameter_list(request, list(self.security_query_params))
            if unknown:
                raise FieldProblem(", ".join(sorted(unknown)), self._unknown(len(unknown)))
        for kind in ("query", "path", "header", "cookie"):
            check = getattr(self, f"validate_{kind}_parameter")
            for param in self.parameters.get(kind, []):
                message = check(param, request)
                if message:
                    raise FieldProblem(param["name"], message)

    def _unknown(self, count: int) -> str:
        known = ", ".join(param["name"] for param in self.parameters.get("query", []))
        takes = f"this takes {known}" if known else "this takes none"
        return f"unknown query parameter{'s' if count > 1 else ''}; {takes}"


class NamedJSONBodyValidator(JSONRequestBodyValidator):
    async def wrap_receive(self, receive: Any, *, scope: Any) -> Any:
        """Connexion's, but its "RequestBody is required" names the body too."""
        try:
            return await super().wrap_receive(receive, scope=scope)
        except FieldProblem:
            raise
        except BadRequestProblem:
            raise FieldProblem("body", EMPTY) from None

    async def _parse(self, stream: Any, scope: Any) -> Any:
        raw = b"".join([message async for message in stream])
        if not raw:
            return None
        try:
            body = json.loads(raw.decode(self._encoding))
        except UnicodeDecodeError:
            raise FieldProblem("body", f"not valid {self._encoding} text") from None
        except json.JSONDecodeError as error:
            raise FieldProblem("body", f"not valid JSON: {error}") from None
        except RecursionError:
            raise FieldProblem("body", f"nested more than {MAX_DEPTH} levels deep") from None
        if depth_exceeds(body):
            raise FieldProblem("body", f"nested more than {MAX_DEPTH} levels deep")
        surrogate_at = lone_surrogate_at(raw, body)
        if surrogate_at:
            raise FieldProblem(
                surrogate_at,
                "holds a lone UTF-16 surrogate (a \\ud800-\\udfff escape that is not half of a "
                "pair), which is not text; send the character itself",
            )
        return body

    def _validate(self, body: Any) -> dict[str, Any] | None:
        if not self._nullable and body is None:
            raise FieldProblem("body", EMPTY)
        try:
            return self._validator.validate(body)  # type: ignore[no-any-return]
        except ValidationError as error:
            best = best_match([error])
            raise FieldProblem(field_of(best, "body"), explained(best)) from None


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
            detail = "control characters are not allowed in a URL path"
            await problem_response(400, "path", detail)(scope, receive, send)
            return
        await self.app(scope, receive, send)
