"""The route table: one ``APIRouter`` per resource, included by
:func:`~helixserve.serving.api.build_api` in this order.

========================  ==================================================================
module                    routes
========================  ==================================================================
:mod:`.admin`             ``/healthz``, ``/readyz``, ``/metrics``, ``POST /api/v1/admin/reload``
:mod:`.models`            ``GET /api/v1/models``, ``GET /api/v1/models/{name}``
:mod:`.predict`           ``POST /api/v1/models/{name}/predict`` (hot), ``.../predict-file``,
                          ``POST /api/v1/getdnaclassapi`` (hot)
:mod:`.explain`           ``POST /api/v1/models/{name}/explain``, ``.../variants``,
                          ``.../variants/vcf`` (upload), ``.../design``
:mod:`.motifs`            ``POST /api/v1/models/{name}/motifs``, ``GET .../motifs/{id}``
                          (discoveries in the background)
:mod:`.oip`               ``/v2`` ... (Open Inference Protocol v2; ``.../infer`` is hot)
:mod:`.projects`          ``/api/v1/projects[/{project}]`` (the workspace: create, list, rename)
:mod:`.datasets`          ``/api/v1/projects/{project}/datasets/...`` (versions, profiles, subsets)
:mod:`.experiments`       ``GET /api/v1/recipes``, ``/api/v1/projects/{project}/experiments/...``
:mod:`.runs`              ``/api/v1/projects/{project}/runs/...`` (queue, stop, resume, continue,
                          deploy), ``.../experiments/{experiment}/runs``, ``.../compare``
:mod:`.members`           ``/api/v1/projects/{project}/members[/{user}]``, ``.../audit`` (teams)
:mod:`.account`           ``/api/v1/me``, ``/api/v1/me/keys[/{id}]``, ``/api/v1/me/password``
:mod:`.live`              ``GET /api/v1/projects/{project}/runs/{id}/events`` (server-sent
                          events), ``POST /api/v1/blocks/shapes``
:mod:`.ui_pages`          ``/``, ``/models/{name}[/predict|/upload|/plots/..]``, ``/jobs/..``,
                          ``/compare``, ``/dnasequence``, ``/dnafile``
:mod:`.ui_explain`        ``/models/{name}/variants`` (+ ``/vcf``, ``/vcf/{id}[/{file}]``),
                          ``/models/{name}/design`` (pages)
:mod:`.ui_motifs`         ``/models/{name}/motifs`` (form), ``/models/{name}/motifs/{id}``
                          (progress, logos)
:mod:`.ui_login`          ``/login``, ``/logout``
:mod:`.ui_account`        ``/account`` (keys, password), ``/admin/users`` (users)
:mod:`.ui_workspace`      ``/projects``, ``/projects/{p}``, datasets (upload, roles, subsets)
:mod:`.ui_workspace_experiments`  ``/projects/{p}/experiments/...`` (wizard, clone, Run)
:mod:`.ui_workspace_runs` ``/projects/{p}/runs/{id}`` (live, stop, resume, continue, deploy),
                          ``/projects/{p}/compare``
========================  ==================================================================

Shared dependencies (server, key, model@version, scopes, limits, pages) are in
:mod:`helixserve.serving.deps`; hot routes are also served by the fast path that
:mod:`helixserve.serving.app` generates from these declarations.
"""

from __future__ import annotations

from fastapi import APIRouter

from helixserve.serving.routes import (
    account,
    admin,
    datasets,
    experiments,
    explain,
    live,
    members,
    models,
    motifs,
    oip,
    predict,
    projects,
    runs,
    ui_account,
    ui_explain,
    ui_login,
    ui_motifs,
    ui_pages,
    ui_workspace,
    ui_workspace_experiments,
    ui_workspace_runs,
)

ROUTERS: tuple[APIRouter, ...] = (
    admin.router,
    models.router,
    predict.router,
    explain.router,
    motifs.router,
    oip.router,
    projects.router,
    datasets.router,
    experiments.router,
    runs.router,
    members.router,
    account.router,
    live.router,
    ui_pages.router,
    ui_explain.router,
    ui_motifs.router,
    ui_login.router,
    ui_account.router,
    ui_workspace.router,
    ui_workspace_experiments.router,
    ui_workspace_runs.router,
)
