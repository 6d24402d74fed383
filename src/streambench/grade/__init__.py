"""Grading one run: dialects (SUT SSE -> UI events), the client model, upstream analysis,
metrics, rules, code quality and profiles."""
