"""Training: read and validate the users CSV, fit the pipeline, log to MLflow."""
