"""Surveys, cadence programmes per segment, invitations and the send scheduler."""
