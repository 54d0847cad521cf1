-- Run once by the postgres image when it initialises an empty data volume (as POSTGRES_USER,
-- connected to POSTGRES_DB = dino, the job database): MLflow gets a database of its own, as
-- both it and the orchestrator keep an Alembic `alembic_version` table.
CREATE DATABASE mlflow;
