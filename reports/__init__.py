"""Audit trail, spend, chargeback and reconciliation, from the stacks' Pulumi update history.

Every team stack's history is the audit log: each update, refresh and destroy leaves a record (who, which
commit, what result) and a full checkpoint of the stack. Folding the checkpoints in order gives each Vast
instance's life (rented, stopped, started, deleted) and so its cost; comparing that with what Vast charged
each team's key finds billing differences and instances rented outside Pulumi (shadow spend).

Layout (compute, then render):
- `pulumi_state`: typed views of Pulumi's history and checkpoint files (the input boundary);
- `sources`: where history comes from (DIY backend on disk or S3 via `s3`, Pulumi Cloud via the CLI);
- `fold`, `costing`, `reconcile`, `audit`: pure functions from history to the models in `models`;
- `charges`: what Vast charged, through the vastclient package;
- `focus`: the month as FinOps FOCUS cost-and-usage rows; `budgets`: the teams' daily budgets, for the chart;
- `render`: table, CSV, Markdown, JSON, FOCUS CSV and SVG chart renderers of those models;
- `cli`: the `vastguard audit | spend | chargeback | reconcile` commands (the Pulumi CLI, when a backend
  needs it, is passed in by `vastguard`: reports/ imports neither `vastguard/` nor `engine/`).

History written at chosen times, shaped like the engine's, is test code: `tests/reports/synthetic.py`.
"""
