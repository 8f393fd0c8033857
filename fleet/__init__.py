"""The fleet domain: what a team declares, what an instance resource carries, the money math, and the permission
documents of Vast.ai keys and roles.

Pure: pydantic models and functions, no I/O, no Pulumi and no HTTP (the layering contract in pyproject.toml
checks it), so the program, the provider, the policy pack and the reports all compute the same numbers.

- `declaration`: a team's fleet (`vastguard:fleet`), validated, expanded into instance specs;
- `instance`: the one contract of a `vastai:Instance` (inputs, outputs, the reports' record of them), and how to
  add a field to it; the next resources copy this pattern: one module per resource here, built by its provider,
  read by the pack and the reports;
- `platform_declaration`: the platform's teams' access (`vastguard:platform`), validated with field-named errors;
- `team`, `team_role`, `team_member`, `api_key`: the contracts of `vastai:Team`, `TeamRole`, `TeamMember` and
  `ApiKey` (shared field types in `access_fields`), built by their providers, read by the pack's platform rules;
- `envelope`: a team key sealed for one recipient, how the platform stack delivers keys;
- `costs`: money in Decimal on typed models, unknown never zero;
- `budget`: budget windows (a day, a calendar month, in a team's time zone), a team's actual spend in one from
  Vast's charges, what its disks commit to the window's end, and the prepaid credit plan;
- `spend`: the contract of a `vastai:TeamSpend` (the spend reading the pack judges budgets on at preview);
- `labels`: the budget guard's marks in an instance's Vast label (paused for a window, idle since);
- `budget_log`: what budget enforcement records next to the stacks' state (ledger, claims, guard actions);
- `gpus`: GPU names and families, one normalisation for everyone;
- `stack_config`: the names a team stack's configuration uses.
"""
