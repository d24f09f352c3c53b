"""Kubernetes manifests for the project's training, generated from its parameters: plain dicts written as YAML.

* ``pytorch_job``: a Kubeflow training-operator ``PyTorchJob`` (``kubeflow.org/v1``), one pod per node
  (a ``Master`` and ``nodes - 1`` ``Worker`` replicas). Every pod runs the command that trains on
  several machines anywhere::

      torchrun --nnodes=N --nproc-per-node=P --rdzv-backend=c10d --rdzv-endpoint=<job>-master-0:29400 \\
          --rdzv-id=<job> --max-restarts=R -m kedro run --pipeline cnn --params cnn.training.processes=N*P,...

  with the job's ``elasticPolicy`` saying the same (c10d, exactly N nodes, R restarts). The c10d
  rendezvous ranks the nodes by host name, so the master pod is rank 0: it alone tracks the run and
  writes the checkpoints, to the shared data volume. ``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1`` lets a
  restarted worker group rendezvous cleanly (torch 2.13, pytorch/pytorch#135712).
* ``pod_template``: a pod for Airflow's ``KubernetesPodOperator`` (``pod_template_file``; its container
  is named ``base``, as the operator requires): one ``kedro run --pipeline <pipeline>`` per scheduled run.

Both read the tracking server's address and login from a Secret (``MLFLOW_TRACKING_URI``,
``MLFLOW_TRACKING_USERNAME``, ``MLFLOW_TRACKING_PASSWORD``) and mount the project's ``data/`` folder
from a PersistentVolumeClaim. The training recipe comes from the project's own parameters
(``conf/base`` and the environment), checked by ``dlflow.config.TrainingParams`` with the process
count the job will launch, so a job that ``fit`` would refuse is refused here, before any file
is written. The manifests themselves are checked against the schemas in ``deploy/schemas/`` by the
tests. No Kubernetes client is needed::

    python -m dlflow.deploy.kubernetes --image registry.example.com/dlflow:0.1.0 --out deploy/k8s
    python -m dlflow.deploy.kubernetes --config deploy/kubernetes.yml --out deploy/k8s
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator

from dlflow.config import StrictModel, TrainingParams
from dlflow.files import atomic_write

#: Pipelines whose training runs data-parallel under torchrun (the RNN's adversarial loss needs one process).
DATA_PARALLEL = ("cnn",)
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


class KubernetesParams(StrictModel):
    """Where and how the manifests run the pipeline; every field but ``image`` has a default."""

    image: str = Field(min_length=1)  # the project installed (torch first), its conf/ in project_dir
    name: str = "dlflow-cnn"  # the PyTorchJob's name (and its pods' prefix): a DNS-1035 label
    namespace: str = "dlflow"
    pipeline: str = "cnn"
    kedro_env: str = "local"  # the configuration environment the pods run with (conf/<env>)
    nodes: int = Field(default=2, ge=1)  # pods of the PyTorchJob, one torchrun agent each
    processes_per_node: int = Field(default=1, ge=1)  # training processes per pod (GPUs per pod on CUDA)
    max_restarts: int = Field(default=3, ge=0)  # TorchElastic restarts of the worker group
    rendezvous_port: int = Field(default=29400, ge=1, le=65535)
    project_dir: str = "/srv/dlflow"  # the working directory in the image: pyproject.toml, conf/
    data_claim: str = "dlflow-data"  # a ReadWriteMany PersistentVolumeClaim mounted at <project_dir>/data
    mlflow_secret: str = "dlflow-mlflow"  # keys: tracking-uri, and optionally username, password
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    cpu: str = "2"  # per pod; a whole number also sets each process's threads (cores / processes_per_node)
    memory: str = "8Gi"  # per pod
    gpus: int = Field(default=0, ge=0)  # nvidia.com/gpu per pod; > 0 must equal processes_per_node
    params: dict[str, str | int | float | bool] = Field(default_factory=dict)  # more `kedro run --params`

    @field_validator("name")
    @classmethod
    def _dns_label(cls, name: str) -> str:
        if len(name) > 63 - len("-worker-999") or not _DNS_1035.match(name):
            raise ValueError(
                f"{name!r} must be a DNS-1035 label of at most 52 characters (lower-case letters, digits and '-', "
                "starting with a letter): the training operator names the pods <name>-master-0, <name>-worker-<i>"
            )
        return name

    @property
    def processes(self) -> int:
        return self.nodes * self.processes_per_node

    @property
    def threads_per_process(self) -> int | None:
        """Cores per training process when ``cpu`` is whole cores: a container sees all the host's cores, not its quota."""
        return max(1, int(self.cpu) // self.processes_per_node) if self.cpu.isdigit() else None


# --------------------------------------------------------------------------- the project's recipe


def project_parameters(project: Path, env: str) -> dict[str, Any]:
    """The parameters ``kedro run --env <env>`` would see in ``project`` (its conf/), resolved by the project's loader."""
    from dlflow import settings  # the loader and resolvers `kedro run` uses

    loader = settings.CONFIG_LOADER_CLASS(conf_source=str(project / "conf"), env=env, **settings.CONFIG_LOADER_ARGS)
    return loader["parameters"]


def training_overrides(params: KubernetesParams, parameters: dict[str, Any]) -> dict[str, Any]:
    """The ``--params`` the pods run with: the process count (and threads) the job launches, then ``params.params``.

    ``ValueError`` naming the pipeline's training block when ``TrainingParams`` refuses the result
    (e.g. more processes than the batch size) or the pipeline does not train data-parallel.
    """
    pipeline = params.pipeline
    if pipeline not in DATA_PARALLEL:
        raise ValueError(f"pipeline {pipeline!r} does not train under torchrun; a PyTorchJob runs one of {list(DATA_PARALLEL)}")
    if params.gpus and params.gpus != params.processes_per_node:
        raise ValueError(f"gpus ({params.gpus}) must equal processes_per_node ({params.processes_per_node}): one GPU per process")
    overrides: dict[str, Any] = {f"{pipeline}.training.processes": params.processes}
    if params.threads_per_process is not None and not params.gpus:
        overrides[f"{pipeline}.training.num_threads"] = params.threads_per_process
    overrides |= params.params
    training = dict(parameters.get(pipeline, {}).get("training") or {})
    for key, value in overrides.items():
        if key.startswith(f"{pipeline}.training."):
            training[key.removeprefix(f"{pipeline}.training.")] = value
    try:
        TrainingParams.model_validate(training)
    except ValidationError as error:
        reasons = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'training'}: {e['msg']}" for e in error.errors())
        raise ValueError(
            f"{pipeline}.training (conf/base and conf/{params.kedro_env}) with {params.processes} processes "
            f"({params.nodes} nodes x {params.processes_per_node}) is refused: {reasons}"
        ) from None
    return overrides


