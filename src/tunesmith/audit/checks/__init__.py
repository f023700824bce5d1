"""The data doctor's checks: one module per kind of defect, each `(AuditContext) -> list[Finding]`."""
