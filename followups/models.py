"""Follow-up tasks, priority, assignment, SLAs, playbooks, drafts and the queue."""
