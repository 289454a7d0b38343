"""Baseline (a): Flask, a pandas DataFrame per request, the native pipeline.

gunicorn -w 2 -b 127.0.0.1:8101 loadtest.baselines.flask_app:app
"""

import mlflow
import pandas as pd
from flask import Flask, jsonify, request

from loadtest.baselines.common import champion_run_and_graph
from ltv.schema import clean_frame

run_id, _ = champion_run_and_graph()
model = mlflow.sklearn.load_model(f"runs:/{run_id}/model")
app = Flask(__name__)


@app.post("/predict")
def predict():
    frame = pd.DataFrame([request.get_json()])
    predicted = float(model.predict(clean_frame(frame))[0])
    return jsonify({"predicted_revenue": max(predicted, 0.0)})
