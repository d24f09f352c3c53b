"""The model registry: the pure promotion rules (``promotion``), the registration lock (``lock``),
the gate against MLflow's registry with its alias audit (``store``), the servable model's logging
(``model``), what the report reads back from MLflow (``evidence``), the HTML report (``report``),
and ``models:/<name>@<alias>`` as a read-only Kedro dataset for batch inference (``champion``)."""
