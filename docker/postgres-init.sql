-- MLflow's backend store gets its own database next to the prediction log.
CREATE DATABASE mlflow;
