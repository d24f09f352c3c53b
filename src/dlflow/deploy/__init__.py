"""Deployment: manifests that run the project's pipelines elsewhere, generated from its parameters.

``dlflow.deploy.kubernetes`` writes a Kubeflow ``PyTorchJob`` (data-parallel training on several
nodes under TorchElastic) and a pod template for Airflow's ``KubernetesPodOperator``.
"""
