"""Who may call each route: generated from the route table, for docs/security.md and the issue
notes (``python -m helixserve.serving.route_roles`` prints the Markdown table).

Contract: :func:`rows` walks :data:`helixserve.serving.routes.ROUTERS` and names, for every route
and method, who may call it while accounts are on, from the guards the route declares (its
dependencies) and the role it needs (:func:`~helixserve.serving.access.needed_role`):

- a workspace route with ``{project}`` (API or page): that role in the project;
- a workspace route without one: any signed-in user or key that may use the workspace;
- ``/api/v1/me...``: a user (or their key of the ``admin`` scope);
- a model's routes (predict, explain, OIP, model pages): a viewer of the model's project, or
  any caller for a model of no project;
- other pages: any signed-in person; ``POST /api/v1/admin/reload``: an ``admin`` service key;
- the rest (health, metrics, sign-in, the API docs, static files): anyone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from helixserve.serving import deps
from helixserve.serving.access import needed_role
from helixserve.serving.routes import ROUTERS
from helixserve.serving.routes.live import live_access
from helixserve.serving.routes.models import model as model_detail
from helixserve.serving.routes.models import models as models_list
from helixserve.serving.routes.oip import infer_model, visible_model
from helixserve.serving.routes.predict import seed_model
from helixserve.serving.routes.ui_pages import plot_image

MODEL = "a viewer of the model's project (anyone signed in: a model of no project)"
MODEL_CHECKS = (  # dependencies, and handlers that check the model themselves
    deps.predict_model,
    deps.page_model,
    visible_model,
    infer_model,
    seed_model,
    model_detail,
    plot_image,
)


def _calls(dependant: Dependant) -> set[Callable[..., Any]]:
    found = {d.call for d in dependant.dependencies if d.call is not None}
    for sub in dependant.dependencies:
        found |= _calls(sub)
    return found


def _guards() -> list[tuple[frozenset[Callable[..., Any]], str]]:
    """(the dependencies or handlers that check, who they let in), most specific first."""
    return [
        (frozenset({deps.caller}), "a user (or their admin-scope key)"),
        (frozenset(MODEL_CHECKS), MODEL),
        (frozenset({models_list}), "anyone signed in: the models they may use"),
        (frozenset({deps.admin_scope}), "an admin service key"),
        (frozenset({deps.page_guard, deps.page_caller}), "anyone signed in"),
    ]


def who_may(route: APIRoute) -> str:
    """Who may call ``route`` (see the module contract)."""
    calls = _calls(route.dependant) | {route.endpoint}
    if calls & {deps.project_caller, deps.workspace_page_guard, live_access}:
        if "{project}" in route.path:
            return f"{needed_role(route).value} of the project"
        return "anyone signed in who may use the workspace"
    return next((who for guards, who in _guards() if calls & guards), "anyone")


def rows() -> list[tuple[str, str, str]]:
    """(method, path, who may call it) for every route of the route table, in its order."""
    found = []
    for router in ROUTERS:
        for route in router.routes:
            if isinstance(route, APIRoute):
                for method in sorted(route.methods or ()):
                    found.append((method, route.path, who_may(route)))
    return found


def markdown() -> str:
    lines = ["| method | route | who may call it (accounts on) |", "|---|---|---|"]
    lines += [f"| {m} | `{p}` | {w} |" for m, p, w in rows()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
