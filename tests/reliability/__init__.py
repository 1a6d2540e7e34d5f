"""Fault injection on real servers: tasks that misbehave, stops under load, hostile clients."""
