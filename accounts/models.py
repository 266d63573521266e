"""Accounts and contacts: tenure, plan, revenue, support tickets, usage."""
