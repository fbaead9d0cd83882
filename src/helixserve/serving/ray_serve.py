"""``helixserve serve --engine ray``: the same app (domain API, OIP REST, UI) on Ray Serve.

Contract: :func:`deploy` connects to (or starts) Ray, starts Serve's HTTP proxy on
``host:port`` and deploys one ``helixserve`` deployment whose replicas each build the normal
ASGI app (:func:`~helixserve.serving.app.create_app`) from the given settings — every replica
loads the store's models itself, so the store must be reachable from every node (S3 for a real
cluster). ``replicas`` fixes the number of replicas; ``autoscale=(min, max)`` lets Serve scale on
ongoing requests instead. gRPC is not started in replicas (Serve's proxy speaks HTTP here).
Ray is imported only in this module (extra ``ray``).
"""

from __future__ import annotations

from typing import Any

from helixserve.errors import HelixError
from helixserve.serving.app import ASGIApp, create_app
from helixserve.settings import Settings

DEPLOYMENT = "helixserve"


def build_replica_app(values: dict[str, Any]) -> ASGIApp:
    """Runs on each replica: the normal app, without a gRPC server."""
    return create_app(Settings(**{**values, "grpc_port": 0}))


def deploy(
    settings: Settings,
    *,
    replicas: int = 2,
    autoscale: tuple[int, int] | None = None,
    address: str | None = None,
    cpus_per_replica: float = 0.5,
) -> Any:
    """Deploy helixserve on Ray Serve; returns the deployment handle."""
    try:
        import ray  # noqa: PLC0415 - optional extra
        from ray import serve  # noqa: PLC0415
    except ImportError:
        raise HelixError(
            "--engine ray needs the ray extra: pip install 'helixserve[ray]'."
        ) from None
    if not ray.is_initialized():
        ray.init(
            address=address, include_dashboard=False, log_to_driver=False, configure_logging=False
        )
    serve.start(http_options={"host": settings.host, "port": settings.port})
    values = settings.model_dump()  # python mode: secrets stay real (pickled to replicas)
    options: dict[str, Any] = {"ray_actor_options": {"num_cpus": cpus_per_replica}}
    if autoscale is not None:
        low, high = autoscale
        options["autoscaling_config"] = {
            "min_replicas": low,
            "max_replicas": high,
            "target_ongoing_requests": 32,
        }
    else:
        options["num_replicas"] = replicas
    ingress = serve.ingress(lambda: build_replica_app(values))
    deployment = serve.deployment(name=DEPLOYMENT, **options)(ingress())
    return serve.run(deployment.bind(), name=DEPLOYMENT, route_prefix="/")


def parse_autoscale(text: str) -> tuple[int, int]:
    """``"2:8"`` -> ``(2, 8)``, with a message that says what is wrong."""
    low, sep, high = text.partition(":")
    if not sep or not low.isdigit() or not high.isdigit() or not 1 <= int(low) <= int(high):
        raise HelixError(f"--autoscale must be MIN:MAX with 1 <= MIN <= MAX, got {text!r}.")
    return int(low), int(high)
