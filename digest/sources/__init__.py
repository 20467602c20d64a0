"""Sources: turn a configured source URL into the list of entries it offers."""

from digest.sources.feed import entries_from_feed, in_category, normalise_label

__all__ = ["entries_from_feed", "in_category", "normalise_label"]
