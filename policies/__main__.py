"""The entry Pulumi runs (`python -m pulumi.policy ENGINE policies/`): thin, because PolicyPack() never returns.

The rules live in importable modules (policies.rules, policies.config, policies.pack) so tests and tools can use
them without starting a server.
"""

from policies.pack import serve

serve()
