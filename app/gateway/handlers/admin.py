"""Token-protected model administration: what is served, and a manual rollback or promote.

The learner decides (it must learn on from the version served), so a command goes to it,
signed, on the model-commands topic; every gateway then switches when the learner publishes
the outcome. The signature is what makes the token the only way in: the learner refuses an
unsigned or forged command written to Kafka directly.
"""
from __future__ import annotations

import asyncio
import hmac

import orjson
from aiohttp import web

from app.gateway.errors import error_response, json_response
from app.gateway.keys import MODEL_UPDATES, SETTINGS, SINK
from tables.wire.updates import encode_command, signing_key
from models.errors import ValidationError

# The commands an operator sends (a gateway sends `republish` itself: app/gateway/model_updates.py).
ADMIN_ACTIONS = ("rollback", "promote")


def _authorised(request: web.Request) -> web.Response | None:
    """None when the bearer token matches; else the error response to send."""
    token = request.app[SETTINGS].gateway.admin_token
    if not token:
        return error_response(403, "the admin API is disabled: set STREAMRANK_ADMIN_TOKEN")
    given = request.headers.get("Authorization", "")
    if not given.startswith("Bearer ") or not hmac.compare_digest(given[7:].encode(), token.encode()):
        return error_response(401, "a valid 'Authorization: Bearer <token>' header is required")
    return None


async def model_status(request: web.Request) -> web.Response:
    if (refused := _authorised(request)) is not None:
        return refused
    follower = request.app.get(MODEL_UPDATES)
    held = sorted(follower.recent) if follower is not None else []
    serving = follower.serving_version if follower is not None else 0
    return json_response({"serving_version": serving, "held_versions": held})


async def model_command(request: web.Request) -> web.Response:
    if (refused := _authorised(request)) is not None:
        return refused
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise ValidationError(f"not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ValidationError("the body must be a JSON object")
    action, version = body.get("action"), body.get("version")
    if action not in ADMIN_ACTIONS:
        raise ValidationError(f"'action' must be one of {', '.join(ADMIN_ACTIONS)}")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValidationError("'version' must be a positive integer")
    follower = request.app.get(MODEL_UPDATES)
    if follower is not None and version not in follower.recent:
        raise ValidationError(f"version {version} is not held; held versions: {sorted(follower.recent)}")
    key = await asyncio.to_thread(signing_key, request.app[SETTINGS])
    await request.app[SINK].send_model_command(*encode_command(action, version, key))
    return json_response({"accepted": True, "action": action, "version": version}, status=202)
