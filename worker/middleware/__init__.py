"""What runs around the task body (worker/task.py), one concern per module: task retries,
the redelivery cap, outcome metrics, worker heartbeats and test fault hooks."""
