"""``/api/v1/studies``: create, list, show, stop and delete studies; their trials and Pareto front."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from autopeft.api.deps import Authorized, ServiceDep, blocking
from autopeft.api.schemas.common import MAX_ID, error_responses
from autopeft.api.schemas.studies import ParetoPublic, StudiesPublic, StudyCreate, StudyEventsPublic, StudyPublic
from autopeft.api.schemas.trials import TrialsPublic
from autopeft.trial_state import TrialState

router = APIRouter(
    prefix="/studies", tags=["studies"], dependencies=Authorized, responses=error_responses(401, 404, 413, 422, 503)
)

StudyId = Annotated[int, Path(ge=1, le=MAX_ID, description="The study's id.")]


@router.post("", status_code=201, summary="Create a study")
async def create_study(body: StudyCreate, service: ServiceDep, response: Response) -> StudyPublic:
    study = await blocking(service.create_study, body)
    response.headers["Location"] = f"/api/v1/studies/{study.id}"
    return study


@router.get("", summary="List studies")
async def list_studies(service: ServiceDep) -> StudiesPublic:
    return await blocking(service.list_studies)


@router.get("/{study_id}", summary="One study: counts per state, best metric, hypervolume")
async def get_study(study_id: StudyId, service: ServiceDep) -> StudyPublic:
    return await blocking(service.study_view, study_id)


@router.post(
    "/{study_id}/stop",
    summary="Stop proposing and handing out trials; queued trials stay for a resume, running ones may report",
)
async def stop_study(study_id: StudyId, service: ServiceDep) -> StudyPublic:
    return await blocking(service.stop_study, study_id)


@router.post("/{study_id}/resume", summary="Resume a stopped or paused study: it proposes and hands out trials again")
async def resume_study(study_id: StudyId, service: ServiceDep) -> StudyPublic:
    return await blocking(service.resume_study, study_id)


@router.delete("/{study_id}", status_code=204, summary="Delete a study and its trials")
async def delete_study(study_id: StudyId, service: ServiceDep) -> Response:
    await blocking(service.delete_study, study_id)
    return Response(status_code=204)


@router.get("/{study_id}/trials", summary="The study's trials by number")
async def list_trials(
    study_id: StudyId,
    service: ServiceDep,
    state: Annotated[TrialState | None, Query(description="Only trials in this state.")] = None,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
) -> TrialsPublic:
    return await blocking(service.trials, study_id, state, offset, limit)


@router.get("/{study_id}/pareto", summary="Completed non-dominated trials and the hypervolume")
async def pareto(study_id: StudyId, service: ServiceDep) -> ParetoPublic:
    return await blocking(service.pareto, study_id)


@router.get("/{study_id}/events", summary="What the server did to the study on its own: proposals abandoned, fallbacks")
async def study_events(
    study_id: StudyId,
    service: ServiceDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="The last this many events.")] = 100,
) -> StudyEventsPublic:
    return await blocking(service.events, study_id, limit)
