"""Fault injection on real servers: tasks that misbehave, and stops under load."""
