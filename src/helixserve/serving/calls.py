"""How to call a served model: the exact commands, ready to paste, for one ``name@version``.

Contract: :func:`model_calls` gives a :class:`~helixserve.serving.workspace_schemas.Calls` for a
manifest, the server's base URL (``http://127.0.0.1:8000``) and its gRPC address (``None``: no
gRPC server):
- ``curl``: ``POST <base>/api/v1/models/<name>/predict?version=<v>`` with one example input;
- ``python``: the same call with ``requests``;
- ``oip_curl``: ``POST <base>/v2/models/<name>/versions/<v>/infer`` (Open Inference Protocol);
- ``grpc_python``: the same inference over gRPC with ``tritonclient`` (``None`` without gRPC).

With ``keyed`` (the server needs a ``predict`` key), every call sends ``Authorization: Bearer``
with ``$HELIXSERVE_API_KEY`` (the server keeps only hashes of keys: the person fills in theirs).
The example input follows the input schema: DNA, ``ACGT`` repeated to the exact length (else
50 nt, kept within the minimum and maximum); tabular, one row of each feature's lowest value (0
when unbounded); images, the base64 text of a PNG file the person names (``cell.png``).
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from helixserve.inputs.sequence import SequenceSchema
from helixserve.inputs.tabular import TabularSchema
from helixserve.serving.workspace_schemas import Calls
from helixserve.store.manifest import Manifest

KEY = "$HELIXSERVE_API_KEY"
DNA_LENGTH = 50
IMAGE = "$(base64 -w0 cell.png)"


def example_input(manifest: Manifest) -> Any:
    """One valid input for the model (see the module contract)."""
    schema = manifest.input
    if isinstance(schema, SequenceSchema):
        length = schema.length or max(
            schema.min_length or 1, min(DNA_LENGTH, schema.max_length or DNA_LENGTH)
        )
        return ("ACGT" * length)[:length]
    if isinstance(schema, TabularSchema):
        return {f.name: (f.min if f.min is not None else 0) for f in schema.features}
    return IMAGE


def _oip_tensor(manifest: Manifest, item: Any) -> dict[str, Any]:
    if isinstance(item, dict):
        values = list(item.values())
        return {
            "name": manifest.onnx_input,
            "shape": [1, len(values)],
            "datatype": "FP32",
            "data": values,
        }
    name = "sequence" if isinstance(manifest.input, SequenceSchema) else "image"
    return {"name": name, "shape": [1], "datatype": "BYTES", "data": [item]}


def _curl(url: str, body: dict[str, Any], keyed: bool) -> str:
    text = json.dumps(body, separators=(",", ":"))
    quoted = f'"{text.replace(chr(34), chr(92) + chr(34))}"' if IMAGE in text else shlex.quote(text)
    header = f' \\\n  -H "Authorization: Bearer {KEY}"' if keyed else ""
    json_header = "-H 'Content-Type: application/json'"
    return f"curl -s {shlex.quote(url)}{header} \\\n  {json_header} -d {quoted}"


def _python(url: str, body: dict[str, Any], keyed: bool) -> str:
    headers = ', headers={"Authorization": "Bearer " + os.environ["HELIXSERVE_API_KEY"]}'
    lines = [
        "import os" if keyed else "",
        "import requests",
        f"url = {url!r}",
        f"response = requests.post(url, json={body!r}{headers if keyed else ''})",
        "print(response.json())",
    ]
    return "\n".join(line for line in lines if line)


def _grpc(manifest: Manifest, target: str, item: Any, keyed: bool) -> str:
    tensor = _oip_tensor(manifest, item)
    output = {"regression": "value", "multilabel": "probabilities"}.get(manifest.task, "label")
    if tensor["datatype"] == "BYTES":
        data = f"numpy.array([{str(item).encode()!r}], dtype=object)"
    else:
        data = f"numpy.array([{list(item.values())!r}], dtype=numpy.float32)"
    headers = ', headers={"authorization": "Bearer " + os.environ["HELIXSERVE_API_KEY"]}'
    return "\n".join(
        [
            "import os" if keyed else "",
            "import numpy",
            "import tritonclient.grpc as grpcclient  # pip install 'tritonclient[grpc]'",
            f"client = grpcclient.InferenceServerClient({target!r})",
            f"tensor = grpcclient.InferInput({tensor['name']!r}, {tensor['shape']!r}, "
            f"{tensor['datatype']!r})",
            f"tensor.set_data_from_numpy({data})",
            f"result = client.infer({manifest.name!r}, [tensor], "
            f"model_version={str(manifest.version)!r}{headers if keyed else ''})",
            f"print(result.as_numpy({output!r}))",
        ]
    ).lstrip("\n")


def model_calls(manifest: Manifest, base_url: str, grpc_target: str | None, keyed: bool) -> Calls:
    """The calls for ``manifest``'s model at its version; see the module contract."""
    base = base_url.rstrip("/")
    name, version = manifest.name, manifest.version
    item = example_input(manifest)
    predict = f"{base}/api/v1/models/{name}/predict?version={version}"
    infer = f"{base}/v2/models/{name}/versions/{version}/infer"
    return Calls(
        curl=_curl(predict, {"inputs": [item]}, keyed),
        python=_python(predict, {"inputs": [item]}, keyed),
        oip_curl=_curl(infer, {"inputs": [_oip_tensor(manifest, item)]}, keyed),
        grpc_python=_grpc(manifest, grpc_target, item, keyed) if grpc_target else None,
    )