def params_argument(overrides: dict[str, Any]) -> str:
    """``kedro run --params`` text: ``key=value`` pairs joined by commas (Kedro splits on commas, so values may not hold one)."""
    for key, value in overrides.items():
        if "," in str(value):
            raise ValueError(f"--params value of {key} holds a comma, which kedro run --params cannot carry: {value!r}")
    return ",".join(f"{key}={str(value).lower() if isinstance(value, bool) else value}" for key, value in overrides.items())


# --------------------------------------------------------------------------- the manifests


def _labels(params: KubernetesParams, component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "dlflow", "app.kubernetes.io/component": component}


def _env(params: KubernetesParams, *, distributed: bool) -> list[dict[str, Any]]:
    def secret(name: str, key: str, optional: bool) -> dict[str, Any]:
        return {"name": name, "valueFrom": {"secretKeyRef": {"name": params.mlflow_secret, "key": key, "optional": optional}}}

    env = [
        secret("MLFLOW_TRACKING_URI", "tracking-uri", False),
        secret("MLFLOW_TRACKING_USERNAME", "username", True),
        secret("MLFLOW_TRACKING_PASSWORD", "password", True),
        {"name": "KEDRO_DISABLE_TELEMETRY", "value": "true"},
    ]
    if distributed:  # a restarted worker group gets its own store (pytorch/pytorch#135712)
        env.append({"name": "TORCH_DISABLE_SHARE_RDZV_TCP_STORE", "value": "1"})
    return env


def _container(params: KubernetesParams, name: str, command: list[str], args: list[str], *, distributed: bool) -> dict:
    limits: dict[str, Any] = {"cpu": params.cpu, "memory": params.memory}
    if params.gpus:
        limits["nvidia.com/gpu"] = params.gpus
    container = {
        "name": name,
        "image": params.image,
        "imagePullPolicy": params.image_pull_policy,
        "workingDir": params.project_dir,
        "command": command,
        "args": args,
        "env": _env(params, distributed=distributed),
        "resources": {"requests": {"cpu": params.cpu, "memory": params.memory}, "limits": limits},
        "volumeMounts": [{"name": "data", "mountPath": f"{params.project_dir}/data"}],
    }
    if distributed:
        container["ports"] = [{"name": "c10d", "containerPort": params.rendezvous_port, "protocol": "TCP"}]
    return container


def _pod_spec(container: dict, params: KubernetesParams, restart_policy: str | None = None) -> dict:
    spec: dict[str, Any] = {
        "containers": [container],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": params.data_claim}}],
    }
    if restart_policy is not None:
        spec["restartPolicy"] = restart_policy
    return spec


def torchrun_arguments(params: KubernetesParams, overrides: dict[str, Any]) -> list[str]:
    """The arguments of ``torchrun`` in every pod: the rendezvous, then ``-m kedro run`` with the overrides."""
    return [
        f"--nnodes={params.nodes}",
        f"--nproc-per-node={params.processes_per_node}",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint={params.name}-master-0:{params.rendezvous_port}",
        f"--rdzv-id={params.name}",
        f"--max-restarts={params.max_restarts}",
        "-m", "kedro", "run", "--pipeline", params.pipeline, "--env", params.kedro_env,
        "--params", params_argument(overrides),
    ]  # fmt: skip


