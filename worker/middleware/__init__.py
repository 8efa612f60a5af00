"""What runs around the task body (worker/task.py), one concern per module: task retries,
the redelivery cap, outcome metrics and test fault hooks."""
