"""The admins' workspace: spend explorer, people, groups, budgets, models and the audit log (staff only)."""
