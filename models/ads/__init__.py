"""Sponsored products, pure: campaigns, the auction (pCTR x bid, second price), budget pacing, ad pCTR.

Nothing here does I/O or knows Kafka or HTTP: the campaign table, spend counting and the
gateway's sponsored slots call these functions with what they hold.
"""
