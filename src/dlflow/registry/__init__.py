"""The model registry: the pure promotion rules and the MLflow client side (``promotion``), and the
HTML promotion report (``report``)."""
