-- Prediction log: one row per predicted user. PostgreSQL is the production
-- store; SQLite reads the same statements (it accepts these type names).
CREATE TABLE IF NOT EXISTS predictions (
    id TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    model_name TEXT NOT NULL,
    model_version TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    api_key_id TEXT,
    user_id TEXT,
    country TEXT NOT NULL,
    country_region TEXT NOT NULL,
    source TEXT NOT NULL,
    platform TEXT NOT NULL,
    device_family TEXT NOT NULL,
    os_version TEXT,
    event_1 DOUBLE PRECISION NOT NULL,
    event_2 DOUBLE PRECISION NOT NULL,
    event_3 DOUBLE PRECISION,
    predicted_revenue DOUBLE PRECISION NOT NULL,
    inference_time_ms DOUBLE PRECISION NOT NULL
);

CREATE INDEX IF NOT EXISTS predictions_created_at ON predictions (created_at);
CREATE INDEX IF NOT EXISTS predictions_model_version
    ON predictions (model_name, model_version);
