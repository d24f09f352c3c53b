"""The Kubernetes manifests ``dlflow.deploy.kubernetes`` generates, validated against the schemas kept in
``deploy/schemas/`` (the PyTorchJob CRD with the training operator's webhook rules, and the core/v1 pod subset),
with ``jsonschema``: no network, no cluster. The committed manifests in ``deploy/k8s/`` and the one shown in
``docs/distributed.md`` must be what the generator writes today."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import jsonschema
import pytest
import yaml
from referencing import Registry, Resource

from dlflow.deploy.kubernetes import (
    KubernetesParams,
    main,
    manifests,
    pod_template,
    project_parameters,
    pytorch_job,
    training_overrides,
)

REPO = Path(__file__).resolve().parents[1]
SCHEMAS = REPO / "deploy" / "schemas"
CONFIG = REPO / "deploy" / "kubernetes.yml"
COMMITTED = REPO / "deploy" / "k8s"


def _validator(name: str) -> jsonschema.Draft202012Validator:
    schemas = [yaml.safe_load(path.read_text()) for path in sorted(SCHEMAS.glob("*.schema.yaml"))]
    registry = Registry().with_resources((schema["$id"], Resource.from_contents(schema)) for schema in schemas)
    (schema,) = [s for s in schemas if s["$id"] == f"urn:dlflow:schema:{name}"]
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, registry=registry)


JOB, POD = _validator("kubeflow-pytorchjob-v1"), _validator("core-v1-pod")


def errors(validator: jsonschema.Draft202012Validator, manifest: dict) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(manifest)]


@pytest.fixture(scope="module")
def params() -> KubernetesParams:
    return KubernetesParams.model_validate(yaml.safe_load(CONFIG.read_text()))


@pytest.fixture(scope="module")
def generated(params) -> dict[str, dict]:
    return manifests(params, REPO)


@pytest.fixture
def job(generated, params) -> dict:
    return copy.deepcopy(generated[f"{params.name}-pytorchjob.yaml"])


@pytest.fixture
def pod(generated, params) -> dict:
    return copy.deepcopy(generated[f"{params.pipeline}-airflow-pod.yaml"])


# --------------------------------------------------------------------------- valid manifests


def test_the_generated_manifests_are_valid(job, pod):
    assert errors(JOB, job) == []
    assert errors(POD, pod) == []


def test_every_pod_of_the_job_runs_the_two_node_torchrun_command_with_the_projects_recipe(job, params):
    """The command parses with torch's own torchrun parser and Kedro's own ``--params`` parser."""
    from kedro.framework.cli.utils import _split_params
    from torch.distributed.run import get_args_parser

    replicas = job["spec"]["pytorchReplicaSpecs"]
    assert {name: spec["replicas"] for name, spec in replicas.items()} == {"Master": 1, "Worker": params.nodes - 1}
    for spec in replicas.values():
        (container,) = spec["template"]["spec"]["containers"]
        assert container["command"] == ["torchrun"]
        launch = get_args_parser().parse_args(container["args"])
        assert (launch.nnodes, launch.nproc_per_node, launch.rdzv_backend) == (
            str(params.nodes),
            str(params.processes_per_node),
            "c10d",
        )
        assert launch.rdzv_endpoint == f"{params.name}-master-0:{params.rendezvous_port}"
        assert int(launch.max_restarts) == params.max_restarts == job["spec"]["elasticPolicy"]["maxRestarts"]
        assert launch.module and launch.training_script == "kedro"
        arguments = launch.training_script_args
        assert arguments[:5] == ["run", "--pipeline", "cnn", "--env", params.kedro_env]
        overrides = _split_params(None, None, arguments[arguments.index("--params") + 1])
        assert overrides["cnn"]["training"]["processes"] == params.nodes * params.processes_per_node
        assert overrides["cnn"]["training"]["num_threads"] == int(params.cpu) // params.processes_per_node
        env = {e["name"]: e for e in container["env"]}
        assert env["MLFLOW_TRACKING_URI"]["valueFrom"]["secretKeyRef"] == {
            "name": params.mlflow_secret,
            "key": "tracking-uri",
            "optional": False,
        }
        assert env["TORCH_DISABLE_SHARE_RDZV_TCP_STORE"]["value"] == "1"
    policy = job["spec"]["elasticPolicy"]
    assert policy["rdzvBackend"] == "c10d" and policy["minReplicas"] == policy["maxReplicas"] == params.nodes


def test_the_committed_manifests_and_the_docs_are_what_the_generator_writes(tmp_path, capsys):
    main(["--config", str(CONFIG), "--out", str(tmp_path), "--project", str(REPO)])
    written = sorted(p.name for p in tmp_path.glob("*.yaml"))
    assert written == ["cnn-airflow-pod.yaml", "dlflow-cnn-pytorchjob.yaml"] and "written" in capsys.readouterr().out
    for name in written:
        assert (COMMITTED / name).read_text() == (tmp_path / name).read_text(), (
            f"deploy/k8s/{name} is stale: python -m dlflow.deploy.kubernetes --config deploy/kubernetes.yml --out deploy/k8s"
        )
    docs = (REPO / "docs" / "distributed.md").read_text()
    blocks = re.findall(r"```yaml\n(# Generated by .*?)```", docs, re.DOTALL)
    assert (tmp_path / "dlflow-cnn-pytorchjob.yaml").read_text() in blocks, "docs/distributed.md shows a stale PyTorchJob"


# --------------------------------------------------------------------------- the schemas refuse what a cluster refuses


def _drop(manifest: dict, path: str) -> dict:
    *parents, leaf = path.split("/")
    target = manifest
    for key in parents:
        target = target[int(key) if isinstance(target, list) else key]
    del target[int(leaf) if isinstance(target, list) else leaf]
    return manifest


@pytest.mark.parametrize(
    "path, message",
    [
        ("spec/pytorchReplicaSpecs", "'pytorchReplicaSpecs' is a required property"),
        ("metadata/name", "'name' is a required property"),
        ("spec/pytorchReplicaSpecs/Master/template/spec/containers/0/name", "'name' is a required property"),
        ("spec/pytorchReplicaSpecs/Worker/template/spec/containers/0/image", "'image' is a required property"),
        ("spec/pytorchReplicaSpecs/Worker/template/spec/containers/0/env/0/name", "'name' is a required property"),
        ("spec/pytorchReplicaSpecs/Worker/template/spec/volumes/0/persistentVolumeClaim/claimName", "'claimName' is a required"),
        ("spec/pytorchReplicaSpecs/Worker/template/spec/containers/0/volumeMounts/0/mountPath", "'mountPath' is a required"),
        ("spec/pytorchReplicaSpecs/Worker", "'Worker' is a required property"),  # elasticPolicy needs Workers
    ],
)
def test_a_job_missing_a_required_field_is_refused(job, path, message):
    assert any(message in error for error in errors(JOB, _drop(job, path))), errors(JOB, job)


def test_the_job_schema_refuses_what_the_training_operator_refuses(job):
    master = job["spec"]["pytorchReplicaSpecs"]["Master"]
    cases = {
        "two masters": lambda j: master.update(replicas=2),
        "no container named pytorch": lambda j: master["template"]["spec"]["containers"][0].update(name="trainer"),
        "an unknown replica type": lambda j: j["spec"]["pytorchReplicaSpecs"].update(Chief=copy.deepcopy(master)),
        "a job name that is no DNS-1035 label": lambda j: j["metadata"].update(name="dlflow_CNN"),
        "a misspelt field": lambda j: master["template"]["spec"]["containers"][0].update(imagePulPolicy="Always"),
        "a quantity that is not one": lambda j: master["template"]["spec"]["containers"][0]["resources"]["limits"].update(
            cpu="4 cores"
        ),
        "an int32 as a string": lambda j: j["spec"]["elasticPolicy"].update(rdzvPort="29400"),
        "a restart policy that does not exist": lambda j: master.update(restartPolicy="Sometimes"),
        "nProcPerNode twice": lambda j: (j["spec"].update(nprocPerNode="1"), j["spec"]["elasticPolicy"].update(nProcPerNode=1)),
    }
    for case, change in cases.items():
        broken = copy.deepcopy(job)
        master = broken["spec"]["pytorchReplicaSpecs"]["Master"]
        change(broken)
        assert errors(JOB, broken), f"{case} was accepted"


def test_the_pod_template_schema_refuses_a_pod_that_airflow_or_kubernetes_would_not_run(pod):
    assert errors(POD, pod) == []
    renamed = copy.deepcopy(pod)
    renamed["spec"]["containers"][0]["name"] = "dlflow"
    assert any("'base' was expected" in e for e in errors(POD, renamed))  # KubernetesPodOperator's main container
    assert any("'spec' is a required property" in e for e in errors(POD, _drop(copy.deepcopy(pod), "spec")))
    assert any("'containers' is a required property" in e for e in errors(POD, _drop(copy.deepcopy(pod), "spec/containers")))
    empty = copy.deepcopy(pod)
    empty["spec"]["containers"] = []
    assert errors(POD, empty)
    wrong_policy = copy.deepcopy(pod)
    wrong_policy["spec"]["restartPolicy"] = "OnSuccess"
    assert any("'OnSuccess' is not one of" in e for e in errors(POD, wrong_policy))


# --------------------------------------------------------------------------- the generator refuses early


def test_a_job_that_fit_would_refuse_is_refused_before_anything_is_written(params, tmp_path):
    parameters = project_parameters(REPO, params.kedro_env)
    batch = parameters["cnn"]["training"]["batch_size"]
    too_many = params.model_copy(update={"nodes": batch + 1})
    with pytest.raises(
        ValueError, match=rf"cnn.training .* with {batch + 1} processes .* is refused: .*must not exceed batch_size"
    ):
        training_overrides(too_many, parameters)
    with pytest.raises(ValueError, match="pipeline 'rnn' does not train under torchrun"):
        training_overrides(params.model_copy(update={"pipeline": "rnn"}), parameters)
    with pytest.raises(ValueError, match="nodes >= 2"):
        pytorch_job(params.model_copy(update={"nodes": 1}), {})
    with pytest.raises(ValueError, match="DNS-1035 label"):
        KubernetesParams(image="x", name="dlflow_cnn")

    out = tmp_path / "k8s"
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", str(CONFIG), "--nodes", str(batch + 1), "--out", str(out), "--project", str(REPO)])
    assert exit_info.value.code == 2 and not out.exists()


def test_the_pod_template_runs_any_pipeline_once(params):
    pod = pod_template(params.model_copy(update={"pipeline": "inference_cnn", "params": {"images_path": "/data/in"}}))
    assert errors(POD, pod) == []
    (container,) = pod["spec"]["containers"]
    assert container["command"] == ["kedro"]
    assert container["args"] == [
        "run",
        "--pipeline",
        "inference_cnn",
        "--env",
        params.kedro_env,
        "--params",
        "images_path=/data/in",
    ]
    assert pod["metadata"]["name"] == "dlflow-inference-cnn" and pod["spec"]["restartPolicy"] == "Never"
