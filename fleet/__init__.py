"""The fleet domain: what a team declares, what an instance resource carries, and the money math.

Pure: pydantic models and functions, no I/O, no Pulumi and no HTTP, so the program, the provider, the policy
pack and the reports all compute the same numbers.
"""
