"""Response ingestion, classification, comment themes, the explorer and outbound webhooks."""
