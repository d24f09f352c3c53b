"""Run tracking around kedro-mlflow: the project's hooks, the tracking server check, what a run
records (inputs, manifest, lineage), resuming a killed run in its MLflow run, and replaying a run."""
