"""`POST /api/v1/packages`: a package of invoices, JSON or Vietnamese XML, taken through the
journaled intake (`fallback.journaled_intake`)."""

from __future__ import annotations

from aiohttp import web

from fallback.journaled_intake import IntakeUnavailableError
from indexer.submission import BodyFormat, read_submission
from verify.access.middleware import PRINCIPAL
from verify.http.body import read_body
from verify.http.errors import ApiError
from verify.http.responses import json_response
from verify.keys import ACCESS, JOURNALED_INTAKE, SETTINGS

_JSON_TYPES = frozenset({"application/json"})
_XML_TYPES = frozenset({"application/xml", "text/xml"})
#: What a 503 from intake asks the sender to wait before posting again.
RETRY_AFTER_SECONDS = 30


async def post_package(request: web.Request) -> web.Response:
    """200 with the final notice once the primary holds the package; 202 with a queued
    notice when it is durable in the intake journal but the primary cannot take it now
    (the reconciler applies it later; re-posting answers the notice as it then stands);
    503 with Retry-After when neither can take it. Seller signatures are checked off the
    event loop (`JournaledIntake.signatures`)."""
    if request.content_type not in _JSON_TYPES | _XML_TYPES:
        raise ApiError(415, "unsupported_media_type",
                       "send the package as application/json or application/xml",
                       {"accepted": sorted(_JSON_TYPES | _XML_TYPES),
                        "given": request.content_type})
    settings = request.app[SETTINGS]
    principal = request[PRINCIPAL]
    body = await read_body(request, settings.max_package_bytes)
    fmt = BodyFormat.XML if request.content_type in _XML_TYPES else BodyFormat.JSON
    submission = read_submission(body, fmt, max_items=settings.max_package_items)
    package = submission.package
    if not principal.may_send_for(package.sender):
        raise ApiError(403, "sender_not_allowed",
                       "this key may only send packages for its own provider ids",
                       {"sender": package.sender, "allowed": sorted(principal.scopes)})
    intake = request.app[JOURNALED_INTAKE]
    try:
        outcome = await intake.submit(submission, await intake.signatures(submission))
    except IntakeUnavailableError as exc:
        error = ApiError(503, "intake_unavailable", "the package was not taken: the primary "
                         "index and the local intake journal are both unavailable; post it "
                         "again later", {"package_id": package.package_id, "reason": str(exc)})
        error.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        raise error from None
    result = str(outcome.notice["result"])
    outcome_name = "replayed" if outcome.replayed else result
    request.app[ACCESS].audit.record(principal, "intake", package.package_id, outcome_name,
                                     request.remote)
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else {}
    return json_response(outcome.notice, status=202 if outcome.queued else 200,
                         headers=headers)