def pytorch_job(params: KubernetesParams, overrides: dict[str, Any]) -> dict[str, Any]:
    """The ``PyTorchJob``: a Master and ``nodes - 1`` Workers, each pod one torchrun agent of the c10d rendezvous."""
    if params.nodes < 2:
        raise ValueError("a PyTorchJob spreads training over nodes >= 2 pods; for one pod use the pod template")

    def replica(count: int) -> dict[str, Any]:  # the training operator requires the container to be named pytorch
        container = _container(params, "pytorch", ["torchrun"], torchrun_arguments(params, overrides), distributed=True)
        return {
            "replicas": count,
            "restartPolicy": "OnFailure",  # torchrun exits non-zero only after its own restarts are spent
            "template": {
                "metadata": {"labels": _labels(params, f"{params.pipeline}-training")},
                "spec": _pod_spec(container, params),
            },
        }

    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {
            "name": params.name,
            "namespace": params.namespace,
            "labels": _labels(params, f"{params.pipeline}-training"),
        },
        "spec": {
            "elasticPolicy": {  # the same rendezvous as the torchrun arguments; exactly `nodes` nodes (processes is fixed)
                "rdzvBackend": "c10d",
                "rdzvHost": f"{params.name}-master-0",
                "rdzvPort": params.rendezvous_port,
                "rdzvId": params.name,
                "minReplicas": params.nodes,
                "maxReplicas": params.nodes,
                "maxRestarts": params.max_restarts,
            },
            "runPolicy": {"cleanPodPolicy": "None", "backoffLimit": params.max_restarts + 1},
            "pytorchReplicaSpecs": {"Master": replica(1), "Worker": replica(params.nodes - 1)},
        },
    }


def pod_template(params: KubernetesParams) -> dict[str, Any]:
    """A pod running ``kedro run --pipeline <pipeline> --env <env>`` once: ``KubernetesPodOperator``'s ``pod_template_file``."""
    args = ["run", "--pipeline", params.pipeline, "--env", params.kedro_env]
    if params.params:
        args += ["--params", params_argument(params.params)]
    container = _container(params, "base", ["kedro"], args, distributed=False)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"dlflow-{params.pipeline}".replace("_", "-"),
            "namespace": params.namespace,
            "labels": _labels(params, params.pipeline.replace("_", "-")),
        },
        "spec": _pod_spec(container, params, restart_policy="Never"),  # Airflow's retries, not the kubelet's
    }


def manifests(params: KubernetesParams, project: Path) -> dict[str, dict[str, Any]]:
    """File name -> manifest, for the pipeline in ``params``; the PyTorchJob only where the pipeline trains data-parallel."""
    found = {f"{params.pipeline}-airflow-pod.yaml": pod_template(params)}
    if params.pipeline in DATA_PARALLEL:
        overrides = training_overrides(params, project_parameters(project, params.kedro_env))
        found[f"{params.name}-pytorchjob.yaml"] = pytorch_job(params, overrides)
    return found


def write_manifests(found: dict[str, dict[str, Any]], out: Path) -> list[Path]:
    """Write each manifest to ``out/<name>`` atomically, with a header naming the command that made it."""
    written = []
    for name, manifest in found.items():
        path = out / name
        with atomic_write(path, "w", encoding="utf-8") as file:
            file.write(
                "# Generated by `python -m dlflow.deploy.kubernetes` from the project's parameters; regenerate, do not edit.\n"
            )
            yaml.safe_dump(manifest, file, sort_keys=False, width=120)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Write Kubernetes manifests for the project's training (see the module's docstring)."
    )
    parser.add_argument("--out", type=Path, required=True, help="the folder the manifests go to")
    parser.add_argument("--config", type=Path, help="a YAML file of KubernetesParams fields (image, nodes, ...)")
    parser.add_argument("--project", type=Path, default=Path.cwd(), help="the project folder (its conf/); default: here")
    for flag in ("image", "name", "namespace", "pipeline", "kedro-env"):
        parser.add_argument(f"--{flag}")
    for flag in ("nodes", "processes-per-node", "max-restarts"):
        parser.add_argument(f"--{flag}", type=int)
    args = parser.parse_args(argv)
    settings = yaml.safe_load(args.config.read_text()) if args.config else {}
    if not isinstance(settings, dict):
        parser.error(f"{args.config}: expected a mapping of KubernetesParams fields")
    flags = {k: v for k, v in vars(args).items() if k not in ("out", "config", "project") and v is not None}
    try:
        params = KubernetesParams.model_validate(settings | flags)
        found = manifests(params, args.project.resolve())
    except (ValidationError, ValueError) as error:
        parser.exit(2, f"dlflow.deploy.kubernetes: {error}\n")
    for path in write_manifests(found, args.out):
        print(f"written {path}")


if __name__ == "__main__":
    main()
