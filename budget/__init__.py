"""Budgets that hold beyond preview: prepaid team credit (`vastguard budget allocate`), the guard that alerts and
pauses (`vastguard guard`, `vastguard resume`), their records next to the stacks' state, and the audit of them.

The money math is `fleet.budget` (pure); the records' contract is `fleet.budget_log`; a team's spend is read
with `vastclient.spend.team_spend`, as the preview's `vastai:TeamSpend` reads it. See README.md, "Budgets
that hold", and policies/README.md for what the numbers mean.
"""
