"""The Kubernetes and KServe manifests against their API schemas, offline (``make manifests``).

Contract:
- Kubernetes kinds (Deployment, Service, HorizontalPodAutoscaler, ...): ``kubernetes-validate``'s
  bundled JSON schemas of the newest Kubernetes version it ships, strict (a field the schema does
  not know is an error, as ``kubectl apply --validate=strict`` would say).
- KServe kinds (ClusterServingRuntime, InferenceService): the ``kserve`` SDK's generated models,
  walked field by field: every field must be one the model declares (its ``attribute_map``),
  of the declared type, down into the Kubernetes models they embed (``kubernetes.client``'s:
  containers, probes, ...); ``apiVersion`` must be the one the SDK names. An InferenceService's
  ``runtime`` must be a ClusterServingRuntime of the same files that supports its model format.
- Runs in a throw-away virtual environment holding only those packages: it imports nothing of
  helixserve. Prints one line per document, then the problems; exit status 1 if there are any.
"""

from __future__ import annotations

import sys
from importlib.metadata import version as installed
from pathlib import Path
from typing import Any

import kserve.models
import kubernetes.client.models
import kubernetes_validate
import yaml

KSERVE_KINDS = {
    "InferenceService": ("serving.kserve.io/v1beta1", "V1beta1InferenceService"),
    "ClusterServingRuntime": ("serving.kserve.io/v1alpha1", "V1alpha1ClusterServingRuntime"),
}
PRIMITIVES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "datetime": (str,),
    "date": (str,),
    "object": (object,),
}


def _model(name: str) -> Any:
    found = getattr(kserve.models, name, None) or getattr(kubernetes.client.models, name, None)
    if found is None:
        raise LookupError(f"no SDK model named {name}")
    return found


def check_typed(value: Any, type_name: str, where: str) -> list[str]:
    """Problems of ``value`` against the SDK type ``type_name`` (see the module contract)."""
    if type_name.startswith(("list[", "List[")):  # the SDKs write both
        if not isinstance(value, list):
            return [f"{where}: a list expected, got {type(value).__name__}"]
        inner = type_name[5:-1]
        return [
            p for i, item in enumerate(value) for p in check_typed(item, inner, f"{where}[{i}]")
        ]
    if type_name.startswith(("dict(", "Dict[")):  # dict(str, X) or Dict[str, X]
        if not isinstance(value, dict):
            return [f"{where}: a mapping expected, got {type(value).__name__}"]
        inner = type_name.split(",", 1)[1].strip()[:-1]
        return [p for k, v in value.items() for p in check_typed(v, inner, f"{where}.{k}")]
    if type_name in PRIMITIVES:
        wanted = PRIMITIVES[type_name]
        wrong = (isinstance(value, bool) and bool not in wanted) or not isinstance(value, wanted)
        return [f"{where}: {type_name} expected, got {value!r}"] if wrong else []
    return check_object(value, type_name, where)


def check_object(value: Any, type_name: str, where: str) -> list[str]:
    """Problems of ``value`` against the SDK model ``type_name``: unknown fields, wrong types."""
    if not isinstance(value, dict):
        return [f"{where}: an object ({type_name}) expected, got {value!r}"]
    model = _model(type_name)
    fields = {key: attribute for attribute, key in model.attribute_map.items()}
    problems = []
    for key, item in value.items():
        if key not in fields:
            problems.append(f"{where}.{key}: not a field of {type_name}")
        else:
            problems += check_typed(item, model.openapi_types[fields[key]], f"{where}.{key}")
    return problems


def check_kserve(document: dict[str, Any], where: str) -> list[str]:
    api_version, model = KSERVE_KINDS[document["kind"]]
    problems = check_typed(document, model, where)
    if document.get("apiVersion") != api_version:
        problems.append(f"{where}.apiVersion: {document.get('apiVersion')!r}, not {api_version}")
    return problems


def check_kubernetes(document: dict[str, Any], where: str, version: str) -> list[str]:
    try:
        kubernetes_validate.validate(document, version, strict=True)
    except kubernetes_validate.ValidationError as err:
        return [f"{where}: {err.message} at {'.'.join(map(str, err.path))}"]
    return []


def check_runtimes(documents: list[dict[str, Any]]) -> list[str]:
    """Each InferenceService names a runtime here that supports its model format."""
    formats = {
        d["metadata"]["name"]: {f["name"] for f in d["spec"]["supportedModelFormats"]}
        for d in documents
        if d["kind"] == "ClusterServingRuntime"
    }
    problems = []
    for d in documents:
        if d["kind"] == "InferenceService":
            model = d["spec"]["predictor"]["model"]
            if model["modelFormat"]["name"] not in formats.get(model.get("runtime"), set()):
                problems.append(f"{d['metadata']['name']}: no runtime here serves its format")
    return problems


def main(paths: list[str]) -> int:
    version = str(kubernetes_validate.utils.latest_version())  # the newest schemas it ships
    problems: list[str] = []
    documents = []
    for path in paths:
        for index, document in enumerate(yaml.safe_load_all(Path(path).read_text())):
            where = f"{path}#{index + 1} {document['kind']} {document['metadata']['name']}"
            if document["kind"] in KSERVE_KINDS:
                found = check_kserve(document, where)
                against = f"kserve {installed('kserve')} SDK models"
            else:
                found = check_kubernetes(document, where, version)
                against = f"Kubernetes {version} schema (strict)"
            print(f"{where}: {'ok' if not found else 'PROBLEMS'} against the {against}")
            problems += found
            documents.append(document)
    problems += check_runtimes(documents)
    for problem in problems:
        print("  " + problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
