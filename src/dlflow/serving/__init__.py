"""MLflow ``PythonModel``s that make registered models answer raw inputs (sentences, words)."""
