"""``/api/v1/trials``: what workers call: claim, heartbeat, progress, complete, stopped, fail, release."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, Path, Response
from starlette.convertors import StringConvertor, register_url_convertor

from autopeft.api.deps import Authorized, ServiceDep, SettingsDep, blocking
from autopeft.api.schemas.common import MAX_ID, error_responses
from autopeft.api.schemas.trials import (
    ClaimRequest,
    CompleteRequest,
    FailRequest,
    HeartbeatRequest,
    LeasePublic,
    ProgressPublic,
    ProgressRequest,
    ReleaseRequest,
    TrialAssignment,
    TrialPublic,
)
from autopeft.api.service import NoWork

router = APIRouter(
    prefix="/trials", tags=["trials"], dependencies=Authorized, responses=error_responses(401, 404, 409, 413, 422, 503)
)

TrialId = Annotated[int, Path(ge=1, le=MAX_ID, description="The trial's id.")]


class _NotClaim(StringConvertor):
    """A trial id segment that is not ``claim``: ``GET /trials/claim`` is then 405 (claim is POST),
    not a 422 about a trial id "claim". Its value is still validated as an id."""

    regex = "(?!claim$)[^/]+"


register_url_convertor("not_claim", _NotClaim())


@router.post(
    "/claim",
    response_model=TrialAssignment,
    summary="Take a queued trial and its lease",
    responses={204: {"description": "No work now: ask again after Retry-After seconds"}},
)
async def claim(body: ClaimRequest, service: ServiceDep, settings: SettingsDep) -> TrialAssignment | Response:
    """While trials are being proposed, ask the queue again a few times (backing off, bounded by
    ``claim_wait_s``) before answering 204; the wait holds no thread."""
    outcome = await blocking(service.claim, body)
    deadline, pause = time.monotonic() + settings.claim_wait_s, 0.01
    while isinstance(outcome, NoWork) and outcome.coming and time.monotonic() + pause <= deadline:
        await asyncio.sleep(pause)
        pause = min(2 * pause, 0.2)
        outcome = await blocking(service.claim, body)
    if isinstance(outcome, NoWork):
        headers = {"Retry-After": str(outcome.retry_after_s), "X-Autopeft-Idle": outcome.reason}
        return Response(status_code=204, headers=headers)
    return outcome


@router.get("/{trial_id:not_claim}", summary="One trial")
async def get_trial(trial_id: TrialId, service: ServiceDep) -> TrialPublic:
    return await blocking(service.trial, trial_id)


@router.post("/{trial_id}/heartbeat", summary="Extend the lease")
async def heartbeat(trial_id: TrialId, body: HeartbeatRequest, service: ServiceDep) -> LeasePublic:
    return await blocking(service.heartbeat, trial_id, body.lease_token)


@router.post(
    "/{trial_id}/progress",
    summary="Report an evaluation while training; renews the lease; answers whether to go on",
)
async def progress(trial_id: TrialId, body: ProgressRequest, service: ServiceDep) -> ProgressPublic:
    return await blocking(service.progress, trial_id, body)


@router.post(
    "/{trial_id}/stopped",
    summary="Report the result of a trial the early-stopping rule stopped (idempotent; it stays stopped)",
)
async def stopped(trial_id: TrialId, body: CompleteRequest, service: ServiceDep) -> TrialPublic:
    return await blocking(service.report_stopped, trial_id, body)


@router.post("/{trial_id}/complete", summary="Report the result (idempotent)")
async def complete(trial_id: TrialId, body: CompleteRequest, service: ServiceDep) -> TrialPublic:
    return await blocking(service.complete, trial_id, body)


@router.post("/{trial_id}/fail", summary="Report that the trial failed (idempotent)")
async def fail(trial_id: TrialId, body: FailRequest, service: ServiceDep) -> TrialPublic:
    return await blocking(service.fail, trial_id, body)


@router.post("/{trial_id}/release", summary="Give the trial back to the queue (the worker is stopping)")
async def release(trial_id: TrialId, body: ReleaseRequest, service: ServiceDep) -> TrialPublic:
    return await blocking(service.release, trial_id, body.lease_token)
